from __future__ import annotations

import threading
from itertools import count
from pathlib import Path

import numpy as np
import pytest

from fmnist_batch.discover import InputFile
from fmnist_batch.engines import local as pipeline
from fmnist_batch.engines.local import Classifier, ClassifyOptions, chunks, convert, make_row, preview_path


def files_of(paths: list[Path]) -> list[InputFile]:
    return [InputFile(str(p), str(p)) for p in paths]


def test_chunks_are_lazy_and_keep_every_item():
    produced = count()
    source = (next(produced) for _ in range(10))
    batches = chunks(source, 4)
    assert next(batches) == [0, 1, 2, 3]
    assert next(produced) == 4  # nothing beyond the first batch was pulled
    assert [len(b) for b in chunks(range(10), 4)] == [4, 4, 2]


def test_make_row_orders_top_k_and_marks_uncertain():
    probabilities = np.array([0.05, 0.6, 0.05, 0.2, 0.1, 0, 0, 0, 0, 0], np.float32)
    row = make_row("a.jpg", probabilities, None, ClassifyOptions(top_k=3, min_confidence=0.7))
    assert row["label"] == "Trouser" and row["confidence"] == pytest.approx(0.6)
    assert [row["top1_label"], row["top2_label"], row["top3_label"]] == ["Trouser", "Dress", "Coat"]
    assert row["status"] == "uncertain" and row["error"] == ""
    error = make_row("b.jpg", None, "empty file", ClassifyOptions())
    assert error["status"] == "error" and error["error"] == "empty file" and error["label"] is None


def test_preview_path_mirrors_the_input_under_the_folder(tmp_path):
    assert preview_path(tmp_path, "photos/shoes/a.jpg") == tmp_path / "photos/shoes/a.jpg.png"
    assert preview_path(tmp_path, "/abs/../x.png") == tmp_path / "abs/x.png.png"


def test_worker_pool_and_in_process_conversion_give_identical_rows(catalog):
    files = files_of([p for p, _ in catalog[:40]])
    with Classifier(ClassifyOptions(workers=2, batch_size=16)) as pooled:
        pooled_rows = list(pooled.run(files))
    with Classifier(ClassifyOptions(workers=1, batch_size=16)) as inline:
        inline_rows = list(inline.run(files))
    assert [r["path"] for r in pooled_rows] == [f.display for f in files]
    assert pooled_rows == inline_rows


def test_a_file_that_takes_too_long_becomes_an_error_row(catalog, monkeypatch):
    def slow(path, settings):
        threading.Event().wait(5)

    monkeypatch.setattr(pipeline, "convert_path", slow)
    pipeline._configure(pipeline.PreprocessSettings(), None, 0.2)
    result = pipeline._convert_inline([(str(catalog[0][0]), "x.jpg")]).get()
    assert result == [pipeline.Converted(None, "took longer than 0.2 s to decode; skipped")]


def test_an_unexpected_exception_costs_one_row_not_the_run(monkeypatch):
    def broken(path, settings):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(pipeline, "convert_path", broken)
    pipeline._configure(pipeline.PreprocessSettings(), None, None)
    assert convert(("a.jpg", "a.jpg")) == pipeline.Converted(
        None, "unexpected error: ZeroDivisionError: boom"
    )


def test_on_batch_is_called_after_each_batch(catalog):
    files = files_of([p for p, _ in catalog[:10]])
    calls = []
    with Classifier(ClassifyOptions(workers=1, batch_size=4)) as classifier:
        for _ in classifier.run(files, on_batch=lambda: calls.append(1)):
            pass
    assert len(calls) == 3


FREE_AND_MEASURE = """
import sys
from fmnist_batch.engines import local as pipeline
if sys.argv[1] == "keep":
    pipeline.keep_freed_memory()

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
        run = subprocess.run([sys.executable, "-c", FREE_AND_MEASURE, mode], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        return int(run.stdout)

    # by default the 8 MB go back to the kernel at once; a worker keeps them (no page faults next photo)
    assert released_kb("default") > 7 * 1024
    assert released_kb("keep") < 1024
