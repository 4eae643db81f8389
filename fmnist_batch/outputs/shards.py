"""Shard outputs: the record of which slice an output holds, and merging shard outputs into one.

A run with ``--shard K/N -o FILE`` writes ``FILE.shard.json`` next to its output: ``{"shard": "K/N",
"complete": false, "rows": null, "inputs": {...}}`` when it starts, and ``"complete": true`` with the
output's row count once every file of its slice has a row; ``inputs`` says which files were split (the
inputs resolved, and how folders were listed). merge() reads these records to tell what is missing, and
each output's settings record (``.FILE.settings.json``, written by every finished run) to tell that the
rows were all made the same way.

Gaps (merged output written; the CLI exits 1):
- a slice of 1..N that no shard output holds;
- a slice whose run did not finish (``complete`` false), or whose output no longer has the rows its run
  recorded;
- an output without a record when slices are checked (an output written to stdout and redirected);
- with ``inputs``, a file the inputs hold that no shard output has a row for;
- an output without a settings record: what its rows were made with cannot be checked, and the merged
  output gets no settings record (so a later --resume cannot check them either).
Refusals (nothing written; MergeError, the CLI exits 2): the same path in two rows, shard outputs with
different columns or formats, records that disagree on N or give one slice twice, outputs made with
different settings (model, top-k, min-confidence, conversion...) or of different inputs.

The merged output gets the shards' settings record, so --resume on it refuses other settings as it would
on a classify run's output.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from fmnist_batch.discover import STDIN, InputFile, Shard, discover, glob_root, is_glob
from fmnist_batch.files import atomic_write
from fmnist_batch.labels import IMAGE_EXTENSIONS
from fmnist_batch.outputs.destination import (
    check_destination,
    is_device_or_pipe,
    lock_output,
    release_lock,
    settings_path,
)
from fmnist_batch.outputs.errors import MergeError, OutputError
from fmnist_batch.outputs.formats import ENCODING, RowWriter, get_format, read_rows, resolve_format
from fmnist_batch.outputs.rows import row_fields
from fmnist_batch.outputs.shard_checks import check_same_inputs, common_settings
from fmnist_batch.outputs.writer import PARTIAL_SUFFIX

RECORD_SUFFIX = ".shard.json"
#: how many duplicate or uncovered paths a message lists
EXAMPLES = 5


@dataclass(frozen=True)
class ShardRecord:
    shard: Shard
    complete: bool
    rows: int | None
    #: which files were split (describe_inputs); None in records written before it was kept
    inputs: dict[str, Any] | None = None


def record_path(output: str) -> str:
    return output + RECORD_SUFFIX


def describe_inputs(inputs: Sequence[str], recursive: bool, extensions: Sequence[str]) -> dict[str, Any]:
    """What a shard run split, as merge compares it: each input resolved (``photos``, ``./photos/`` and
    ``/srv/photos`` are one folder; hosts see the share at the same place), and how folders were listed.
    Paths listed on stdin are not known here: ``-`` stands for them."""
    resolved = []
    for name in inputs:
        if name == STDIN or not is_glob(name) or os.path.lexists(name):
            resolved.append(name if name == STDIN else os.path.realpath(name))
        else:  # a pattern: its folder resolved, its wildcards as given
            root = glob_root(name)
            resolved.append(
                os.path.join(os.path.realpath(root or os.curdir), name[len(root) :].lstrip(os.sep))
            )
    exts = sorted({"." + ext.lower().lstrip(".") for ext in extensions})
    return {"inputs": resolved, "recursive": recursive, "extensions": exts}


def write_record(
    output: str, shard: Shard, *, rows: int | None = None, inputs: dict[str, Any] | None = None
) -> None:
    """Write (atomically) the record of `output`: unfinished while rows is None, else complete; `inputs`
    from describe_inputs()."""
    path = record_path(output)
    record = {"shard": str(shard), "complete": rows is not None, "rows": rows, "inputs": inputs}
    try:
        with atomic_write(path, encoding="utf-8") as file:
            json.dump(record, file)
            file.write("\n")
    except OSError as e:
        raise OutputError(f"cannot write the shard record {path!r}: {e.strerror}") from e


def read_record(output: str) -> ShardRecord | None:
    """The record next to `output`, or None if there is none; MergeError if it is damaged."""
    path = record_path(output)
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
        return ShardRecord(
            Shard.parse(data["shard"]), bool(data["complete"]), data["rows"], data.get("inputs")
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise MergeError(f"cannot read the shard record {path!r}: {e}") from e


@dataclass
class MergeReport:
    """What merge() wrote and the gaps it found (each gap a message)."""

    rows: int = 0
    count: int | None = None  # N, when known from --shards or the records
    gaps: list[str] = field(default_factory=list)


def merge(
    output: str,
    shard_outputs: Sequence[str],
    *,
    fmt: str | None = None,
    count: int | None = None,
    inputs: Sequence[str] | None = None,
    recursive: bool = True,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    on_warning: Callable[[str], None] | None = None,
    wait: bool = False,
) -> MergeReport:
    """Write the rows of `shard_outputs` (in the order given, each in its own order) into `output`,
    atomically; refuse duplicates (MergeError) and report gaps (see the module docstring).

    count is N, the number of slices the outputs should cover (default: what their records say); inputs,
    recursive and extensions rediscover the files to check that every one has a row (name the inputs as
    the shard runs did)."""
    fmt = resolve_format(output, fmt)
    _check_names(output, shard_outputs, fmt)
    count, records = _read_records(shard_outputs, count)
    check_same_inputs(records)
    settings, unknown = common_settings(shard_outputs)
    fields, paths, rows_per_output = _scan(shard_outputs)
    report = MergeReport(rows=sum(rows_per_output), count=count)
    if count is not None:
        report.gaps = _slice_gaps(records, rows_per_output, count)
    report.gaps += unknown
    if inputs is not None:
        found = discover(inputs, recursive=recursive, extensions=extensions, on_warning=on_warning)
        report.gaps += _uncovered(found, paths)
    _write_merged(output, shard_outputs, fields, fmt, wait, None if unknown else settings)
    return report


def _write_merged(
    output: str,
    shard_outputs: Sequence[str],
    fields: list[str],
    fmt: str,
    wait: bool,
    settings: dict[str, Any] | None,
) -> None:
    if output == "-" or is_device_or_pipe(output):
        # stdout or a pipe is written in place (renaming onto /dev/null would replace it), without a lock
        with _stream(output) as file:
            _copy_rows(shard_outputs, get_format(fmt).writer(file, fields))
        return
    # Locked like a classify run's output, so a merge never races a run (or another merge) writing it.
    check_destination(output)
    lock = lock_output(output, wait)
    try:
        with atomic_write(output, newline="", **ENCODING) as file:
            _copy_rows(shard_outputs, get_format(fmt).writer(file, fields))
        _write_settings(output, settings)
    except OSError as e:
        raise OutputError(f"cannot write {output!r}: {e.strerror}") from e
    finally:
        release_lock(output, lock)


def _write_settings(output: str, settings: dict[str, Any] | None) -> None:
    """Keep the shards' settings record beside the merged output, replacing one of an earlier output; with
    no record to give, remove a stale one, which would vouch for rows it never saw."""
    path = settings_path(output)
    if settings is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    with atomic_write(path, encoding="utf-8") as file:
        json.dump(settings, file)


def _copy_rows(shard_outputs: Sequence[str], write: RowWriter) -> None:
    for shard_output in shard_outputs:
        for row in read_rows(shard_output):
            write(row)


def _stream(output: str) -> contextlib.AbstractContextManager[TextIO]:
    if output == "-":
        return contextlib.nullcontext(sys.stdout)
    try:
        return open(output, "w", newline="", **ENCODING)
    except OSError as e:
        raise OutputError(f"cannot write {output!r}: {e.strerror}") from e


def _check_names(output: str, shard_outputs: Sequence[str], fmt: str) -> None:
    if not shard_outputs:
        raise MergeError("no shard outputs to merge")
    real_paths = [os.path.realpath(name) for name in shard_outputs]
    for name, real_path in zip(shard_outputs, real_paths, strict=True):
        if real_paths.count(real_path) > 1:
            raise MergeError(f"{name!r} is given more than once")
        if name.endswith(RECORD_SUFFIX):
            raise MergeError(f"{name!r} is a shard record; name the shard outputs themselves")
        if name.endswith(PARTIAL_SUFFIX):
            raise MergeError(f"{name!r} is an unfinished output; finish its shard with --resume first")
        if real_path == os.path.realpath(output):
            raise MergeError(f"the merged output {output!r} is also one of the shard outputs")
        if resolve_format(name, None) != fmt:
            raise MergeError(
                f"{name!r} is {resolve_format(name, None).upper()} but {output!r} would be {fmt.upper()}: "
                "merge writes the shards' format (name the output with the same suffix)"
            )


def _scan(shard_outputs: Sequence[str]) -> tuple[list[str], set[str], list[int]]:
    """(columns, every path, rows per output); MergeError for different columns or a duplicate path."""
    fields: list[str] | None = None
    fields_from = ""
    first_seen: dict[str, int] = {}  # path -> index of the output that holds it
    duplicates: list[str] = []
    duplicate_count = 0
    rows_per_output = []
    for number, name in enumerate(shard_outputs):
        columns = _columns(name)
        if columns is not None and "path" not in columns:
            raise MergeError(f"{name!r} has no path column: it is not an output of fmnist-batch classify")
        if fields is None:
            fields, fields_from = columns, name
        elif columns is not None and columns != fields:
            raise MergeError(
                f"{name!r} has the columns {', '.join(columns)}, {fields_from!r} has {', '.join(fields)} "
                "(a different --top-k?); merge only shards of one run"
            )
        rows = 0
        for row in read_rows(name):
            rows += 1
            if fields is None:  # a JSON Lines file says its columns in its rows
                if "path" not in row:
                    raise MergeError(
                        f"{name!r} has no path field: it is not an output of fmnist-batch classify"
                    )
                fields, fields_from = list(row), name
            elif list(row) != fields:
                raise MergeError(
                    f"{name!r} has rows with the columns {', '.join(row)}, not {', '.join(fields)}"
                )
            holder = first_seen.get(row["path"])
            if holder is None:
                first_seen[row["path"]] = number
                continue
            duplicate_count += 1
            if len(duplicates) < EXAMPLES:
                where = "twice" if holder == number else f"in {shard_outputs[holder]!r} and"
                duplicates.append(f"{row['path']!r} {where} {name!r}")
        rows_per_output.append(rows)
    if duplicate_count:
        raise MergeError(
            f"{duplicate_count} paths have more than one row, e.g. "
            + "; ".join(duplicates)
            + ". Shards of one split never overlap: were outputs of different splits, or one output twice, "
            "given?"
        )
    # no columns at all: every shard output is an empty JSON Lines file
    return fields or row_fields(3), set(first_seen), rows_per_output


def _columns(name: str) -> list[str] | None:
    """The columns a shard output declares even without rows (a CSV header), or None."""
    try:
        return get_format(resolve_format(name, None)).columns(name)
    except OSError as e:
        raise MergeError(f"cannot read {name!r}: {e.strerror}") from e


def _read_records(
    shard_outputs: Sequence[str], count: int | None
) -> tuple[int | None, dict[str, ShardRecord | None]]:
    """(N, each output's record); MergeError for records of different splits or one slice twice."""
    records = {name: read_record(name) for name in shard_outputs}
    present = {name: record for name, record in records.items() if record is not None}
    counts = {record.shard.count for record in present.values()}
    if count is None and len(counts) > 1:
        raise MergeError(
            "the shard outputs come from different splits ("
            + ", ".join(f"{name!r} holds {record.shard}" for name, record in present.items())
            + "); merge the outputs of one split"
        )
    if count is None and counts:
        count = counts.pop()
    holders: dict[int, str] = {}
    for name, record in present.items():
        if record.shard.count != count:
            raise MergeError(f"{name!r} holds slice {record.shard}, not a slice of {count}")
        if record.shard.index in holders:
            raise MergeError(
                f"slice {record.shard} is in both {holders[record.shard.index]!r} and {name!r}; "
                "merge one output per slice"
            )
        holders[record.shard.index] = name
    return count, records


def _slice_gaps(
    records: dict[str, ShardRecord | None], rows_per_output: Sequence[int], count: int
) -> list[str]:
    """Messages for the slices of 1..count that are missing, unfinished or changed, and unknown outputs."""
    gaps = []
    for (name, record), rows in zip(records.items(), rows_per_output, strict=True):
        if record is None:
            gaps.append(
                f"{name!r} has no shard record ({record_path(name)!r}), so which slice it holds is unknown "
                "(shards must be written with -o FILE)"
            )
        elif not record.complete:
            gaps.append(
                f"slice {record.shard} ({name!r}) did not finish: rerun its shard with --resume, then merge"
            )
        elif record.rows != rows:
            gaps.append(
                f"slice {record.shard} ({name!r}) has {rows} rows, but its run wrote {record.rows}: "
                "the file changed since"
            )
    held = {record.shard.index for record in records.values() if record is not None}
    missing = [str(Shard(index, count)) for index in range(1, count + 1) if index not in held]
    if missing:
        gaps.append(f"no shard output holds slice {', '.join(missing)}")
    return gaps


def _uncovered(found: Iterable[InputFile], paths: set[str]) -> list[str]:
    examples: list[str] = []
    missing = 0
    for file in found:
        if file.display not in paths:
            missing += 1
            if len(examples) < EXAMPLES:
                examples.append(repr(file.display))
    if not missing:
        return []
    more = f" and {missing - len(examples)} more" if missing > len(examples) else ""
    return [f"{missing} files of the inputs have no row in any shard output: {', '.join(examples)}{more}"]
