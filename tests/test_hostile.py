"""Hostile input and crashes: mutated image bytes, bombs, vanishing files, and runs killed at random."""

from __future__ import annotations

import io
import resource
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from photos import png_claiming_size, render_catalog_photo, save_photo
from PIL import Image

from fmnist_batch.convert import ConversionSettings, ImageError, convert_path
from fmnist_batch.discover import InputFile
from fmnist_batch.engines.local import LocalEngine
from fmnist_batch.model.runtime import load_job_model
from fmnist_batch.options import ClassifyOptions

REPO = Path(__file__).resolve().parent.parent
FORMATS = ["JPEG", "PNG", "WEBP", "GIF", "TIFF"]


def _seed_files() -> dict[str, bytes]:
    garment = np.zeros((28, 28), np.uint8)
    garment[4:24, 8:20] = 200
    garment[8:12, 4:24] = 255
    photo = render_catalog_photo(garment, size=64, tint=(40, 80, 160))
    seeds = {}
    for fmt in FORMATS:
        buffer = io.BytesIO()
        (photo.convert("P") if fmt == "GIF" else photo).save(buffer, format=fmt)
        seeds[fmt] = buffer.getvalue()
    return seeds


SEEDS = _seed_files()

mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.integers(1, 64)),
)


def mutate(data: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    out = bytearray(data)
    for kind, position, value in mutations:
        if not out:
            break
        i = position % len(out)
        if kind == "flip":
            out[i] ^= value
        elif kind == "truncate":
            del out[i:]
        elif kind == "insert":
            out[i:i] = bytes([value]) * 16
        else:
            del out[i : i + value]
    return bytes(out)


def local_engine(**options) -> LocalEngine:
    settings = ClassifyOptions(**options)
    return LocalEngine(settings, load_job_model(settings), ConversionSettings())


@pytest.fixture(scope="module")
def classifier():
    with local_engine(workers=1, batch_size=64, timeout=10) as engine:
        yield engine


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fmt=st.sampled_from(FORMATS), mutations=st.lists(mutation, min_size=1, max_size=4))
def test_mutated_images_raise_only_image_errors(fmt, mutations, tmp_path):
    path = tmp_path / f"fuzz.{fmt.lower()}"
    path.write_bytes(mutate(SEEDS[fmt], mutations))
    try:
        array = convert_path(path).image
    except ImageError as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert array.shape == (28, 28) and array.dtype == np.uint8


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batch=st.lists(
        st.tuples(st.sampled_from(FORMATS), st.lists(mutation, max_size=3)), min_size=1, max_size=12
    )
)
def test_every_mutated_file_ends_in_exactly_one_row(batch, classifier, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    files = []
    for i, (fmt, mutations) in enumerate(batch):
        path = folder / f"{i:02d}.{fmt.lower()}"
        path.write_bytes(mutate(SEEDS[fmt], mutations))
        files.append(InputFile(str(path), str(path)))
    rows = list(classifier.run(files))
    assert [r["path"] for r in rows] == [f.display for f in files]
    for row in rows:
        assert row["status"] in ("ok", "uncertain", "error")
        assert (row["status"] == "error") == bool(row["error"])


def test_bombs_zero_size_and_tiny_images_end_in_rows_within_a_memory_bound(classifier, tmp_path):
    cases = {
        "bomb.png": png_claiming_size(50_000, 50_000),
        "wide.png": png_claiming_size(1_000_000, 1),
        "zero.png": png_claiming_size(0, 0),
        "empty.gif": b"",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    Image.new("RGB", (1, 1), "white").save(tmp_path / "one-white.png")
    Image.new("RGB", (1, 1), "black").save(tmp_path / "one-black.jpg")
    Image.new("L", (5000, 4000), 255).save(tmp_path / "big-blank.jpg")  # 20 Mpx, decoded at reduced scale
    files = [InputFile(str(p), p.name) for p in sorted(tmp_path.iterdir())]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rows = {r["path"]: r for r in classifier.run(files)}
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert len(rows) == len(files)
    for name in cases:
        assert rows[name]["status"] == "error", name
    assert "too large" in rows["bomb.png"]["error"]
    # blank photos are classified, and say they show nothing to classify
    assert rows["one-white.png"]["status"] in ("uncertain", "other", "error")
    assert {rows["one-black.jpg"]["status"], rows["big-blank.jpg"]["status"]} <= {"uncertain", "other"}
    assert grown_mb < 300, f"peak memory grew by {grown_mb:.0f} MB"


def test_files_that_vanish_or_change_during_the_run_get_rows(tmp_path):
    photo = render_catalog_photo(np.full((28, 28), 180, np.uint8), size=200)
    paths = [save_photo(photo, tmp_path / f"{i:03d}.png", "PNG") for i in range(40)]
    files = [InputFile(str(p), p.name) for p in paths]
    with local_engine(workers=1, batch_size=8) as classifier:
        rows = []
        for row in classifier.run(iter(files)):
            rows.append(row)
            if len(rows) == 4:  # batches after the first are converted later: change them under its feet
                paths[20].unlink()
                paths[30].write_bytes(b"overwritten with junk")
    by_name = {r["path"]: r for r in rows}
    assert len(rows) == 40
    assert by_name["020.png"]["status"] == "error" and "not found" in by_name["020.png"]["error"]
    assert by_name["030.png"]["status"] == "error"
    assert sum(r["status"] != "error" for r in rows) == 38
