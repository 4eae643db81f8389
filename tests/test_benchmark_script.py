"""scripts/benchmark.py on a tiny corpus: it runs the methods it is asked for as whole processes and
writes a report whose medians and ratios come from those runs. No figure is judged here (that is the
benchmark's own job); only that the script measures and reports what it says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import benchmark  # noqa: E402


def test_median_run_is_the_middle_wall_time_and_keeps_every_run():
    runs = [benchmark.Measurement("c", "(c)", ["x"], 10, photos=10, wall_s=wall) for wall in (3.0, 1.0, 2.0)]
    median = benchmark.median_run(runs)
    assert median.wall_s == 2.0
    assert median.runs_wall_s == [3.0, 1.0, 2.0]


def test_median_run_reports_a_failed_run_rather_than_hiding_it():
    good = benchmark.Measurement("d", "(d)", ["x"], 10, photos=10, wall_s=1.0)
    bad = benchmark.Measurement("d", "(d)", ["x"], 10, error="exit code 1: boom")
    assert benchmark.median_run([good, bad]) is bad


@pytest.mark.slow
def test_a_tiny_benchmark_runs_c_and_d_repeatedly_and_reports_their_medians(tmp_path):
    if not Path("/usr/share/datasets/fashion-mnist").is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed (the corpus is rendered from it)")
    out = tmp_path / "bench.md"
    command = [
        sys.executable,
        str(REPO / "scripts" / "benchmark.py"),
        "--n", "24", "--skip", "a,b,one", "--scale", "0", "--repeat", "2",
        "--corpus-dir", str(tmp_path / "corpus"), "--out", str(out),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, text=True, cwd=tmp_path)
    report = json.loads(out.with_suffix(".json").read_text())
    c, d = report["methods"]["c"], report["methods"]["d"]
    for method in (c, d):
        assert method["photos"] == 24 and method["error"] is None
        assert len(method["runs_wall_s"]) == 2
        assert method["wall_s"] == min(method["runs_wall_s"])  # the lower middle of two
    assert report["comparison"]["ratios"]["c/d"] == pytest.approx(c["wall_s"] / d["wall_s"])
    assert "median of 2" in out.read_text()
