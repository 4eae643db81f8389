from __future__ import annotations

import io
import json
import os
import stat
import threading
from pathlib import Path

import pytest
from unprivileged import run_unprivileged

from fmnist_batch.outputs.journal import journal_rows
from fmnist_batch.outputs.rows import row_fields
from fmnist_batch.outputs.writer import OutputError, ResultWriter, read_rows, resolve_format

FIELDS = row_fields(2)

NASTY_NAMES = [
    "photos/plain.jpg",
    "photos/comma, in name.jpg",
    'photos/"quoted" name.jpg',
    "photos/new\nline.jpg",
    "photos/carriage\rreturn.jpg",
    "photos/été/naïve façade.png",
    "photos/emoji 😀👗.webp",
    " leading space.jpg",
    "=cmd|' /C calc'!A0.jpg",
    "photos/semi;colon\ttab.jpg",
]


def ok_row(path: str, confidence: float = 0.1 + 0.2) -> dict:
    return {
        "path": path,
        "label": "Sneaker",
        "confidence": confidence,
        "top1_label": "Sneaker",
        "top1_prob": confidence,
        "top2_label": "Sandal",
        "top2_prob": 1 / 3,
        "status": "ok",
        "error": None,
    }


def error_row(path: str, message: str = "cannot identify image file") -> dict:
    return {"path": path, "status": "error", "error": message}


def paths_in(path: str) -> list[str]:
    return [row["path"] for row in read_rows(path)]


def partial_paths(partial: str | Path) -> list[str]:
    """The paths of the rows in a run's partial file (its journal, JSON Lines whatever the format)."""
    return [row["path"] for row in journal_rows(str(partial))]


def test_row_fields():
    assert row_fields(2) == [
        "path",
        "label",
        "confidence",
        "top1_label",
        "top1_prob",
        "top2_label",
        "top2_prob",
        "view",
        "region",
        "status",
        "error",
    ]
    assert row_fields(0) == ["path", "label", "confidence", "view", "region", "status", "error"]


@pytest.mark.parametrize(
    ("output", "fmt", "expected"),
    [
        ("out.csv", None, "csv"),
        ("out.jsonl", None, "jsonl"),
        ("OUT.NDJSON", None, "jsonl"),
        ("results", None, "csv"),
        ("-", None, "csv"),
        ("out.csv", "jsonl", "jsonl"),
        ("out.jsonl", "csv", "csv"),
    ],
)
def test_resolve_format(output, fmt, expected):
    assert resolve_format(output, fmt) == expected


def test_csv_round_trips_through_pandas_whatever_the_names_hold(tmp_path):
    pd = pytest.importorskip("pandas")
    out = str(tmp_path / "out.csv")
    with ResultWriter(out, FIELDS, "csv") as writer:
        for i, name in enumerate(NASTY_NAMES):
            writer.write(ok_row(name, confidence=1 / (i + 3)))
        writer.write(error_row('photos/broken, "bad"\n.jpg', 'decode failed: "truncated", line 2\nmore'))

    raw = Path(out).read_bytes()
    assert raw.startswith(b"path,label,confidence,")  # header first, no BOM
    assert repr(1 / 3).encode() in raw  # probabilities unrounded
    text = pd.read_csv(out, keep_default_na=False)  # text as text: no name may turn into NaN
    assert list(text.columns) == FIELDS
    assert list(text["path"]) == [*NASTY_NAMES, 'photos/broken, "bad"\n.jpg']
    assert text["error"].iloc[-1] == 'decode failed: "truncated", line 2\nmore'
    assert text["label"].iloc[-1] == "" and text["status"].iloc[-1] == "error"
    numbers = pd.read_csv(out)
    assert list(numbers["confidence"][:-1]) == [1 / (i + 3) for i in range(len(NASTY_NAMES))]
    assert list(numbers["top2_prob"][:-1]) == [1 / 3] * len(NASTY_NAMES)
    assert numbers["top1_prob"].isna().tolist() == [False] * len(NASTY_NAMES) + [True]


def test_csv_reads_back_as_written(tmp_path):
    out = str(tmp_path / "out.csv")
    with ResultWriter(out, FIELDS, "csv") as writer:
        for name in NASTY_NAMES:
            writer.write(ok_row(name))
        writer.write(error_row("x.jpg"))
    rows = list(read_rows(out))
    assert [row["path"] for row in rows] == [*NASTY_NAMES, "x.jpg"]
    assert rows[0]["confidence"] == repr(0.1 + 0.2)
    assert rows[-1] == dict.fromkeys(FIELDS, "") | error_row("x.jpg")


