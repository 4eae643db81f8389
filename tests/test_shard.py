"""--shard K/N (discover's stable slices) and `fmnist-batch merge` (no overlap, gaps reported)."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import make_bad_files
from PIL import Image

from fmnist_batch.cli import Environment, main
from fmnist_batch.discover import Shard, discover, shard_key, slice_of
from fmnist_batch.outputs.destination import lock_output, release_lock
from fmnist_batch.outputs.formats import read_rows, resolve_format
from fmnist_batch.outputs.rows import row_fields
from fmnist_batch.outputs.shards import (
    RECORD_SUFFIX,
    MergeError,
    merge,
    read_record,
    record_path,
    write_record,
)
from fmnist_batch.outputs.writer import ResultWriter


class Captured(Environment):
    def __init__(self, stdin: str = ""):
        super().__init__(stdin=io.StringIO(stdin), stdout=io.StringIO(), stderr=io.StringIO())


def run(*args: object, stdin: str = "") -> tuple[int, str]:
    """(exit status, stderr) of an in-process `fmnist-batch ARGS`."""
    env = Captured(stdin)
    return main([str(a) for a in args], env), env.stderr.getvalue()


def touch(*names: str) -> None:
    for name in names:
        os.makedirs(os.path.dirname(name) or ".", exist_ok=True)
        open(name, "wb").close()


def tree(count: int, start: int = 0) -> list[str]:
    """`count` empty .jpg files spread over nested folders under photos/ (discover never opens them)."""
    names = [f"photos/{'ab'[i % 2]}/{i % 5}/img-{i:04d}.jpg" for i in range(start, start + count)]
    touch(*names)
    return names


def sliced(inputs: list[str], shard: Shard | None, **kwargs) -> list[str]:
    return [f.display for f in discover(inputs, shard=shard, **kwargs)]


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, dtype={"error": str})


# ------------------------------------------------------------------------------------------------ slices


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(("text", "expected"), [("1/3", (1, 3)), ("3/3", (3, 3)), (" 2 / 5 ", (2, 5))])
def test_shard_spec_parses(text, expected):
    shard = Shard.parse(text)
    assert (shard.index, shard.count) == expected
    assert str(shard) == f"{expected[0]}/{expected[1]}"


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "1-3", "3", "a/b", "", "-1/3", "1/3/5"])
def test_bad_shard_specs_are_refused(text):
    with pytest.raises(ValueError):
        Shard.parse(text)


def test_the_hash_is_pinned_so_hosts_on_other_versions_agree():
    # Changing slice_of would move files between slices across an upgrade: hosts running different
    # versions would then overlap and leave gaps. These values must never change.
    assert [slice_of(key, 3) for key in ("a.jpg", "shoes/b.png", "ünï/写真.jpg")] == [1, 1, 3]
    assert [slice_of(f"img-{i}.jpg", 7) for i in range(10)] == [5, 4, 7, 1, 1, 4, 7, 3, 7, 4]


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_slices_partition_the_files_no_overlap_no_gap(in_tmp, count):
    tree(300)
    everything = sliced(["photos"], None)
    slices = [sliced(["photos"], Shard(k, count)) for k in range(1, count + 1)]
    together = [path for part in slices for path in part]
    assert sorted(together) == sorted(everything)  # no gap, and (as long as the whole) no overlap
    for part in slices:
        assert part == [f for f in everything if f in set(part)]  # each slice keeps the input order
        assert len(part) > 300 / count / 2  # roughly balanced


def test_adding_files_moves_no_file_to_another_slice(in_tmp):
    tree(200)
    before = {k: set(sliced(["photos"], Shard(k, 3))) for k in (1, 2, 3)}
    tree(100, start=200)
    touch("photos/new-folder/first.jpg")
    after = {k: set(sliced(["photos"], Shard(k, 3))) for k in (1, 2, 3)}
    for k in (1, 2, 3):
        assert before[k] <= after[k]


def test_a_slice_does_not_depend_on_how_the_folder_is_named_or_mounted(in_tmp):
    tree(60)
    os.symlink(in_tmp / "photos", in_tmp / "mounted-elsewhere")

    def relative_slice(name: str, k: int) -> set[str]:
        return {os.path.relpath(p, name) for p in sliced([name], Shard(k, 3))}

    for k in (1, 2, 3):
        expected = relative_slice("photos", k)
        assert relative_slice("./photos/", k) == expected
        assert relative_slice(str(in_tmp / "photos"), k) == expected
        assert relative_slice("mounted-elsewhere", k) == expected
        globbed = {os.path.relpath(p, "photos") for p in sliced(["photos/**/*.jpg"], Shard(k, 3))}
        assert globbed == expected


def test_shard_keys():
    assert shard_key("photos/a/b.jpg", "photos") == os.path.join("a", "b.jpg")
    assert shard_key("./photos/b.jpg", "./photos/") == "b.jpg"
    assert shard_key("/srv/share/b.jpg", "/srv/share") == "b.jpg"
    assert shard_key("./b.jpg", "./b.jpg") == "b.jpg"  # a file named explicitly: its path, normalised
    assert shard_key("b.jpg", "") == "b.jpg"  # a glob with no folder part ("*.jpg")


def test_files_reached_twice_or_listed_on_stdin_land_in_one_slice(in_tmp):
    names = tree(90)
    inputs = ["photos", "photos/a", *names[:10], "-"]
    listed = names[40:60]
    everything = sliced(inputs, None, stdin_paths=iter(listed))
    slices = [sliced(inputs, Shard(k, 4), stdin_paths=iter(listed)) for k in (1, 2, 3, 4)]
    assert sorted(path for part in slices for path in part) == sorted(everything)


def test_files_of_other_slices_are_reported_to_a_callback(in_tmp):
    tree(30)
    others = []
    mine = list(discover(["photos"], shard=Shard(2, 3), on_other_slice=others.append))
    assert len(mine) + len(others) == 30 and mine and others


# ------------------------------------------------------------------------------------------------ classify


def small_photos(folder: Path, count: int) -> list[Path]:
    """Tiny PNG photos: enough for the shard bookkeeping, quick to classify."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        image = Image.new("RGB", (40, 60), (250, 250, 250))
        image.paste((20 + 7 * i % 200, 40, 90), (8, 10 + i % 20, 32, 50))
        paths.append(folder / f"p{i:03d}.png")
        image.save(paths[-1])
    return paths


