"""The writer against hostile or unlucky surroundings: interruptions over a finished output, planted
symlinks, leftovers of killed runs, names that are not UTF-8 or look like formulas, a vanished folder."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from fmnist_batch.discover import Shard, discover
from fmnist_batch.outputs.destination import lock_path
from fmnist_batch.outputs.errors import OutputError
from fmnist_batch.outputs.formats import read_rows
from fmnist_batch.outputs.rows import row_fields
from fmnist_batch.outputs.writer import ResultWriter

FIELDS = row_fields(1)


def ok_row(path: str, error: str = "") -> dict:
    return {"path": path, "label": "Bag", "confidence": 0.5, "top1_label": "Bag", "top1_prob": 0.5,
            "status": "ok", "error": error}  # fmt: skip


def finished(out: str, paths: list[str], fmt: str = "csv", **options) -> bytes:
    with ResultWriter(out, FIELDS, fmt, **options) as writer:
        for path in paths:
            writer.write(ok_row(path))
    return Path(out).read_bytes()


def old_photo(path: str) -> None:
    """A file made an hour ago: rows of a finished output hold for files modified before it."""
    Path(path).write_bytes(b"photo")
    an_hour_ago = time.time_ns() - 3600 * 10**9
    os.utime(path, ns=(an_hour_ago, an_hour_ago))


def partial_paths(out: str) -> list[str]:
    from fmnist_batch.outputs.journal import journal_rows

    return [row["path"] for row in journal_rows(out + ".partial")]


# ----------------------------------------------------------------------------------- interrupted runs


@pytest.mark.parametrize("interruption", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_run_never_replaces_the_finished_output(tmp_path, interruption):
    out = str(tmp_path / "out.csv")
    before = finished(out, ["yesterday.jpg"])
    with pytest.raises(interruption) as caught, ResultWriter(out, FIELDS, "csv") as writer:
        for name in ("a.jpg", "b.jpg"):
            writer.write(ok_row(name))
        writer.flush()
        writer.write(ok_row("c.jpg"))
        raise interruption("stop")
    assert Path(out).read_bytes() == before  # out.csv only ever holds a finished run
    assert partial_paths(out) == ["a.jpg", "b.jpg", "c.jpg"]
    assert caught.value.__notes__ == [f"3 rows kept in {out + '.partial'!r}; rerun with --resume to continue"]
    with ResultWriter(out, FIELDS, "csv", resume=True) as writer:
        assert writer.carried == 3
        writer.write(ok_row("d.jpg"))
    assert [row["path"] for row in read_rows(out)] == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]


def test_a_fresh_run_starts_over_and_says_what_it_discarded(tmp_path):
    out = str(tmp_path / "out.csv")
    killed = ResultWriter(out, FIELDS, "csv")
    for name in ("a.jpg", "b.jpg"):
        killed.write(ok_row(name))
    killed.flush()
    os.close(killed._lock)  # SIGKILL: the partial stays, the flock goes
    writer = ResultWriter(out, FIELDS, "csv")
    assert writer.discarded == 2
    assert "2 rows" in writer.notice and "out.csv.partial" in writer.notice and "--resume" in writer.notice
    assert partial_paths(out) == []
    writer.finish()
    writer = ResultWriter(out, FIELDS, "csv")
    assert writer.discarded == 0 and writer.notice is None  # nothing was lost: nothing is said
    assert writer.abort() is None  # no rows: no partial kept, nothing to say
    assert not os.path.exists(out + ".partial")


# ------------------------------------------------------------------------------------ planted symlinks


def test_symlinks_planted_at_predictable_paths_are_never_followed(tmp_path):
    from fmnist_batch.outputs.html_report import HtmlReport
    from fmnist_batch.outputs.shards import write_record

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    absent = tmp_path / "created-through-a-link"  # following a dangling link with O_CREAT creates it
    out, report = tmp_path / "out.csv", tmp_path / "report.html"
    pid = os.getpid()
    planted = {  # every name a run wrote to before it used random temporary names
        lock_path(str(out)): absent,
        f"{out}.partial": victim,
        f"{out}.partial.{pid}.tmp": victim,
        f"{out}.shard.json.{pid}.tmp": victim,
        tmp_path / f".report.html.{pid}.tmp": victim,
    }
    for link, target in planted.items():
        os.symlink(target, link)
    with ResultWriter(str(out), FIELDS, "csv") as writer:
        write_record(str(out), Shard(1, 2))
        writer.write(ok_row("a.jpg"))
    write_record(str(out), Shard(1, 2), rows=1)
    with HtmlReport(report) as html:
        html.finish()
    assert victim.read_text() == "precious" and not absent.exists()
    assert [row["path"] for row in read_rows(str(out))] == ["a.jpg"]
    assert report.read_text().startswith("<!doctype html>")


def test_resume_refuses_a_partial_that_is_a_symlink(tmp_path):
    elsewhere = str(tmp_path / "elsewhere.csv")
    finished(elsewhere, ["secret.jpg"])
    out = str(tmp_path / "out.csv")
    os.symlink(elsewhere, out + ".partial")
    with pytest.raises(OutputError, match="symbolic link"):
        ResultWriter(out, FIELDS, "csv", resume=True)
    assert os.path.islink(out + ".partial") and not os.path.exists(out)


def test_temporary_files_of_killed_runs_are_removed_once_the_lock_is_held(tmp_path):
    out = str(tmp_path / "out.csv")
    stale = [".out.csv.k3j_9a2b.tmp", ".out.csv.partial.x7y8z9w0.tmp", ".out.csv.shard.json.abcd1234.tmp"]
    others = [".other.csv.k3j_9a2b.tmp", ".out.csv.x.k3j_9a2b.tmp", ".report.html.k3j_9a2b.tmp", "out.tmp"]
    for name in stale + others:
        (tmp_path / name).write_text("leftover")
    writer = ResultWriter(out, FIELDS, "csv")
    assert [name for name in stale if (tmp_path / name).exists()] == []
    assert all((tmp_path / name).exists() for name in others)
    writer.finish()


# ----------------------------------------------------------------------------------------- odd names


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_names_that_are_not_utf8_are_written_with_a_documented_escape(tmp_path, fmt):
    out = str(tmp_path / f"out.{fmt}")
    name = os.fsdecode(b"photos/caf\xe9 \xff.jpg")
    finished(out, [name, "plain.jpg"], fmt)
    text = Path(out).read_bytes().decode("utf-8")  # strict: the whole file is valid UTF-8
    # JSON writes the escape's backslash as JSON does, \\
    assert ("photos/caf\\xe9 \\xff.jpg" if fmt == "csv" else r'"photos/caf\\xe9 \\xff.jpg"') in text
    from fmnist_batch.outputs.formats import unescape

    rows = list(read_rows(out))
    assert rows[0]["path"] == "photos/caf\\xe9 \\xff.jpg" and unescape(rows[0]["path"]) == name
    if fmt == "csv":
        pd = pytest.importorskip("pandas")
        assert pd.read_csv(out)["path"].tolist() == ["photos/caf\\xe9 \\xff.jpg", "plain.jpg"]


@pytest.mark.parametrize("killed", [True, False], ids=["from-the-partial", "from-a-finished-output"])
def test_resume_recognises_files_whose_names_are_not_utf8(tmp_path, monkeypatch, killed):
    monkeypatch.chdir(tmp_path)
    os.mkdir("photos")
    for name in (b"caf\xe9.jpg", b"plain.jpg", b"\xff\xfe.jpg"):
        old_photo(os.fsdecode(b"photos/" + name))
    writer = ResultWriter("out.csv", FIELDS, "csv")
    *first, last = writer.pending(discover(["photos"]))
    for file in first:
        writer.write(ok_row(file.display), file)
    writer.flush()
    if killed:
        os.close(writer._lock)
    else:
        writer.finish()
    with ResultWriter("out.csv", FIELDS, "csv", resume=True) as writer:
        left = list(writer.pending(discover(["photos"])))
        assert [file.display for file in left] == [last.display]
        writer.write(ok_row(left[0].display), left[0])
    assert len(list(read_rows("out.csv"))) == 3


FORMULAS = ["=cmd|' /C calc'!A0.jpg", "+1.jpg", "-2.jpg", "@sum.jpg", "\ttab.jpg", "\rcr.jpg", "'=x.jpg"]
HARMLESS = ["plain.jpg", "'quoted.jpg", "a=b.jpg", ""]


def test_csv_safe_defuses_cells_a_spreadsheet_would_run(tmp_path):
    out = str(tmp_path / "out.csv")
    with ResultWriter(out, FIELDS, "csv", csv_safe=True) as writer:
        for name in FORMULAS + HARMLESS:
            writer.write(ok_row(name, error="-bad" if name == "+1.jpg" else ""))
    with open(out, newline="", encoding="utf-8") as file:
        records = list(csv.DictReader(file))
    cells = [record["path"] for record in records]
    assert cells == ["'" + name for name in FORMULAS] + HARMLESS
    assert records[1]["error"] == "'-bad" and records[0]["confidence"] == "0.5"
    jsonl = str(tmp_path / "out.jsonl")
    finished(jsonl, FORMULAS, "jsonl", csv_safe=True)
    assert [json.loads(line)["path"] for line in Path(jsonl).read_text().splitlines()] == FORMULAS


def test_csv_safe_output_resumes_matching_every_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.mkdir("photos")
    for name in [*FORMULAS, "plain.jpg"]:
        old_photo(os.path.join("photos", name.replace("/", "_")))
    with ResultWriter("out.csv", FIELDS, "csv", csv_safe=True) as writer:
        for file in writer.pending(discover(["photos"], extensions=(".jpg",))):
            writer.write(ok_row(file.display), file)
    with ResultWriter("out.csv", FIELDS, "csv", csv_safe=True, resume=True) as writer:
        assert list(writer.pending(discover(["photos"], extensions=(".jpg",)))) == []
        assert writer.carried == len(FORMULAS) + 1


# ----------------------------------------------------------------------------------- vanished folder


def test_a_vanished_output_folder_is_reported_at_the_next_flush(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    writer = ResultWriter(str(folder / "out.csv"), FIELDS, "csv")
    writer.write(ok_row("a.jpg"))
    writer.flush()
    shutil.rmtree(folder)
    writer.write(ok_row("b.jpg"))
    with pytest.raises(OutputError, match=r"the output folder .*results'? no longer exists; 2 rows were in"):
        writer.flush()
    assert writer.abort() is None  # nothing kept: the abort must not claim otherwise


def test_a_stream_output_is_unaffected(tmp_path):
    stdout = io.StringIO()
    with ResultWriter("-", FIELDS, "csv", stdout=stdout, csv_safe=True) as writer:
        writer.write(ok_row(os.fsdecode(b"=caf\xe9.jpg")))
    assert stdout.getvalue().splitlines()[1].startswith("'=caf\\xe9.jpg,Bag,")


# --------------------------------------------------------------------------------- --save-preprocessed

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def classify(*args: object) -> tuple[int, str]:
    from fmnist_batch.cli import Environment, main

    env = Environment(stdin=io.StringIO(), stdout=io.StringIO(), stderr=io.StringIO())
    return main(["classify", *map(str, args)], env), env.stderr.getvalue()


@pytest.fixture
def two_photos(tmp_path, monkeypatch) -> Path:
    """photos/x.webp and photos/y.png (sample catalog photos), the current folder being tmp_path."""
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    with Image.open(SAMPLES / "ankle-boot" / "test-03368.png") as image:
        image.convert("RGB").save(tmp_path / "photos" / "x.webp")
    shutil.copy(SAMPLES / "ankle-boot" / "test-03368.png", tmp_path / "photos" / "y.png")
    return tmp_path


def test_a_preview_is_never_written_through_a_symlink_planted_at_its_name(two_photos):
    victim = two_photos / "victim.txt"
    victim.write_text("precious")
    (two_photos / "pre" / "photos").mkdir(parents=True)
    os.symlink(victim, "pre/photos/x.webp.png")
    status, err = classify("photos", "-o", "out.csv", "--save-preprocessed", "pre", "-q")
    assert victim.read_text() == "precious"
    assert status == 1, err  # the file whose preview could not be saved has an error row
    rows = {row["path"]: row for row in read_rows("out.csv")}
    assert rows["photos/x.webp"]["status"] == "error" and "symbolic link" in rows["photos/x.webp"]["error"]
    assert rows["photos/y.png"]["status"] != "error"
    assert not os.path.islink("pre/photos/y.png.png") and os.path.getsize("pre/photos/y.png.png") > 0


def test_previews_are_never_written_through_a_planted_folder_link(two_photos):
    elsewhere = two_photos / "elsewhere"
    elsewhere.mkdir()
    (two_photos / "pre").mkdir()
    os.symlink(elsewhere, "pre/photos")
    status, err = classify("photos", "-o", "out.csv", "--save-preprocessed", "pre", "-q")
    assert os.listdir(elsewhere) == []
    assert status == 1, err
    errors = [row["error"] for row in read_rows("out.csv")]
    assert len(errors) == 2 and all("symbolic link" in error for error in errors)


def test_a_preview_folder_inside_an_input_is_refused_before_any_work(two_photos):
    status, err = classify("photos", "-o", "out.csv", "--save-preprocessed", "photos/pre")
    assert status == 2, err
    assert "--save-preprocessed" in err and "inside" in err
    assert not os.path.exists("out.csv") and not os.path.exists("photos/pre")


def test_a_hidden_preview_folder_inside_an_input_is_not_classified_on_resume(two_photos):
    # discovery skips hidden folders, so previews there never become inputs
    assert classify("photos", "-o", "out.csv", "--save-preprocessed", "photos/.pre", "-q")[0] == 0
    assert len(list(Path("photos/.pre").rglob("*.png"))) == 2
    assert classify("photos", "-o", "out.csv", "--resume", "-q")[0] == 0
    assert sorted(row["path"] for row in read_rows("out.csv")) == ["photos/x.webp", "photos/y.png"]
