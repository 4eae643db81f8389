"""The engines: rows in input order from worker processes or in-process conversion, the per-file time
limit, and a pool that survives a worker being killed or hanging."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from itertools import count
from pathlib import Path

import numpy as np
import pytest

from fmnist_batch.convert import ConversionSettings, source
from fmnist_batch.convert.source import Converted
from fmnist_batch.discover import InputFile
from fmnist_batch.engines import engine_factory, register_engine, workers
from fmnist_batch.engines.local import LocalEngine, chunks
from fmnist_batch.model.runtime import load_job_model
from fmnist_batch.options import ClassifyOptions
from fmnist_batch.outputs.rows import make_row


def files_of(paths: list[Path]) -> list[InputFile]:
    return [InputFile(str(p), str(p)) for p in paths]


@pytest.fixture(scope="module")
def model():
    return load_job_model(ClassifyOptions())


def engine(model, **options) -> LocalEngine:
    return LocalEngine(ClassifyOptions(**options), model, ConversionSettings())


def run_with_deadline(function, seconds: float):
    """function() in a thread; fails the test instead of hanging the suite if it does not return."""
    result: dict = {}
    thread = threading.Thread(target=lambda: result.setdefault("value", function()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s (hung)"
    return result["value"]


def test_chunks_are_lazy_and_keep_every_item():
    produced = count()
    source = (next(produced) for _ in range(10))
    batches = chunks(source, 4)
    assert next(batches) == [0, 1, 2, 3]
    assert next(produced) == 4  # nothing beyond the first batch was pulled
    assert [len(b) for b in chunks(range(10), 4)] == [4, 4, 2]


def test_make_row_orders_top_k_and_marks_uncertain():
    probabilities = np.array([0.05, 0.6, 0.05, 0.2, 0.1, 0, 0, 0, 0, 0], np.float32)
    row = make_row("a.jpg", probabilities, None, top_k=3, min_confidence=0.7)
    assert row["label"] == "Trouser" and row["confidence"] == pytest.approx(0.6)
    assert [row["top1_label"], row["top2_label"], row["top3_label"]] == ["Trouser", "Dress", "Coat"]
    assert row["status"] == "uncertain" and row["error"] == ""
    error = make_row("b.jpg", None, "empty file", top_k=3)
    assert error["status"] == "error" and error["error"] == "empty file" and error["label"] is None


def test_preview_path_mirrors_the_input_under_the_folder(tmp_path):
    assert workers.preview_path(tmp_path, "photos/shoes/a.jpg") == tmp_path / "photos/shoes/a.jpg.png"
    assert workers.preview_path(tmp_path, "/abs/../x.png") == tmp_path / "abs/x.png.png"


def test_worker_pool_and_in_process_conversion_give_identical_rows(catalog, model):
    files = files_of([p for p, _ in catalog[:40]])
    with engine(model, workers=2, batch_size=16) as pooled:
        pooled_rows = list(pooled.run(files))
    with engine(model, workers=1, batch_size=16) as inline:
        inline_rows = list(inline.run(files))
    assert [r["path"] for r in pooled_rows] == [f.display for f in files]
    assert pooled_rows == inline_rows


def test_a_file_that_takes_too_long_becomes_an_error_row(catalog, monkeypatch):
    def slow(path, settings):
        threading.Event().wait(5)

    monkeypatch.setattr(source, "convert_path", slow)
    settings = workers.WorkerSettings(ConversionSettings(), None, 0.2)
    result = workers.convert_here([(str(catalog[0][0]), "x.jpg")], settings)
    assert result == [Converted(None, "took longer than 0.2 s to decode; skipped")]


def test_an_unexpected_exception_costs_one_row_not_the_run(monkeypatch):
    def broken(path, settings):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(source, "convert_path", broken)
    result = workers.convert_here([("a.jpg", "a.jpg")], workers.WorkerSettings())
    assert result == [Converted(None, "unexpected error: ZeroDivisionError: boom")]


def test_on_batch_is_called_after_each_batch(catalog, model):
    files = files_of([p for p, _ in catalog[:10]])
    calls = []
    with engine(model, workers=1, batch_size=4) as local:
        for _ in local.run(files, on_batch=lambda: calls.append(1)):
            pass
    assert len(calls) == 3


def _dies_on(marker: str):
    real = source.convert_path

    def convert_path(path, settings):
        if marker in os.path.basename(path):
            os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer or a crashing C decoder would
        return real(path, settings)

    return convert_path


def renamed_copy(path: Path, folder: Path, prefix: str) -> Path:
    target = folder / (prefix + path.name)
    shutil.copyfile(path, target)
    return target


def test_a_killed_worker_costs_its_file_one_error_row_and_the_run_goes_on(
    catalog, model, monkeypatch, tmp_path
):
    paths = [p for p, _ in catalog[:60]]
    paths[25] = renamed_copy(paths[25], tmp_path, "killer-")
    monkeypatch.setattr(source, "convert_path", _dies_on("killer-"))
    files = files_of(paths)

    def run() -> list[dict]:
        with engine(model, workers=2, batch_size=16) as pooled:
            return list(pooled.run(files))

    rows = run_with_deadline(run, 120)
    assert [r["path"] for r in rows] == [f.display for f in files]  # one row per file, in order
    assert rows[25]["status"] == "error" and rows[25]["error"] == workers.WORKER_DIED
    assert all(r["status"] != "error" for i, r in enumerate(rows) if i != 25)


def test_a_worker_that_never_answers_is_stopped_after_the_time_limit(catalog, model, monkeypatch, tmp_path):
    real = source.convert_path

    def hangs_in_native_code(path, settings):
        if "stuck-" in os.path.basename(path):
            # SIGALRM blocked: like a decoder stuck in C, the per-file alarm cannot stop it
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            time.sleep(600)
        return real(path, settings)

    paths = [p for p, _ in catalog[:40]]
    paths[3] = renamed_copy(paths[3], tmp_path, "stuck-")
    monkeypatch.setattr(source, "convert_path", hangs_in_native_code)
    monkeypatch.setattr(workers, "GRACE_SECONDS", 1.0)
    files = files_of(paths)

    def run() -> list[dict]:
        with engine(model, workers=2, batch_size=16, timeout=1.0) as pooled:
            return list(pooled.run(files))

    rows = run_with_deadline(run, 120)
    assert len(rows) == len(files)
    assert rows[3]["status"] == "error" and "its worker was stopped" in rows[3]["error"]
    assert all(r["status"] != "error" for i, r in enumerate(rows) if i != 3)


def test_engines_are_chosen_by_name_and_can_be_registered():
    assert engine_factory("local") is LocalEngine
    with pytest.raises(ValueError, match="unknown engine 'nope'"):
        engine_factory("nope")
    register_engine("echo-test", "fmnist_batch.engines.local:LocalEngine")
    assert engine_factory("echo-test") is LocalEngine


FREE_AND_MEASURE = """
import sys
from fmnist_batch.engines import workers
if sys.argv[1] == "keep":
    workers.keep_freed_memory()

def resident_kb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

buffer = bytearray(8 * 2**20)  # zero-filled: every page touched
before = resident_kb()
del buffer
print(before - resident_kb())
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc")
def test_workers_keep_freed_photo_buffers_for_the_next_photo():
    import subprocess
    import sys

    def released_kb(mode: str) -> int:
        run = subprocess.run(
            [sys.executable, "-c", FREE_AND_MEASURE, mode], capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 0, run.stderr
        return int(run.stdout)

    # by default the 8 MB go back to the kernel at once; a worker keeps them (no page faults next photo)
    assert released_kb("default") > 7 * 1024
    assert released_kb("keep") < 1024