def test_jsonl_writes_one_object_per_line(tmp_path):
    out = str(tmp_path / "out.jsonl")
    with ResultWriter(out, FIELDS, resolve_format(out, None)) as writer:
        for name in NASTY_NAMES:
            writer.write(ok_row(name))
        writer.write(error_row("gone.jpg", "no such file"))

    text = Path(out).read_text(encoding="utf-8")
    lines = text.split("\n")
    assert lines[-1] == ""  # every record ends its line
    records = [json.loads(line) for line in lines[:-1]]
    assert [r["path"] for r in records] == [*NASTY_NAMES, "gone.jpg"]
    assert all(list(r) == FIELDS for r in records)
    assert records[0]["confidence"] == 0.1 + 0.2
    assert records[-1]["label"] is None and records[-1]["top1_prob"] is None
    assert records[-1]["error"] == "no such file"
    assert "naïve façade" in text  # not \u-escaped
    assert list(read_rows(out)) == records


def test_the_output_appears_only_at_finish_and_the_partial_holds_flushed_rows(tmp_path):
    out = tmp_path / "out.csv"
    partial = tmp_path / "out.csv.partial"
    out.write_text("old results\n")
    writer = ResultWriter(str(out), FIELDS, "csv")
    writer.write(ok_row("a.jpg"))
    writer.flush()
    assert out.read_text() == "old results\n"
    assert partial_paths(partial) == ["a.jpg"]
    writer.write(ok_row("b.jpg"))
    writer.finish()
    assert not partial.exists()
    assert paths_in(str(out)) == ["a.jpg", "b.jpg"]


def test_new_output_does_not_exist_before_finish(tmp_path):
    out = tmp_path / "out.jsonl"
    with ResultWriter(str(out), FIELDS, "jsonl") as writer:
        writer.write(ok_row("a.jpg"))
        assert not out.exists()
        assert (tmp_path / "out.jsonl.partial").exists()
    assert paths_in(str(out)) == ["a.jpg"]
    # no temporary files left behind: the output, and the hidden record of the settings of its rows
    assert sorted(os.listdir(tmp_path)) == [".out.jsonl.settings.json", "out.jsonl"]


def test_interrupt_keeps_every_written_row_for_resume(tmp_path):
    # The output is only ever a finished run's: the rows of an interrupted one wait in the partial.
    out = tmp_path / "out.csv"
    with pytest.raises(KeyboardInterrupt), ResultWriter(str(out), FIELDS, "csv") as writer:
        writer.write(ok_row("a.jpg"))
        writer.flush()
        writer.write(ok_row("b.jpg"))
        raise KeyboardInterrupt
    assert not out.exists()
    assert partial_paths(tmp_path / "out.csv.partial") == ["a.jpg", "b.jpg"]
    with ResultWriter(str(out), FIELDS, "csv", resume=True) as writer:
        assert writer.carried == 2
    assert paths_in(str(out)) == ["a.jpg", "b.jpg"]
    assert not (tmp_path / "out.csv.partial").exists()


def test_an_error_before_any_row_leaves_the_previous_output_alone(tmp_path):
    out = tmp_path / "out.csv"
    out.write_text("yesterday's results\n")
    with pytest.raises(RuntimeError), ResultWriter(str(out), FIELDS, "csv"):
        raise RuntimeError("model missing")
    assert out.read_text() == "yesterday's results\n"
    assert sorted(os.listdir(tmp_path)) == ["out.csv"]


def killed_run(out: str, fmt: str, rows: list[dict]) -> None:
    """A run that wrote and flushed rows, then died without finish() or abort() (SIGKILL)."""
    writer = ResultWriter(out, FIELDS, fmt)
    for row in rows:
        writer.write(row)
    writer.flush()
    os.close(writer._lock)  # what the kernel does to a killed process's descriptors: the flock goes
    del writer


def cut_bytes(path: str, count: int) -> None:
    with open(path, "r+b") as file:
        file.truncate(os.path.getsize(path) - count)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_resume_continues_the_partial_and_drops_a_cut_off_record(tmp_path, fmt):
    out = str(tmp_path / f"out.{fmt}")
    with ResultWriter(out, FIELDS, fmt) as writer:  # a finished run, which the killed one started over from
        writer.write(ok_row("old.jpg"))
    rows = [ok_row("a.jpg"), ok_row("b, with comma.jpg"), error_row("c.jpg"), ok_row("d\n.jpg")]
    killed_run(out, fmt, rows)
    cut_bytes(out + ".partial", 5)

    with ResultWriter(out, FIELDS, fmt, resume=True) as writer:
        assert writer.carried == 2  # the error row is retried, the cut-off one is gone
        writer.write(error_row("c.jpg"))
        writer.write(ok_row("d\n.jpg"))
    assert paths_in(out) == ["a.jpg", "b, with comma.jpg", "c.jpg", "d\n.jpg"]
    assert not os.path.exists(out + ".partial")


