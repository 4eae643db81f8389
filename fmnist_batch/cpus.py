"""How many CPUs this process may keep busy: the default number of conversion workers.

os.cpu_count() counts the machine's CPUs. A job started under taskset, in a cpuset, or in a container
limited to 2 CPUs on a 64-core host may use far fewer, and one worker per counted CPU there means dozens
of processes, each holding its own models, taking turns on 2 CPUs. So the count is the CPUs the
process's affinity allows, capped by its cgroups' CPU quota, rounded up (1.5 CPUs of quota keep 2 workers
busy), as loky.cpu_count computes it; importing loky alone costs about 56 ms of a one-photo run's 0.5 s,
so the few lines are here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
OWN_CGROUPS = Path("/proc/self/cgroup")


def usable_cpus(cgroup_root: Path = CGROUP_ROOT, own_cgroups: Path = OWN_CGROUPS) -> int:
    """The CPUs this process's affinity allows, at most its cgroups' CPU quota rounded up; at least 1."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity on this platform
        count = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root, own_cgroups)
    if quota is not None:
        count = min(count, math.ceil(quota))
    return max(1, count)


def cgroup_cpu_quota(cgroup_root: Path = CGROUP_ROOT, own_cgroups: Path = OWN_CGROUPS) -> float | None:
    """CPUs' worth of time the process's cgroups allow: the tightest cgroup v2 `cpu.max` from its own
    cgroup up to the root (a systemd unit's CPUQuota sits on its own cgroup, a container's on the root of
    its namespace), and cgroup v1's CFS quota of the cpu controller's root; None when nothing limits it
    or there are no cgroups to read."""
    limits = [_v2_quota(folder / "cpu.max") for folder in _v2_folders(cgroup_root, own_cgroups)]
    limits.append(_v1_quota(cgroup_root / "cpu"))
    found = [limit for limit in limits if limit is not None]
    return min(found, default=None)


def _v2_folders(root: Path, own_cgroups: Path) -> Iterator[Path]:
    """The process's cgroup v2 folder (the "0::" line of /proc/self/cgroup) and its parents up to root."""
    try:
        lines = own_cgroups.read_text().splitlines()
    except OSError:
        lines = []
    relative = next((line[3:].strip("/") for line in lines if line.startswith("0::")), "")
    folder = root / relative if relative and ".." not in Path(relative).parts else root
    yield folder
    while folder != root:
        folder = folder.parent
        yield folder


def _v2_quota(cpu_max: Path) -> float | None:
    """A cgroup v2 cpu.max ("QUOTA PERIOD" in microseconds, QUOTA "max" for none) as CPUs."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
        return None if quota == "max" else _ratio(int(quota), int(period))
    except (OSError, ValueError):
        return None


def _v1_quota(controller: Path) -> float | None:
    """cgroup v1's cpu.cfs_quota_us / cpu.cfs_period_us (a quota of -1: none) as CPUs."""
    try:
        quota = int((controller / "cpu.cfs_quota_us").read_text())
        period = int((controller / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return _ratio(quota, period)


def _ratio(quota: int, period: int) -> float | None:
    return quota / period if quota > 0 and period > 0 else None
