"""`classify --engine ray`: a local Ray (2 CPUs) gives the local engine's rows, row by row."""

from __future__ import annotations

import csv
import importlib.util
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_bad_files, render_photos
from PIL import Image
from skimage import data as skimage_data

from fmnist_batch.cli import Environment, main
from fmnist_batch.engines import ray as ray_engine

REPO = Path(__file__).resolve().parent.parent
# Ray Data's own configuration warns about its deprecated settings whenever it is used
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")
needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="the [ray] extra is not installed: pip install '.[ray]'"
)


class Captured(Environment):
    def __init__(self):
        super().__init__(stdin=io.StringIO(), stdout=io.StringIO(), stderr=io.StringIO())


def classify(*args: object) -> tuple[int, str]:
    env = Captured()
    return main(["classify", *map(str, args)], env), env.stderr.getvalue()


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def assert_same_rows(ray_rows: list[dict[str, str]], local_rows: list[dict[str, str]]) -> None:
    assert len(ray_rows) == len(local_rows)
    for ray_row, local_row in zip(ray_rows, local_rows, strict=True):
        assert ray_row.keys() == local_row.keys()
        for column, expected in local_row.items():
            if (column == "confidence" or column.endswith("_prob")) and expected:
                assert abs(float(ray_row[column]) - float(expected)) <= 1e-6, (local_row["path"], column)
            else:
                assert ray_row[column] == expected, (local_row["path"], column)


#: rendered catalog photos in the photos fixture, and one photo of a person (its worn row carries the
#: garment in colour through Ray to the garment reader)
RENDERED = 300
GOOD = RENDERED + 1


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    """A few hundred rendered catalog photos and a person (scikit-image's astronaut, public domain, on a
    studio canvas), then the bad files a real folder brings."""
    folder = tmp_path_factory.mktemp("ray")
    rendered = [path for path, _ in render_photos(folder / "photos", RENDERED, seed=3)]
    person = folder / "photos" / "on-model.jpg"
    canvas = Image.new("RGB", (600, 700), (247, 247, 247))
    canvas.paste(Image.fromarray(skimage_data.astronaut()), (44, 94))
    canvas.save(person, quality=92)
    return [*rendered, person, *make_bad_files(folder / "bad").values()]


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for the in-process tests (RayClassifier uses a session it finds, and leaves it up).
    Starting it takes seconds, so every test that uses it is marked slow: `-m "not slow"` never starts Ray."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("the [ray] extra is not installed")
    import logging

    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield
    ray.shutdown()


@needs_ray
@pytest.mark.slow
def test_ray_engine_rows_equal_the_local_engine_rows(photos, ray_session, tmp_path, monkeypatch):
    monkeypatch.setattr(ray_engine, "WINDOW", 128)  # several windows, whose order must hold too
    inputs = [photos[0].parent, *photos[GOOD:]]  # the folder, then the bad files by name
    local, on_ray = tmp_path / "local.csv", tmp_path / "ray.csv"
    assert classify(*inputs, "-o", local, "-q", "--batch-size", 64)[0] == 1  # bad files: exit 1
    status, err = classify(*inputs, "-o", on_ray, "-q", "--batch-size", 64, "--engine", "ray")
    assert status == 1, err
    local_rows, ray_rows = read_rows(local), read_rows(on_ray)
    assert len(local_rows) == len(photos)
    assert_same_rows(ray_rows, local_rows)
    errors = [row for row in ray_rows if row["status"] == "error"]
    assert len(errors) == len(photos) - GOOD and all(row["error"] for row in errors)
    assert [row["view"] for row in ray_rows if row["path"].endswith("on-model.jpg")] == ["worn"]


@needs_ray
@pytest.mark.slow
def test_ray_engine_composes_with_shard_and_resume(photos, ray_session, tmp_path):
    folder = photos[0].parent
    local, on_ray = tmp_path / "local.csv", tmp_path / "ray.csv"
    assert classify(folder, "--shard", "2/3", "-o", local, "-q")[0] == 0
    # a previous, interrupted run of the shard left its first rows
    rows = local.read_text().splitlines(keepends=True)
    on_ray.write_text("".join(rows[:20]))
    status, err = classify(folder, "--shard", "2/3", "-o", on_ray, "-q", "--resume", "--engine", "ray")
    assert status == 0, err
    assert_same_rows(read_rows(on_ray), read_rows(local))