@pytest.mark.parametrize("cut", [*range(1, 12), 60, 100])
def test_resume_drops_a_record_cut_anywhere(tmp_path, cut):
    # The last record's error message holds a line break (JSON escapes it): cuts land inside values too.
    out = str(tmp_path / "out.csv")
    killed_run(out, "csv", [ok_row("a.jpg"), ok_row("b.jpg", confidence=0.5) | {"error": "bad\nthing"}])
    cut_bytes(out + ".partial", cut)
    with ResultWriter(out, FIELDS, "csv", resume=True) as writer:
        assert writer.carried == 1
        writer.write(ok_row("c.jpg"))  # appended after the last whole record, not after the cut-off one
    assert paths_in(out) == ["a.jpg", "c.jpg"]


def test_resume_keeps_unfinished_rows_of_a_resumed_run(tmp_path):
    out = str(tmp_path / "out.csv")
    killed_run(out, "csv", [ok_row("a.jpg")])
    writer = ResultWriter(out, FIELDS, "csv", resume=True)  # resumed, then killed again
    writer.write(ok_row("b.jpg"))
    writer.flush()
    os.close(writer._lock)  # what the kernel does to a killed process's descriptors: the flock goes
    del writer
    with ResultWriter(out, FIELDS, "csv", resume=True) as writer:
        assert writer.carried == 2
    assert paths_in(out) == ["a.jpg", "b.jpg"]


def test_resume_with_other_columns_is_refused_and_the_previous_run_kept(tmp_path):
    out = str(tmp_path / "out.csv")
    killed_run(out, "csv", [ok_row("a.jpg")])
    before = Path(out + ".partial").read_bytes()
    with pytest.raises(OutputError, match=r"columns.*top-k"):
        ResultWriter(out, row_fields(3), "csv", resume=True)
    assert Path(out + ".partial").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["out.csv.partial"]


def test_resume_refuses_a_file_in_the_other_format(tmp_path):
    out = str(tmp_path / "out.txt")
    with ResultWriter(out, FIELDS, "csv") as writer:
        writer.write(ok_row("a.jpg"))
    with pytest.raises(OutputError, match="not JSON"):
        ResultWriter(out, FIELDS, "jsonl", resume=True)


def test_without_resume_a_stale_partial_is_overwritten(tmp_path):
    out = str(tmp_path / "out.csv")
    killed_run(out, "csv", [ok_row("old.jpg")])
    with ResultWriter(out, FIELDS, "csv") as writer:
        assert writer.carried == 0 and writer.discarded == 1
        writer.write(ok_row("new.jpg"))
    assert paths_in(out) == ["new.jpg"]


def test_read_rows_rejects_damage_before_the_last_record(tmp_path):
    csv_file = tmp_path / "bad.csv"
    csv_file.write_text(",".join(FIELDS) + "\nshort,row\n" + ",".join(["x"] * len(FIELDS)) + "\n")
    with pytest.raises(OutputError, match="line 2"):
        list(read_rows(str(csv_file)))
    jsonl_file = tmp_path / "bad.jsonl"
    jsonl_file.write_text('{"path": "a"}\nnot json\n{"path": "b"}\n')
    with pytest.raises(OutputError, match="line 2"):
        list(read_rows(str(jsonl_file)))


def test_output_that_is_a_folder_is_refused(tmp_path):
    with pytest.raises(OutputError, match="is a folder"):
        ResultWriter(str(tmp_path), FIELDS, "csv")


def test_output_in_a_missing_folder_is_refused(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        ResultWriter(str(tmp_path / "nope" / "out.csv"), FIELDS, "csv")


def test_output_in_an_unwritable_folder_is_refused(open_tmp):
    folder = open_tmp / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    with pytest.raises(OutputError, match="cannot write"):
        run_unprivileged(ResultWriter, str(folder / "out.csv"), FIELDS, "csv")


def test_stdout_mode_streams_rows_and_leaves_the_stream_open(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stdout = io.StringIO()
    with ResultWriter("-", FIELDS, "csv", stdout=stdout) as writer:
        writer.write(ok_row("a, b.jpg"))
        writer.flush()
        assert stdout.getvalue().startswith("path,label,")
        assert '"a, b.jpg"' in stdout.getvalue()
    assert not stdout.closed
    assert stdout.getvalue().count("\n") == 2
    assert os.listdir(tmp_path) == []


def test_stdout_mode_cannot_resume():
    with pytest.raises(OutputError, match="--resume"):
        ResultWriter("-", FIELDS, "csv", stdout=io.StringIO(), resume=True)


def test_a_pipe_as_output_is_written_in_place(tmp_path):
    # Like /dev/null or /dev/stdout: renaming a file onto it would replace it.
    fifo = tmp_path / "results.fifo"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()), daemon=True)
    reader.start()
    with ResultWriter(str(fifo), FIELDS, "jsonl") as writer:
        writer.write(ok_row("a.jpg"))
    reader.join(10)
    assert json.loads(received[0])["path"] == "a.jpg"
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["results.fifo"]