@pytest.mark.parametrize("spec", ["0/3", "4/3", "1-3", "x", "1/0"])
def test_classify_refuses_a_bad_shard_spec_with_usage_error(tmp_path, spec, capsys):
    small_photos(tmp_path / "photos", 1)
    status, _ = run("classify", tmp_path / "photos", "--shard", spec, "-o", tmp_path / "out.csv")
    assert status == 2
    assert "--shard" in capsys.readouterr().err
    assert not (tmp_path / "out.csv").exists()


def test_ray_address_needs_the_ray_engine(tmp_path):
    small_photos(tmp_path / "photos", 1)
    status, err = run("classify", tmp_path / "photos", "--ray-address", "auto", "-o", tmp_path / "o.csv")
    assert status == 2 and "--engine ray" in err


def test_a_shard_run_records_its_slice_and_rows(tmp_path):
    small_photos(tmp_path / "photos", 12)
    out = tmp_path / "out-2.csv"
    status, _ = run("classify", tmp_path / "photos", "--shard", "2/3", "-o", out, "-q")
    assert status == 0
    record = read_record(str(out))
    assert record is not None and str(record.shard) == "2/3" and record.complete
    assert record.rows == len(read_csv(out)) > 0
    assert json.loads(Path(record_path(str(out))).read_text())["shard"] == "2/3"


def test_an_empty_slice_is_not_an_error(tmp_path):
    photos = small_photos(tmp_path / "photos", 1)
    empty = next(k for k in range(1, 6) if slice_of(photos[0].name, 5) != k)
    out = tmp_path / "out.csv"
    status, err = run("classify", tmp_path / "photos", "--shard", f"{empty}/5", "-o", out)
    assert status == 0, err
    assert f"slice {empty}/5 holds none of the 1 files found" in err
    assert len(read_csv(out)) == 0 and read_record(str(out)).rows == 0


def test_a_shard_resumes_within_its_slice_after_files_were_added(tmp_path):
    small_photos(tmp_path / "photos", 10)
    out = tmp_path / "out.csv"
    assert run("classify", tmp_path / "photos", "--shard", "1/2", "-o", out, "-q")[0] == 0
    first = set(read_csv(out)["path"])
    small_photos(tmp_path / "photos", 20)  # ten more (the first ten rewritten, same names)
    status, err = run("classify", tmp_path / "photos", "--shard", "1/2", "-o", out, "--resume")
    assert status == 0, err
    rows = read_csv(out)
    expected = {f.display for f in discover([str(tmp_path / "photos")], shard=Shard(1, 2))}
    assert set(rows["path"]) == expected and len(rows) == len(expected)
    assert first <= expected
    assert read_record(str(out)).rows == len(expected)


