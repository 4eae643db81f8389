"""What a run guarantees when it is killed, interrupted, resumed or given a tampered model, end to end
through the command line (the writer's own tests check the same at the library level)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from photos import render_catalog_photo, save_photo

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(REPO)}
RUN_TIMEOUT = 300


def classify(*args: str, cwd: Path | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "fmnist_batch", "classify", *args]
    return subprocess.run(
        command, env=ENV, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=RUN_TIMEOUT
    )


def start(*args: str, cwd: Path | None = None, stdin: int | None = None) -> subprocess.Popen:
    command = [sys.executable, "-m", "fmnist_batch", "classify", *args]
    return subprocess.Popen(
        command,
        env=ENV,
        cwd=cwd,
        stdin=stdin,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        # a run started from a background job inherits SIGINT ignored; these runs stand for one in a
        # terminal, where Ctrl-C reaches it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for(condition: Callable[[], bool], process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the run ended ({process.returncode}) before the condition held"
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def partial_rows(out: Path) -> int:
    """Rows in the run's partial file (its first line is a header)."""
    try:
        with open(f"{out}.partial", "rb") as file:
            lines = file.read().count(b"\n")
    except FileNotFoundError:
        return 0
    return max(0, lines - 1)


def partial_records(out: Path) -> dict[str, dict]:
    """The rows a partial holds, by path (whatever its format: JSON Lines records or CSV rows)."""
    text = Path(f"{out}.partial").read_text()
    rows = {}
    for line in text.splitlines()[1:]:
        record = json.loads(line)
        row = record.get("row", record)
        rows[row["path"]] = row
    return rows


def summary_figure(stderr: str, name: str) -> int:
    """A total from the summary table classify prints on stderr ("│ files │ 300 │")."""
    for line in stderr.splitlines():
        cells = [cell.strip() for cell in line.strip("│┃ ").split("│")]
        if cells and cells[0] == name:
            return int(cells[1].replace(",", ""))
    raise AssertionError(f"no {name!r} in the summary:\n{stderr}")


def kill(process: subprocess.Popen, sig: int = signal.SIGKILL) -> int:
    process.send_signal(sig)
    return process.wait(timeout=60)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("crash") / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(300):
        garment = (rng.random((28, 28)) * 255).astype(np.uint8)
        save_photo(render_catalog_photo(garment, size=120, seed=i), folder / f"{i:04d}.jpg", "JPEG")
    return folder


def final_rows(out: Path) -> pd.DataFrame:
    return pd.read_csv(out, keep_default_na=False, dtype=str)


def test_five_kills_that_land_mid_run_then_resume_keep_every_row_once(photos, tmp_path):
    out = tmp_path / "out.csv"
    args = [str(photos), "-o", str(out), "--batch-size", "16", "--workers", "2", "-q"]
    kept_before_last_kill: dict[str, dict] = {}
    for attempt in range(5):
        before = partial_rows(out)
        process = start(*args, *(["--resume"] if attempt else []))
        wait_for(lambda before=before: partial_rows(out) >= before + 16, process)
        assert kill(process) == -signal.SIGKILL  # the kill landed mid-run
        # its workers die with it, quietly: no BrokenPipeError tracebacks into the cron mail
        _, stderr = process.communicate(timeout=60)
        assert "Traceback" not in stderr and "Error" not in stderr, stderr
        assert partial_rows(out) > before, "the partial file did not grow"
        assert not out.exists(), "a killed run put an unfinished output in place"
        kept_before_last_kill = partial_records(out)
    final = classify(*args[:-1], "--resume")  # not quiet: the summary says how many were carried over
    assert final.returncode == 0, final.stderr
    rows = final_rows(out)
    assert sorted(rows["path"]) == sorted(str(p) for p in photos.iterdir())
    assert rows["path"].is_unique and (rows["status"] != "error").all()
    assert summary_figure(final.stderr, "carried over (--resume)") == len(kept_before_last_kill)
    assert summary_figure(final.stderr, "new this run") == 300 - len(kept_before_last_kill)
    assert summary_figure(final.stderr, "files") == 300
    by_path = rows.set_index("path")
    for path, row in kept_before_last_kill.items():  # kept as they were, not computed again
        assert by_path.loc[path, "label"] == row["label"]
        assert float(by_path.loc[path, "confidence"]) == pytest.approx(row["confidence"], rel=1e-9)


