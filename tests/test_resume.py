"""--resume through the writer: rows matched to files by what they are, changed files and errors redone,
settings checked, and the partial (the run's journal) durable at every flush."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fmnist_batch.discover import InputFile, discover
from fmnist_batch.outputs.errors import OutputError, SettingsMismatch
from fmnist_batch.outputs.formats import read_rows
from fmnist_batch.outputs.rows import row_fields
from fmnist_batch.outputs.writer import ResultWriter

FIELDS = row_fields(1)
SETTINGS = {"model_sha256": "a1" * 32, "top_k": 1, "min_confidence": 0.0, "invert": "auto"}


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def make_files(count: int, folder: str = "photos") -> list[str]:
    """`count` small .jpg files (the writer never opens them) in nested folders, made an hour ago (as
    photos are older than the output that lists them: rows of a finished output hold only for files
    modified before it was written)."""
    names = [os.path.join(folder, "ab"[i % 2], f"img-{i:03d}.jpg") for i in range(count)]
    an_hour_ago = time.time_ns() - 3600 * 10**9
    for name in names:
        os.makedirs(os.path.dirname(name), exist_ok=True)
        Path(name).write_bytes(b"photo %d" % len(name))
        os.utime(name, ns=(an_hour_ago, an_hour_ago))
    return names


def row_for(file: InputFile, label: str = "Bag", status: str = "ok") -> dict:
    if status == "error":
        return {"path": file.display, "status": "error", "error": "cannot identify image file"}
    return {"path": file.display, "label": label, "confidence": 0.75, "top1_label": label,
            "top1_prob": 0.75, "status": "ok", "error": ""}  # fmt: skip


def kill(writer: ResultWriter) -> None:
    """What SIGKILL leaves: the flushed partial, no finish() or abort(); the kernel drops the flock."""
    os.close(writer._lock)


def run(
    out: str,
    inputs: list[str],
    *,
    resume: bool = False,
    kill_after: int | None = None,
    label: str = "Bag",
    status: Callable[[InputFile], str] = lambda file: "ok",
    **options,
) -> list[str]:
    """A classify run through the writer (every pending file gets a row, flushed every 4 rows); killed
    after `kill_after` rows if given. Returns the paths it classified."""
    writer = ResultWriter(out, FIELDS, "jsonl" if out.endswith(".jsonl") else "csv", resume=resume, **options)
    done: list[str] = []
    for file in writer.pending(discover(inputs)):
        writer.write(row_for(file, label, status(file)), file)
        done.append(file.display)
        if len(done) % 4 == 0:
            writer.flush()
        if len(done) == kill_after:
            writer.flush()
            kill(writer)
            return done
    writer.finish()
    return done


def real_paths(out: str) -> list[str]:
    return [os.path.realpath(row["path"]) for row in read_rows(out)]


def test_resume_matches_files_by_what_they_are_not_how_the_inputs_spell_them(in_tmp):
    make_files(30)
    run("out.csv", ["photos"], kill_after=10)
    assert len(run("out.csv", ["./photos/"], resume=True)) == 20
    assert len(real_paths("out.csv")) == 30 == len(set(real_paths("out.csv")))
    # the cron case: nightly --resume of a finished output, the inputs spelled yet another way
    assert run("out.csv", [str(in_tmp / "photos")], resume=True) == []
    os.symlink(in_tmp / "photos", in_tmp / "mounted")
    assert run("out.csv", ["mounted"], resume=True) == []
    assert len(real_paths("out.csv")) == 30 == len(set(real_paths("out.csv")))


@pytest.mark.parametrize("killed", [True, False], ids=["from-the-partial", "from-a-finished-output"])
def test_a_file_changed_since_its_row_was_written_is_classified_again(in_tmp, killed):
    names = make_files(8)
    run("out.csv", ["photos"], kill_after=8 if killed else None)
    grown, touched = names[2], names[5]
    with open(grown, "ab") as file:
        file.write(b" edited")
    later = time.time_ns() + 5 * 10**9  # clearly after the output was written, whatever the clock tick
    os.utime(touched, ns=(later, later))
    redone = run("out.csv", ["photos"], resume=True, label="Coat")
    assert sorted(redone) == sorted([grown, touched])
    rows = list(read_rows("out.csv"))
    assert sorted(row["path"] for row in rows) == sorted(names)  # the old rows of both are gone
    assert {row["path"] for row in rows if row["label"] == "Coat"} == {grown, touched}


@pytest.mark.parametrize("killed", [True, False], ids=["from-the-partial", "from-a-finished-output"])
def test_error_rows_are_retried_unless_asked_not_to(in_tmp, killed):
    names = make_files(6)
    failing = {names[1], names[4]}

    def status(file: InputFile) -> str:
        return "error" if file.display in failing else "ok"

    run("out.csv", ["photos"], kill_after=6 if killed else None, status=status)
    writer = ResultWriter("out.csv", FIELDS, "csv", resume=True, retry_errors=False)
    assert list(writer.pending(discover(["photos"]))) == [] and writer.carried == 6
    writer.finish()
    if killed:  # the finished run above made an output; back to a partial with errors in it
        run("out.csv", ["photos"], kill_after=6, status=status)
    writer = ResultWriter("out.csv", FIELDS, "csv", resume=True)
    assert writer.carried == 4  # the error rows are not carried over...
    retried = [file.display for file in writer.pending(discover(["photos"]))]
    assert sorted(retried) == sorted(failing)  # ...their files are pending again
    for file in discover(retried):
        writer.write(row_for(file), file)
    writer.finish()
    rows = list(read_rows("out.csv"))
    assert len(rows) == 6 and all(row["status"] != "error" for row in rows)


def test_resume_with_other_settings_is_refused_naming_them(in_tmp):
    make_files(5)
    run("out.csv", ["photos"], kill_after=2, settings=SETTINGS)
    other = {**SETTINGS, "model_sha256": "b2" * 32, "min_confidence": 0.5}
    with pytest.raises(SettingsMismatch) as caught:
        ResultWriter("out.csv", FIELDS, "csv", resume=True, settings=other)
    assert "model_sha256" in str(caught.value) and "min_confidence: 0.0 then, 0.5 now" in str(caught.value)
    assert isinstance(caught.value, OutputError)  # the CLI maps it to a usage error, exit 2
    assert "invert" not in str(caught.value) and "top_k" not in str(caught.value)
    assert "without --resume" in str(caught.value)
    assert len(run("out.csv", ["photos"], resume=True, settings=SETTINGS)) == 3


def test_flushed_rows_are_in_the_partial_for_any_reader(tmp_path):
    from fmnist_batch.outputs.journal import journal_rows

    out = str(tmp_path / "out.csv")
    names = [os.fsdecode(b"caf\xe9.jpg"), "new\nline.jpg", "carriage\rreturn.jpg", '"q", c.jpg', "été.png"]
    writer = ResultWriter(out, FIELDS, "csv")
    written: list[str] = []
    for batch in range(3):
        for name in names:
            written.append(f"{batch}/{name}")
            writer.write({"path": written[-1], "status": "error", "error": f"cannot read {name}"})
        writer.flush()
        # a separate reader, right after flush() returned: every row so far, whole and exact
        assert [row["path"] for row in journal_rows(out + ".partial")] == written
    writer.finish()


def test_a_changed_conversion_setting_is_named_alone_one_line_each(tmp_path):
    import io
    import shutil

    from fmnist_batch.cli import Environment, main

    photos = tmp_path / "photos"
    shutil.copytree(Path(__file__).resolve().parent.parent / "samples", photos)
    out = str(tmp_path / "out.csv")

    def classify(*args: str) -> tuple[int, str]:
        env = Environment(stdin=io.StringIO(), stdout=io.StringIO(), stderr=io.StringIO())
        return main(["classify", str(photos), "-o", out, "-q", *args], env), env.stderr.getvalue()

    assert classify()[0] == 0
    status, err = classify("--resume", "--background", "products", "--min-confidence", "0.5")
    assert status == 2
    changed = [line.strip() for line in err.splitlines() if " then, " in line]
    assert changed == [
        "conversion.background: 'auto' then, 'products' now",
        "min_confidence: 0.55 then, 0.5 now",  # the card's default, then the option
    ]
    assert "sharpen" not in err and "model_card_sha256" not in err and len(err) < 400