def test_shards_writing_different_outputs_do_not_block_each_other(tmp_path):
    small_photos(tmp_path / "photos", 6)
    held = lock_output(str(tmp_path / "out-1.csv"))  # shard 1 is running
    try:
        status, err = run("classify", tmp_path / "photos", "--shard", "2/2", "-o", tmp_path / "out-2.csv")
        assert status == 0, err
        status, _ = run("classify", tmp_path / "photos", "--shard", "1/2", "-o", tmp_path / "out-1.csv")
        assert status == 75  # the same output: one writer
    finally:
        release_lock(str(tmp_path / "out-1.csv"), held)


# --------------------------------------------------------------------------------------------------- merge


def shard_runs(inputs: list[object], folder: Path, count: int, suffix: str = "csv", *extra) -> list[Path]:
    outputs = []
    for k in range(1, count + 1):
        out = folder / f"labels-{k}.{suffix}"
        status, err = run("classify", *inputs, "--shard", f"{k}/{count}", "-o", out, "-q", *extra)
        assert status in (0, 1), err
        outputs.append(out)
    return outputs


def same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    a, b = a.set_index("path").sort_index(), b.set_index("path").sort_index()
    assert list(a.index) == list(b.index)
    for column in a.columns:
        if column == "confidence" or column.endswith("_prob"):
            assert (a[column] == "").tolist() == (b[column] == "").tolist(), column  # error rows
            left, right = (pd.to_numeric(frame[column][frame[column] != ""]) for frame in (a, b))
            assert ((left - right).abs() <= 1e-6).all(), column
        else:
            assert a[column].tolist() == b[column].tolist(), column


def test_merged_shards_equal_an_unsharded_run_on_rendered_photos(catalog, tmp_path):
    bad = make_bad_files(tmp_path / "bad")
    inputs = [catalog[0][0].parent, *bad.values()]
    outputs = shard_runs(inputs, tmp_path, 3)
    assert all(len(read_csv(out)) for out in outputs)  # ~100 files: no slice of 3 is empty
    merged = tmp_path / "labels.csv"
    status, err = run("merge", merged, *outputs, "--inputs", *inputs)
    assert status == 0, err
    assert "merged 3 files" in err and "3 slices" in err
    whole = tmp_path / "whole.csv"
    assert run("classify", *inputs, "-o", whole, "-q")[0] == 1  # the bad files
    same_rows(read_csv(merged), read_csv(whole))
    assert (read_csv(merged)["status"] == "error").sum() == len(bad)


def test_merge_keeps_jsonl_as_jsonl(tmp_path):
    small_photos(tmp_path / "photos", 9)
    outputs = shard_runs([tmp_path / "photos"], tmp_path, 2, "jsonl")
    merged = tmp_path / "labels.jsonl"
    assert run("merge", merged, *outputs)[0] == 0
    rows = [json.loads(line) for line in merged.read_text().splitlines()]
    assert len(rows) == 9 and all(isinstance(row["confidence"], float) for row in rows)
    status, err = run("merge", tmp_path / "labels.csv", *outputs)
    assert status == 2 and "JSONL" in err


def test_merge_refuses_duplicate_paths_and_writes_nothing(tmp_path):
    small_photos(tmp_path / "photos", 9)
    outputs = shard_runs([tmp_path / "photos"], tmp_path, 2)
    whole = tmp_path / "whole.csv"
    assert run("classify", tmp_path / "photos", "-o", whole, "-q")[0] == 0  # no record: rows overlap
    merged = tmp_path / "labels.csv"
    status, err = run("merge", merged, *outputs, whole)
    assert status == 2
    assert "paths have more than one row" in err and str(tmp_path / "photos" / "p000.png") in err
    assert not merged.exists() and not Path(str(merged) + ".partial").exists()
    status, err = run("merge", merged, outputs[0], outputs[0])
    assert status == 2 and "more than once" in err