def test_a_batch_is_in_the_partial_file_as_soon_as_it_is_done(photos, tmp_path):
    out = tmp_path / "out.csv"
    first = sorted(photos.iterdir())[:4]
    process = start("-", "-o", str(out), "--batch-size", "4", "--workers", "1", "-q", stdin=subprocess.PIPE)
    process.stdin.write("".join(f"{p}\n" for p in first))
    process.stdin.flush()  # and keep stdin open: the run waits for more paths after this batch
    wait_for(lambda: partial_rows(out) >= 4, process, timeout=60)
    assert kill(process) == -signal.SIGKILL
    assert set(partial_records(out)) == {str(p) for p in first}


def test_resume_matches_files_however_the_inputs_are_spelled(photos, tmp_path):
    work = tmp_path / "work"
    shutil.copytree(photos, work / "photos")
    out = tmp_path / "out.csv"
    process = start("photos", "-o", str(out), "--batch-size", "16", "-q", cwd=work)
    wait_for(lambda: partial_rows(out) >= 48, process)
    kill(process)
    assert classify("./photos/", "-o", str(out), "--resume", "-q", cwd=work).returncode == 0
    assert classify(str(work / "photos"), "-o", str(out), "--resume", "-q", cwd=work).returncode == 0
    rows = final_rows(out)
    assert len(rows) == 300
    resolved = [os.path.realpath(os.path.join(work, p)) for p in rows["path"]]
    assert len(set(resolved)) == 300

    changed = work / "photos" / "0007.jpg"
    shutil.copyfile(work / "photos" / "0100.jpg", changed)
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert classify("photos", "-o", str(out), "--resume", "-q", cwd=work).returncode == 0
    rows = final_rows(out)
    assert len(rows) == 300
    by_name = {Path(p).name: r for p, r in zip(rows["path"], rows.to_dict("records"), strict=True)}
    assert by_name["0007.jpg"]["confidence"] == by_name["0100.jpg"]["confidence"]  # classified again


def test_an_interrupted_fresh_run_leaves_the_finished_output_alone(photos, tmp_path):
    out = tmp_path / "out.csv"
    assert classify(str(photos), "-o", str(out), "-q").returncode == 0
    finished = out.read_bytes()
    process = start(str(photos), "-o", str(out), "--batch-size", "16", "--workers", "1", "-q")
    wait_for(lambda: partial_rows(out) >= 16, process)
    assert kill(process, signal.SIGTERM) == 130
    assert "partial" in process.stderr.read()
    assert out.read_bytes() == finished  # the output only ever holds a finished run
    assert partial_rows(out) >= 16
    assert classify(str(photos), "-o", str(out), "--resume", "-q").returncode == 0
    assert len(final_rows(out)) == 300


def test_ctrl_c_keeps_the_rows_and_says_how_to_go_on(photos, tmp_path):
    out = tmp_path / "out.csv"
    # paths on stdin, kept open: the run is surely still going when Ctrl-C comes
    process = start("-", "-o", str(out), "--batch-size", "4", "--workers", "2", stdin=subprocess.PIPE)
    process.stdin.write("".join(f"{p}\n" for p in sorted(photos.iterdir())[:40]))
    process.stdin.flush()
    wait_for(lambda: partial_rows(out) >= 16, process)
    assert kill(process, signal.SIGINT) == 130
    message = process.stderr.read()
    assert "interrupted" in message and "--resume" in message and "Traceback" not in message
    assert partial_rows(out) >= 16 and not out.exists()


