"""The default worker count: the CPUs the process may use, not the machine's."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fmnist_batch.cpus import cgroup_cpu_quota, usable_cpus

AFFINITY = len(os.sched_getaffinity(0))


def _cgroups(tmp_path: Path, own: str, files: dict[str, str]) -> tuple[Path, Path]:
    """A cgroup tree under tmp_path (relative path -> contents) and a /proc/self/cgroup naming `own`."""
    root = tmp_path / "cgroup"
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    root.mkdir(exist_ok=True)
    (tmp_path / "self-cgroup").write_text(own)
    return root, tmp_path / "self-cgroup"


def test_a_process_pinned_to_one_cpu_gets_one_worker_by_default():
    script = textwrap.dedent(
        """
        import os
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        from fmnist_batch.options import ClassifyOptions
        print(ClassifyOptions().worker_count, ClassifyOptions(workers=3).worker_count)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1", "3"]  # an explicit --workers is the user's


def test_the_tightest_cgroup_v2_quota_on_the_way_to_the_root_caps_the_count(tmp_path):
    files = {"cpu.max": "max 100000\n", "a/cpu.max": "150000 100000\n", "a/b/cpu.max": "max 100000\n"}
    root, own = _cgroups(tmp_path, "0::/a/b\n", files)
    assert cgroup_cpu_quota(root, own) == pytest.approx(1.5)
    assert usable_cpus(root, own) == min(AFFINITY, 2)  # 1.5 CPUs of time keep two workers busy

    (root / "cpu.max").write_text("50000 100000\n")  # a container's half CPU, on its namespace's root
    assert cgroup_cpu_quota(root, own) == pytest.approx(0.5)
    assert usable_cpus(root, own) == 1


def test_a_cgroup_v1_cfs_quota_caps_the_count(tmp_path):
    files = {"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}
    root, own = _cgroups(tmp_path, "4:cpu,cpuacct:/docker/abc\n", files)
    assert cgroup_cpu_quota(root, own) == pytest.approx(1.0)
    assert usable_cpus(root, own) == 1

    (root / "cpu/cpu.cfs_quota_us").write_text("-1\n")  # no quota
    assert cgroup_cpu_quota(root, own) is None
    assert usable_cpus(root, own) == AFFINITY


@pytest.mark.parametrize(
    "own, files",
    [
        ("0::/\n", {}),  # no cpu controller files at all
        ("0::/a\n", {"a/cpu.max": "max 100000\n"}),
        ("0::/a\n", {"a/cpu.max": "garbage\n", "cpu/cpu.cfs_quota_us": "lots"}),
        ("0::/a\n", {"a/cpu.max": "100000 0\n"}),  # a period of 0 limits nothing, and divides nothing
        ("0::/../../etc\n", {"cpu.max": "max 100000\n"}),  # a path that would leave the tree
    ],
)
def test_no_quota_or_an_unreadable_one_leaves_the_affinity(tmp_path, own, files):
    root, own_file = _cgroups(tmp_path, own, files)
    assert cgroup_cpu_quota(root, own_file) is None
    assert usable_cpus(root, own_file) == AFFINITY


def test_without_any_cgroup_files_the_affinity_decides(tmp_path):
    assert usable_cpus(tmp_path / "none", tmp_path / "none-either") == AFFINITY