def test_merge_refuses_shards_of_different_splits(tmp_path):
    small_photos(tmp_path / "photos", 9)
    (tmp_path / "halves").mkdir()
    (tmp_path / "thirds").mkdir()
    halves = shard_runs([tmp_path / "photos"], tmp_path / "halves", 2)
    thirds = shard_runs([tmp_path / "photos"], tmp_path / "thirds", 3)
    status, err = run("merge", tmp_path / "labels.csv", halves[0], thirds[1])
    assert status == 2 and "different splits" in err
    status, err = run("merge", tmp_path / "labels.csv", *thirds, "--shards", 2)
    assert status == 2 and "not a slice of 2" in err
    shutil.copy(thirds[0], tmp_path / "copy.csv")
    shutil.copy(record_path(str(thirds[0])), record_path(str(tmp_path / "copy.csv")))
    status, err = run("merge", tmp_path / "labels.csv", thirds[0], tmp_path / "copy.csv")
    assert status == 2 and "slice 1/3 is in both" in err


def test_merge_reports_a_missing_slice_and_files_without_rows_but_writes_the_rest(tmp_path):
    small_photos(tmp_path / "photos", 12)
    outputs = shard_runs([tmp_path / "photos"], tmp_path, 3)
    kept = [outputs[0], outputs[2]]
    merged = tmp_path / "labels.csv"
    status, err = run("merge", merged, *kept, "--inputs", tmp_path / "photos")
    assert status == 1
    assert "no shard output holds slice 2/3" in err
    missing = len(read_csv(outputs[1]))
    assert f"{missing} files of the inputs have no row in any shard output" in err
    assert len(read_csv(merged)) == 12 - missing


def test_merge_reports_an_unfinished_or_changed_shard(tmp_path):
    small_photos(tmp_path / "photos", 12)
    outputs = shard_runs([tmp_path / "photos"], tmp_path, 2)
    write_record(str(outputs[0]), Shard(1, 2))  # as a run that was killed left it
    lines = outputs[1].read_text().splitlines(keepends=True)
    outputs[1].write_text("".join(lines[:-1]))  # a row lost since its run finished
    status, err = run("merge", tmp_path / "labels.csv", *outputs)
    assert status == 1
    assert "slice 1/2" in err and "did not finish" in err
    assert "slice 2/2" in err and "the file changed since" in err


def test_merge_with_shards_n_reports_outputs_without_a_record(tmp_path):
    small_photos(tmp_path / "photos", 6)
    out = tmp_path / "labels-1.csv"
    status, _ = run("classify", tmp_path / "photos", "--shard", "1/1", "-o", "-", "-q")
    assert status == 0  # to stdout: no record can be written
    status, _ = run("classify", tmp_path / "photos", "-o", out, "-q")
    status, err = run("merge", tmp_path / "labels.csv", out, "--shards", 1)
    assert status == 1 and "has no shard record" in err and "no shard output holds slice 1/1" in err
    status, err = run("merge", tmp_path / "labels2.csv", out)  # no records, no --shards: nothing to check
    assert status == 0 and "slices not checked" in err


def test_merge_usage_errors(tmp_path):
    small_photos(tmp_path / "photos", 4)
    (out,) = shard_runs([tmp_path / "photos"], tmp_path, 1)
    assert run("merge", tmp_path / "labels.csv")[0] == 2  # no shard outputs
    assert run("merge", tmp_path / "labels.csv", tmp_path / "missing.csv")[0] == 2
    status, err = run("merge", out, out)
    assert status == 2 and "also one of the shard outputs" in err
    status, err = run("merge", tmp_path / "labels.csv", record_path(str(out)))
    assert status == 2 and "shard record" in err
    status, err = run("merge", tmp_path / "x.csv", out, "--inputs", tmp_path / "nope")
    assert status == 2 and "no such file" in err
    held = lock_output(str(tmp_path / "labels.csv"))
    try:
        assert run("merge", tmp_path / "labels.csv", out)[0] == 75
    finally:
        release_lock(str(tmp_path / "labels.csv"), held)


# ------------------------------------------------------------------------------------ merge, by the API


def shard_output(path: Path, shard: Shard, paths: list[str]) -> str:
    """A finished shard output written by the writer, with its record, as a shard run leaves them."""
    fields = row_fields(1)
    with ResultWriter(str(path), fields, resolve_format(str(path), None)) as writer:
        for name in paths:
            writer.write({"path": name, "label": "Bag", "confidence": 0.5, "status": "ok", "error": ""})
    write_record(str(path), shard, rows=len(paths))
    return str(path)


