"""scripts/benchmark.py (and its package scripts/bench/) on a tiny corpus: it runs the methods it is asked
for as whole processes and writes a report whose medians and ratios come from those runs. No figure is
judged here (that is the benchmark's own job); only that the script measures and reports what it says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import benchmark  # scripts/ is on the path (pyproject's pytest pythonpath)
import pytest
from bench.measure import Measurement, median_run, run_measured
from bench.real_corpora import TARGET_MS
from PIL import Image

REPO = Path(__file__).resolve().parent.parent


def test_median_run_is_the_middle_wall_time_and_keeps_every_run():
    runs = [
        Measurement("c", "(c)", ["x"], 10, photos=10, wall_s=wall, cpu_s=2 * wall) for wall in (3.0, 1.0, 2.0)
    ]
    median = median_run(runs)
    assert median.wall_s == 2.0 and median.cpu_s == 4.0
    assert median.runs_wall_s == [3.0, 1.0, 2.0] and median.runs_cpu_s == [6.0, 2.0, 4.0]


def test_median_run_reports_a_failed_run_rather_than_hiding_it():
    good = Measurement("d", "(d)", ["x"], 10, photos=10, wall_s=1.0)
    bad = Measurement("d", "(d)", ["x"], 10, error="exit code 1: boom")
    assert median_run([good, bad]) is bad


def test_a_run_counts_the_cpu_time_of_the_workers_it_waited_for():
    # the parent only waits; its child burns about 0.4 s of CPU, as a pool's worker would
    burn = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass"
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}], check=True)"
    measured = run_measured("c", "(c)", [sys.executable, "-c", parent], {}, 1)
    assert measured.returncode == 0 and measured.error is None
    assert measured.cpu_s >= 0.4 and measured.cpu_s <= measured.wall_s + 0.1
    failed = run_measured("c", "(c)", [sys.executable, "-c", "raise SystemExit(3)"], {}, 1)
    assert failed.returncode == 3 and failed.error.startswith("exit code 3")


@pytest.mark.slow
def test_a_tiny_benchmark_runs_a_c_and_d_repeatedly_and_reports_their_medians(tmp_path):
    if not Path("/usr/share/datasets/fashion-mnist").is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed (the corpus is rendered from it)")
    pytest.importorskip("tensorflow", reason="(a) runs the Keras model")
    out = tmp_path / "bench.md"
    command = [
        sys.executable,
        str(REPO / "scripts" / "benchmark.py"),
        "--n", "24", "--a-limit", "3", "--skip", "b,one", "--scale", "0", "--repeat", "2",
        "--corpus-dir", str(tmp_path / "corpus"), "--out", str(out),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    report = json.loads(out.with_suffix(".json").read_text())
    a, c, d = (report["methods"][key] for key in "acd")
    for method, photos in ((a, 3), (c, 24), (d, 24)):
        assert method["photos"] == photos and method["error"] is None
        assert len(method["runs_wall_s"]) == 2
        assert method["wall_s"] == min(method["runs_wall_s"])  # the lower middle of two
    assert report["comparison"]["ratios"]["c/d"] == pytest.approx(c["wall_s"] / d["wall_s"])
    rounds = [x / y for x, y in zip(c["runs_wall_s"], d["runs_wall_s"], strict=True)]
    assert report["comparison"]["ratios_per_round"]["c/d"] == pytest.approx(rounds)
    c0 = report["methods"]["c0"]["runs_wall_s"]
    assert report["comparison"]["ratios_per_round"]["c0/d"] == pytest.approx(
        [x / y for x, y in zip(c0, d["runs_wall_s"], strict=True)]
    )
    text = out.read_text()
    assert "median of 2" in text
    assert f"| {rounds[0]:.3f}, {rounds[1]:.3f} |" in text


def _real_photos_root(root: Path) -> Path:
    """A photos root laid out as the real one: 5 cluttered amateur photos (3 train, 2 validation); a
    product shot (first in name order) and 2 photos of a person wearing a garment on a shop's white canvas
    (scikit-image's astronaut, public domain), with a labels file beside them that is not a photo."""
    import numpy as np
    from photos import render_catalog_photo, render_garment_photo
    from skimage import data

    for split, count in (("train", 3), ("validation", 2)):
        folder = root / "clothing-dataset-small" / split / "t-shirt"
        folder.mkdir(parents=True)
        for i in range(count):
            photo, _ = render_garment_photo(size=320 + 40 * i, seed=len(split) + i, offset=(0.05 * i, 0.0))
            photo.save(folder / f"{split}-{i}.jpg", quality=90)
    worn = root / "catalog-myntra-dev" / "t-shirt-top"
    worn.mkdir(parents=True)
    astronaut = Image.fromarray(data.astronaut())
    for i, top in enumerate((94, 60)):
        canvas = Image.new("RGB", (600, 700), (255, 255, 255))
        canvas.paste(astronaut, ((600 - astronaut.width) // 2, top))
        canvas.save(worn / f"on-model-{i}.jpg", quality=92)
    (worn.parent / "bag").mkdir()
    render_catalog_photo(np.eye(28, dtype=np.uint8) * 255, size=200).save(worn.parent / "bag" / "product.png")
    (worn.parent / "labels.csv").write_text("path,label\n")
    return root


@pytest.mark.slow
def test_the_amateur_and_on_model_corpora_get_rows_with_their_views_and_medians(tmp_path):
    root = _real_photos_root(tmp_path / "real-photos")
    out = tmp_path / "bench.md"
    command = [
        sys.executable,
        str(REPO / "scripts" / "benchmark.py"),
        "--skip", "a,b,c,c0,d,one,scale", "--photos-root", str(root), "--real-limit", "4",
        "--repeat", "2", "--worn-repeat", "3",
        "--corpus-dir", str(tmp_path / "corpus"), "--out", str(out),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, text=True, cwd=tmp_path)
    report = json.loads(out.with_suffix(".json").read_text())
    # With all its rows skipped, the catalog corpus is not even rendered.
    assert not (tmp_path / "corpus").exists()
    assert report["corpus"] is None and report["methods"] == {} and report["corpora_notes"] == []
    amateur, worn = report["corpora"]["amateur"], report["corpora"]["worn"]
    assert (amateur["photos"], amateur["available"], worn["photos"]) == (4, 5, 3)
    assert amateur["views"].get("segmented", 0) >= 1 and worn["views"] == {"worn": 2, "catalog": 1}
    for row, runs in ((amateur, 2), (worn, 3)):
        assert sum(row["views"].values()) == row["photos"]
        c, d, one = row["c"], row["d"], row["one_photo"]
        for method in (c, d):
            assert method["photos"] == row["photos"] and method["error"] is None
            assert len(method["runs_wall_s"]) == len(method["runs_load_1m"]) == runs
            assert method["wall_s"] == sorted(method["runs_wall_s"])[(runs - 1) // 2]
        c_ms = 1000 * (c["wall_s"] - one["median_s"]) / (row["photos"] - 1)  # start-up subtracted
        assert row["c_ms_per_photo"] == pytest.approx(c_ms)
        assert row["d_ms_per_photo"] == pytest.approx(1000 * d["loop_s"] / d["photos"])
        assert row["target_met"] == (row["c_ms_per_photo"] <= TARGET_MS)
    # Start-up is measured on a photo that took the corpus's main view (so its models load), named from the
    # photos root, never by a temporary link.
    assert worn["startup_photo"].startswith("catalog-myntra-dev/t-shirt-top/on-model-")
    assert amateur["startup_photo"].startswith("clothing-dataset-small/")
    markdown = out.read_text()
    assert "| amateur photos | 4 |" in markdown and "| on-model shop photos | 3 | 1 / 0 / 2 |" in markdown


def test_a_corpus_whose_folder_is_absent_is_skipped_with_a_note(tmp_path):
    out = tmp_path / "bench.md"
    command = [
        sys.executable,
        str(REPO / "scripts" / "benchmark.py"),
        "--skip", "a,b,c,c0,d,one,scale", "--photos-root", str(tmp_path / "nowhere"), "--out", str(out),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, text=True, cwd=tmp_path)
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["corpora"] == {}
    notes = report["corpora_notes"]
    assert len(notes) == 2 and all("skipped" in note and "not found" in note for note in notes)
    markdown = out.read_text()
    assert all(note in markdown for note in notes)


def test_the_new_corpora_can_be_skipped_by_name():
    args = benchmark.parse_args(["--skip", "amateur,worn"])
    assert args.skip == {"amateur", "worn"}
    with pytest.raises(SystemExit):
        benchmark.parse_args(["--skip", "amateurs"])