def _fd_open_on(path: str) -> int:
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == path:
                return int(name)
        except OSError:
            continue
    raise AssertionError(f"{path} is not open")


@pytest.mark.skipif(
    not os.path.exists("/dev/full") or not os.path.isdir("/proc/self/fd"), reason="needs Linux"
)
def test_disk_full_keeps_the_flushed_rows_for_resume(tmp_path):
    out = str(tmp_path / "out.csv")
    partial = os.path.realpath(out + ".partial")
    with (
        pytest.raises(OutputError, match=r"disk full.*2 rows kept in .*out\.csv\.partial"),
        ResultWriter(out, FIELDS, "csv") as writer,
    ):
        writer.write(ok_row("a.jpg"))
        writer.write(ok_row("b.jpg"))
        writer.flush()
        # From here on every write to the partial fails the way a full disk does (ENOSPC).
        full = os.open("/dev/full", os.O_WRONLY)
        os.dup2(full, _fd_open_on(partial))
        os.close(full)
        for i in range(1000):
            writer.write(ok_row(f"more{i}.jpg"))
        writer.flush()
    assert not os.path.exists(out)  # a cut-off file is not moved into place
    assert partial_paths(partial) == ["a.jpg", "b.jpg"]


def test_unknown_columns_are_a_programming_error(tmp_path):
    with ResultWriter(str(tmp_path / "out.csv"), FIELDS, "csv") as writer, pytest.raises(ValueError):
        writer.write({"path": "a.jpg", "colour": "red"})


def test_a_second_writer_on_the_same_output_is_refused_until_the_first_finishes(tmp_path):
    from fmnist_batch.outputs.writer import OutputLocked

    out = str(tmp_path / "out.csv")
    first = ResultWriter(out, row_fields(1), "csv")
    with pytest.raises(OutputLocked, match="--wait"):
        ResultWriter(out, row_fields(1), "csv")
    first.finish()
    ResultWriter(out, row_fields(1), "csv").finish()


def test_the_lock_of_a_killed_run_does_not_block_the_next(tmp_path):
    import subprocess
    import sys

    out = str(tmp_path / "out.csv")
    code = (
        "import os, sys\n"
        "from fmnist_batch.outputs.rows import row_fields\n"
        "from fmnist_batch.outputs.writer import ResultWriter\n"
        f"w = ResultWriter({out!r}, row_fields(1), 'csv')\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "locked"
    from fmnist_batch.outputs.writer import OutputLocked

    with pytest.raises(OutputLocked):
        ResultWriter(out, row_fields(1), "csv")
    holder.kill()
    holder.wait(timeout=300)
    ResultWriter(out, row_fields(1), "csv").finish()  # the kernel dropped the dead run's lock


def test_a_full_disk_says_how_many_rows_the_partial_really_holds(tmp_path, monkeypatch):
    """A batch's rows reach the partial in the buffer's pieces before the batch ends; when the disk fills
    mid-batch, the message must count the rows that made it, as --resume will keep them."""
    import errno
    import re
    import shutil

    from fmnist_batch.job import ClassifyJob
    from fmnist_batch.outputs import journal

    class FillingFile(io.FileIO):
        """A file on a disk with `room` bytes left: what fits is written, then ENOSPC."""

        room = 4000

        def write(self, data) -> int:
            if FillingFile.room <= 0:
                raise OSError(errno.ENOSPC, "No space left on device")
            written = super().write(bytes(data)[: FillingFile.room])
            FillingFile.room -= written
            return written

    def on_a_filling_disk(fd: int, mode: str) -> io.TextIOWrapper:
        raw = FillingFile(fd, "w" if mode == "w" else "a")
        return io.TextIOWrapper(io.BufferedWriter(raw), encoding="ascii", newline="\n")

    photos = tmp_path / "photos"
    shutil.copytree(Path(__file__).resolve().parent.parent / "samples", photos)
    out = str(tmp_path / "out.csv")
    monkeypatch.setattr(journal, "_text_file", on_a_filling_disk)
    with pytest.raises(OutputError, match="disk full") as caught:
        ClassifyJob([str(photos)], out).run()
    kept = int(re.search(r"(\d+) rows kept in", str(caught.value))[1])
    monkeypatch.undo()
    resumed = ClassifyJob([str(photos)], out, resume=True).run()
    assert kept == resumed.summary.carried > 0
    assert resumed.summary.total == 20