@pytest.mark.parametrize("suffix", ["jsonl", "ndjson", "csv"])
def test_merge_writes_shards_in_their_format(tmp_path, suffix):
    first = shard_output(tmp_path / f"a.{suffix}", Shard(1, 3), ["a.jpg", "b.jpg"])
    empty = shard_output(tmp_path / f"b.{suffix}", Shard(2, 3), [])  # a JSONL file then has no columns
    last = shard_output(tmp_path / f"c.{suffix}", Shard(3, 3), ["c, d.jpg"])
    merged = str(tmp_path / f"labels.{suffix}")
    report = merge(merged, [first, empty, last])
    assert report.gaps == [] and report.rows == 3 and report.count == 3
    rows = list(read_rows(merged))
    assert [row["path"] for row in rows] == ["a.jpg", "b.jpg", "c, d.jpg"]
    assert list(rows[0]) == row_fields(1)
    if suffix != "csv":
        assert rows[0]["confidence"] == 0.5  # numbers stay numbers
        assert all(json.loads(line) for line in Path(merged).read_text().splitlines())
    shards = [f"{name}.{suffix}{tail}" for name in "abc" for tail in ("", RECORD_SUFFIX)]
    # what each run's rows were made with, and the merged output's, which is theirs
    settings = [f".{name}.{suffix}.settings.json" for name in ("a", "b", "c", "labels")]
    assert sorted(os.listdir(tmp_path)) == sorted([*shards, *settings, f"labels.{suffix}"])


def test_merge_refuses_a_jsonl_duplicate(tmp_path):
    first = shard_output(tmp_path / "a.jsonl", Shard(1, 2), ["a.jpg"])
    second = shard_output(tmp_path / "b.jsonl", Shard(2, 2), ["a.jpg"])
    with pytest.raises(MergeError, match="more than one row"):
        merge(str(tmp_path / "labels.jsonl"), [first, second])
    assert not (tmp_path / "labels.jsonl").exists()


# ------------------------------------------------------------------------- merge checks what it joins


def test_merge_refuses_shards_made_with_other_settings_naming_each_key(tmp_path):
    small_photos(tmp_path / "photos", 8)
    first, second, merged = tmp_path / "l-1.csv", tmp_path / "l-2.csv", tmp_path / "m.csv"
    strict = ("--background", "products", "--min-confidence", "0.9")
    assert run("classify", tmp_path / "photos", "--shard", "1/2", "-o", first, "-q", *strict)[0] == 0
    assert run("classify", tmp_path / "photos", "--shard", "2/2", "-o", second, "-q")[0] == 0
    status, err = run("merge", merged, first, second)
    assert status == 2, err
    lines = err.splitlines()
    # one line per setting that differs, with both values; nothing about the settings that agree
    assert any("conversion.background: 'products'" in line and "'auto'" in line for line in lines)
    assert any("min_confidence" in line and "0.9" in line and "0.55" in line for line in lines)
    assert "top_k" not in err and "sharpen" not in err
    assert not merged.exists() and not Path(tmp_path / ".m.csv.settings.json").exists()


def test_merge_refuses_shards_of_different_inputs(tmp_path):
    small_photos(tmp_path / "shirt", 6)
    small_photos(tmp_path / "dress", 6)
    first, second, merged = tmp_path / "l-1.csv", tmp_path / "l-2.csv", tmp_path / "m.csv"
    assert run("classify", tmp_path / "shirt", "--shard", "1/2", "-o", first, "-q")[0] == 0
    assert run("classify", tmp_path / "dress", "--shard", "2/2", "-o", second, "-q")[0] == 0
    status, err = run("merge", merged, first, second)
    assert status == 2, err
    assert "inputs" in err and "shirt" in err and "dress" in err
    assert not merged.exists()


def test_a_merged_output_keeps_the_shards_settings_for_resume(tmp_path):
    photos = tmp_path / "photos"
    small_photos(photos, 8)
    merged = tmp_path / "m.csv"
    # an older output of other settings, whose settings record merge must replace
    assert run("classify", photos, "-o", merged, "-q", "--min-confidence", "0.9")[0] == 0
    outputs = shard_runs([photos], tmp_path, 2)
    status, err = run("merge", merged, *outputs)
    assert status == 0, err
    sidecar = tmp_path / ".m.csv.settings.json"
    shards_settings = json.loads((tmp_path / ".labels-1.csv.settings.json").read_text())
    assert json.loads(sidecar.read_text()) == shards_settings
    status, err = run("classify", photos, "-o", merged, "--resume", "--min-confidence", "0.9")
    assert status == 2 and "min_confidence" in err
    status, err = run("classify", photos, "-o", merged, "--resume")
    assert status == 0, err
    assert len(read_csv(merged)) == 8
