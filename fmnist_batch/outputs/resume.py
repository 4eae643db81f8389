"""Resuming a run: which rows of earlier runs stay, and which files still need a row.

Rows are matched to files by what the files are (their resolved path), never by how the inputs were
spelled (``photos``, ``./photos/``, ``/srv/photos``, a symlink to it). A row stays while its file is
unchanged; a file changed since (size or mtime), and with retry_errors a file whose row is an error, is
classified again and its old row dropped.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from fmnist_batch.outputs.errors import OutputError, SettingsMismatch
from fmnist_batch.outputs.formats import Format, read_rows, unescape
from fmnist_batch.outputs.journal import FileState, Journal


class Carried:
    """The rows of earlier runs, by file: the journal index of the one that counts, and its file's state.
    Holds a path and two numbers per file, never the rows."""

    def __init__(self, retry_errors: bool) -> None:
        self.retry_errors = retry_errors
        self._live: dict[str, tuple[int, FileState]] = {}
        self._errors: set[str] = set()  # files whose carried row is an error row (retry_errors=False)

    @property
    def count(self) -> int:
        """Rows that go into the output unless their file turns out changed."""
        return len(self._live)

    @property
    def errors(self) -> int:
        """Of those, the error rows: a run that keeps them has not classified every file."""
        return len(self._errors & self._live.keys())

    def add(self, index: int, row: Mapping[str, Any], state: FileState) -> None:
        """An earlier row, in journal order: a later row for the same file replaces it."""
        failed = row.get("status") == "error"
        if self.retry_errors and failed:
            self._live.pop(state.real, None)  # not carried over: its file is pending again
            return
        self._live[state.real] = (index, state)
        if failed:
            self._errors.add(state.real)
        else:
            self._errors.discard(state.real)

    def keeps(self, now: FileState) -> bool:
        """Whether the file (as it is `now`) already has a row that holds; if its row is stale, the row
        is dropped and the file needs a new one."""
        entry = self._live.get(now.real)
        if entry is None:
            return False
        if entry[1].still_holds(now):
            return True
        del self._live[now.real]
        return False

    def replace(self, real: str) -> None:
        """This run wrote a new row for the file: its earlier row, if any, no longer counts."""
        self._live.pop(real, None)

    def counts(self, index: int, real: str) -> bool:
        """Whether the earlier row at journal `index` (for the file `real`) goes into the output."""
        entry = self._live.get(real)
        return entry is not None and entry[0] == index


def carry_over_output(
    output: str, format: Format, columns: list[str], csv_safe: bool, journal: Journal, carried: Carried
) -> None:
    """Copy the rows of a finished output into a new journal (the cron case: nightly --resume with no
    partial). Each row's file is what its path names from the current folder, and its row holds while
    the file was last modified before the output was written."""
    written_ns = os.stat(output).st_mtime_ns
    declared = format.columns(output)
    if declared is not None:
        check_columns(declared, columns, output)
    for row in read_rows(output, format.name, csv_safe=csv_safe):
        check_columns(list(row), columns, output)
        row = {key: unescape(value) if isinstance(value, str) else value for key, value in row.items()}
        state = FileState(os.path.realpath(row["path"]), before_ns=written_ns)
        carried.add(journal.add(row, state), row, state)


def check_header(
    found: Mapping[str, Any], columns: list[str], settings: Mapping[str, Any], path: str
) -> None:
    """Raise unless a journal's header (`found`) matches this run's columns and settings."""
    check_columns(found["columns"], columns, path)
    differ = settings_differences(found.get("settings") or {}, settings)
    if differ:
        # one line a setting, so a changed conversion option is not lost in two dicts of a dozen keys
        described = "".join(f"\n  {key}: {then} then, {now} now" for key, then, now in differ)
        raise SettingsMismatch(
            f"cannot resume from {path!r}: its rows were made with other settings:{described}\nrerun "
            "with the same settings, or without --resume to start over"
        )


def settings_differences(
    first: Mapping[str, Any], second: Mapping[str, Any], prefix: str = ""
) -> list[tuple[str, str, str]]:
    """(key, value in first, value in second) for each setting that differs; the keys of nested settings
    (the conversion's) are spelled ``conversion.background``."""
    differ = []
    for key in sorted(first.keys() | second.keys()):
        a, b = first.get(key, _NOT_SET), second.get(key, _NOT_SET)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            differ += settings_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            differ.append((prefix + key, _shown(a), _shown(b)))
    return differ


def check_columns(found: list[str], columns: list[str], path: str) -> None:
    """Raise unless the columns of an earlier run (`found`) are this run's."""
    if found != columns:
        raise OutputError(
            f"cannot resume from {path!r}: it has the columns {', '.join(found)}, this run writes "
            f"{', '.join(columns)} (a different --top-k?); rerun with the same settings, or without "
            "--resume to start over"
        )


_NOT_SET = object()


def _shown(value: object) -> str:
    return "not set" if value is _NOT_SET else repr(value)