def test_resume_with_other_settings_is_refused_before_any_work(photos, tmp_path):
    out = tmp_path / "out.csv"
    process = start(str(photos), "-o", str(out), "--batch-size", "16", "-q")
    wait_for(lambda: partial_rows(out) >= 16, process)
    kill(process)
    kept = Path(f"{out}.partial").read_bytes()
    refused = classify(str(photos), "-o", str(out), "--resume", "--min-confidence", "0.5")
    assert refused.returncode == 2
    assert "min_confidence" in refused.stderr
    assert Path(f"{out}.partial").read_bytes() == kept and not out.exists()


def test_error_rows_are_retried_on_resume_and_the_exit_status_follows_them(photos, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    good = sorted(photos.iterdir())[:10]
    for path in good:
        shutil.copy(path, folder / path.name)
    (folder / "broken.jpg").write_bytes(b"not a photo yet")
    out = tmp_path / "out.csv"
    first = classify(str(folder), "-o", str(out), "-q")
    assert first.returncode == 1
    assert "1 of 11 files failed" in first.stderr  # -q still says so, in one line
    kept = classify(str(folder), "-o", str(out), "--resume", "--no-retry-errors", "-q")
    assert kept.returncode == 1  # the error row is still there
    shutil.copy(good[0], folder / "broken.jpg")  # the seller uploads the photo again
    retried = classify(str(folder), "-o", str(out), "--resume", "-q")
    assert retried.returncode == 0, retried.stderr
    rows = final_rows(out)
    assert len(rows) == 11 and (rows["status"] != "error").all()


def test_a_tampered_photo_model_is_refused_before_any_photo_is_read(photos, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(REPO / "models", model)
    tflite = model / "photo" / "model.tflite"
    data = bytearray(tflite.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tflite.write_bytes(bytes(data))
    out = tmp_path / "out.csv"
    run = classify(str(photos), "-o", str(out), "--model", str(model))
    assert run.returncode == 2
    assert "photo" in run.stderr and "model.tflite" in run.stderr
    assert not out.exists() and not Path(f"{out}.partial").exists()


def test_an_output_that_is_an_input_or_the_report_is_refused_before_any_work(photos, tmp_path):
    photo = sorted(photos.iterdir())[0]
    before = photo.read_bytes()
    onto_input = classify(str(photo), "-o", str(photo))
    assert onto_input.returncode == 2 and "one of the inputs" in onto_input.stderr
    assert photo.read_bytes() == before
    out = tmp_path / "out.csv"
    same = classify(str(photos), "-o", str(out), "--report", str(out))
    assert same.returncode == 2 and "same file" in same.stderr
    assert not out.exists()


def test_a_second_run_on_the_same_output_exits_75_or_waits_with_wait(photos, tmp_path):
    out = tmp_path / "out.csv"
    first_paths = sorted(photos.iterdir())[:3]
    holder = start("-", "-o", str(out), "--batch-size", "2", "--workers", "1", "-q", stdin=subprocess.PIPE)
    holder.stdin.write("".join(f"{p}\n" for p in first_paths))
    holder.stdin.flush()
    wait_for(lambda: partial_rows(out) >= 2, holder, timeout=60)  # it holds the lock, waiting for paths
    busy = classify(str(photos), "-o", str(out), "-q")
    assert busy.returncode == 75 and "--wait" in busy.stderr
    waiter = start(str(photos), "-o", str(out), "--wait", "-q")
    time.sleep(1.0)
    assert waiter.poll() is None  # queued behind the first run
    holder.stdin.close()
    assert holder.wait(timeout=60) == 0
    assert waiter.wait(timeout=RUN_TIMEOUT) == 0
    assert len(final_rows(out)) == 300


def test_resume_from_a_finished_output_made_with_other_settings_is_refused(photos, tmp_path):
    out = tmp_path / "out.csv"
    assert classify(str(photos), "-o", str(out), "-q").returncode == 0
    finished = out.read_bytes()
    refused = classify(str(photos), "-o", str(out), "--resume", "--min-confidence", "0.5", "-q")
    assert refused.returncode == 2 and "min_confidence" in refused.stderr
    assert out.read_bytes() == finished
    assert classify(str(photos), "-o", str(out), "--resume", "-q").returncode == 0  # same settings: fine