@needs_ray
@pytest.mark.slow
def test_ray_runs_keep_the_resume_guarantees(photos, ray_session, tmp_path):
    """On Ray as locally: error rows are retried on --resume, other settings are refused, and files are
    matched however the inputs are spelled."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in photos[:12]:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "late.png").write_bytes(b"still uploading")
    out = tmp_path / "out.csv"
    assert classify(folder, "-o", out, "-q", "--engine", "ray")[0] == 1  # late.png is an error row
    (folder / "late.png").write_bytes(photos[0].read_bytes())
    refused, err = classify(folder, "-o", out, "-q", "--resume", "--engine", "ray", "--min-confidence", "0.4")
    assert refused == 2 and "min_confidence" in err
    respelled = f"{tmp_path}/./photos/"
    assert classify(respelled, "-o", out, "-q", "--resume", "--engine", "ray")[0] == 0
    rows = read_rows(out)
    assert len(rows) == 13 and all(row["status"] != "error" for row in rows)


@needs_ray
@pytest.mark.slow
def test_a_quiet_run_on_a_local_ray_prints_nothing(photos, tmp_path):
    # As cron runs it: a separate process, stderr not a terminal, its own local Ray started and stopped.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    out = tmp_path / "out.csv"
    command = [sys.executable, "-m", "fmnist_batch", "classify", *map(str, photos[:6])]
    result = subprocess.run(
        [*command, "-o", str(out), "-q", "--engine", "ray", "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert [row["path"] for row in read_rows(out)] == [str(p) for p in photos[:6]]


@needs_ray
def test_a_cluster_that_cannot_be_reached_is_a_usage_error(tmp_path, monkeypatch):
    # What `ray.init(address="auto")` raises when no Ray runs here; staged, as any Ray running on this
    # machine (another test's) would be found and used.
    import ray

    def no_cluster(*args, **kwargs):
        raise ConnectionError("Could not find any running Ray instance.")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", no_cluster)
    photo = render_photos(tmp_path / "photos", 1)[0][0]
    status, err = classify(photo, "-o", tmp_path / "o.csv", "--engine", "ray", "--ray-address", "auto")
    assert status == 2
    assert "cannot connect to Ray: Could not find any running Ray instance" in err


def test_without_the_ray_extra_the_engine_is_a_clear_usage_error(tmp_path, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real_find_spec(name, *a)
    )
    photo = tmp_path / "a.png"
    photo.write_bytes(b"")
    status, err = classify(photo, "-o", tmp_path / "out.csv", "--engine", "ray")
    assert status == 2
    assert "pip install '.[ray]'" in err


@needs_ray
@pytest.mark.slow
def test_python_callers_choose_the_ray_engine_by_name(photos, ray_session):
    from fmnist_batch import Classifier

    folder = photos[0].parent
    local = list(Classifier().classify_folder(folder))
    on_ray = list(Classifier(engine="ray").classify_folder(folder))
    assert [row["path"] for row in on_ray] == [row["path"] for row in local]
    assert [row["label"] for row in on_ray] == [row["label"] for row in local]


@needs_ray
def test_a_ray_shard_and_a_local_shard_merge_as_two_local_ones(photos, ray_session, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for path in photos[:10]:
        (folder / path.name).write_bytes(path.read_bytes())
    first, second, merged = tmp_path / "l-1.csv", tmp_path / "l-2.csv", tmp_path / "m.csv"
    assert classify(folder, "--shard", "1/2", "-o", first, "-q")[0] == 0
    assert classify(folder, "--shard", "2/2", "-o", second, "-q", "--engine", "ray")[0] == 0
    env = Captured()
    status = main(["merge", str(merged), str(first), str(second)], env)
    assert status == 0, env.stderr.getvalue()
    assert len(read_rows(merged)) == 10
    # the merged output keeps the settings its rows were made with, whichever engine made them
    settings = (tmp_path / ".l-1.csv.settings.json").read_text()
    assert (tmp_path / ".m.csv.settings.json").read_text() == settings
