"""The journal of a run: ``<output>.partial``, JSON Lines whatever the output's format.

    {"journal": 1, "columns": ["path", ...], "settings": {"model_sha256": ..., "top_k": 3, ...}}
    {"row": {"path": "photos/a.jpg", ...}, "file": {"real": "/srv/photos/a.jpg", "size": 5120,
     "mtime_ns": 1718000000000000000}}
    ...

The first line (the header) holds the columns and the settings that shaped the rows; a resumed run must
match them. Each further line is one row and the file it is for, as the file was when it was classified:
its resolved path, size and mtime, so a file changed since is classified again. Rows carried over from a
finished output say ``"before_ns"`` instead of size and mtime: valid while the file's mtime is before
the moment that output was written.

Lines are written with JSON's \\u escapes for everything beyond ASCII: a name's undecodable bytes (lone
surrogates from os.fsdecode) survive exactly, and the file is plain ASCII. The writer flushes and fsyncs
it at every flush(); a last line cut short by a killed run is dropped when read, and cut off before a
resumed run appends. It is only ever opened with O_NOFOLLOW: a symlink planted at its name is refused,
never followed.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from fmnist_batch.files import fsync_folder, temporary_sibling
from fmnist_batch.outputs.errors import OutputError

PARTIAL_SUFFIX = ".partial"
VERSION = 1


@dataclass(frozen=True)
class FileState:
    """Which file a row is for (its resolved path) and how it was then."""

    real: str
    size: int | None = None
    mtime_ns: int | None = None
    #: for rows of a finished output: the row holds while the file's mtime is before this
    before_ns: int | None = None

    @classmethod
    def of(cls, real: str, path: str) -> FileState:
        """The state of the file at `path` now (`real`: its resolved path); no size if it is gone."""
        try:
            info = os.stat(path)
        except OSError:
            return cls(real)
        return cls(real, info.st_size, info.st_mtime_ns)

    def still_holds(self, now: FileState) -> bool:
        """Whether a row made when the file was `self` still describes the file as it is `now`."""
        if now.size is None:
            return False  # gone or unreadable: classify it again, so its row says so
        if self.before_ns is not None:
            # strictly before: file times tick coarsely (a few ms), so "equal" may well be "just after"
            return now.mtime_ns < self.before_ns
        return (self.size, self.mtime_ns) == (now.size, now.mtime_ns)

    def to_json(self) -> dict[str, Any]:
        if self.before_ns is not None:
            return {"real": self.real, "before_ns": self.before_ns}
        return {"real": self.real, "size": self.size, "mtime_ns": self.mtime_ns}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FileState:
        return cls(data["real"], data.get("size"), data.get("mtime_ns"), data.get("before_ns"))


def header(columns: list[str], settings: Mapping[str, Any]) -> dict[str, Any]:
    # through JSON once, so a header compares equal to itself read back (tuples become lists...)
    return {"journal": VERSION, "columns": list(columns), "settings": json.loads(json.dumps(settings))}


class Journal:
    """A journal open for appending; add() buffers a line, flush() makes every line so far durable."""

    def __init__(self, file: io.TextIOWrapper, path: str, entries: int) -> None:
        self._file = file
        self.path = path
        self.entries = entries  # rows in the file, this one's index is entries - 1

    @classmethod
    def create(cls, partial: str, first_line: Mapping[str, Any]) -> Journal:
        """A new journal under a random temporary name next to `partial` (O_EXCL: nothing planted is
        opened); publish() moves it onto `partial`."""
        fd, temporary = temporary_sibling(partial)
        journal = cls(_text_file(fd, "w"), temporary, 0)
        try:
            journal._write_line(first_line)
        except BaseException:
            journal.discard()
            raise
        return journal

    @classmethod
    def reopen(cls, partial: str, end: int, entries: int) -> Journal:
        """The existing journal `partial`, cut to `end` (the end of its last whole line), for appending."""
        fd = os.open(partial, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.ftruncate(fd, end)
        except BaseException:
            os.close(fd)
            raise
        return cls(_text_file(fd, "a"), partial, entries)

    def add(self, row: Mapping[str, Any], state: FileState) -> int:
        """Append a row (buffered until flush()); returns its index."""
        self._write_line({"row": row, "file": state.to_json()})
        self.entries += 1
        return self.entries - 1

    def flush(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def is_linked(self) -> bool:
        """False once the file was deleted (with its folder, say): what is written now goes nowhere."""
        return os.fstat(self._file.fileno()).st_nlink > 0

    def publish(self, partial: str) -> None:
        """Move a journal made by create() onto `partial`, durably."""
        self.flush()
        os.replace(self.path, partial)
        self.path = partial
        with contextlib.suppress(OSError):
            fsync_folder(partial)

    def close(self) -> None:
        self._file.close()

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)

    def _write_line(self, data: Mapping[str, Any]) -> None:
        self._file.write(json.dumps(data, ensure_ascii=True) + "\n")


class JournalReader:
    """Reads a journal: header(), then entries(); `end` is then the offset after the last whole line."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.end = 0
        self._line = 0
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise OutputError(
                    f"{path!r} is a symbolic link, not a run's partial file; refusing to read it "
                    "(remove it, or rerun without --resume)"
                ) from None
            raise OutputError(f"cannot read {path!r}: {e.strerror}") from e
        self._file = os.fdopen(fd, "rb")
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            self.close()
            raise OutputError(f"{path!r} is not a regular file; refusing to read it")

    def __enter__(self) -> JournalReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def header(self) -> dict[str, Any]:
        first = next(self._lines(), None)
        if not isinstance(first, dict) or first.get("journal") != VERSION or "columns" not in first:
            raise OutputError(
                f"{self.path!r} is not the partial file of a run of this version of fmnist-batch; "
                "rerun without --resume to start over"
            )
        return first

    def entries(self) -> Iterator[tuple[dict[str, Any], FileState]]:
        """(row, the state of its file) per line after the header."""
        for data in self._lines():
            try:
                yield data["row"], FileState.from_json(data["file"])
            except (KeyError, TypeError) as e:
                raise OutputError(f"{self.path!r} line {self._line} is not a journal entry") from e

    def _lines(self) -> Iterator[Any]:
        for line in self._file:
            if not line.endswith(b"\n"):
                return  # the last line, cut short by a killed run
            self._line += 1
            try:
                data = json.loads(line)
            except ValueError as e:
                raise OutputError(f"{self.path!r} line {self._line} is damaged: {e}") from e
            self.end += len(line)
            yield data


def journal_rows(path: str) -> Iterator[dict[str, Any]]:
    """The rows in the journal at `path`, as written (names exact, not escaped)."""
    with JournalReader(path) as reader:
        reader.header()
        for row, _ in reader.entries():
            yield row


def count_rows(path: str) -> int:
    """The rows in the journal at `path`, one a file (a file classified again has a later row that
    replaces its first); 0 if there is none, or it is a symlink or not a journal."""
    try:
        with JournalReader(path) as reader:
            reader.header()
            return len({state.real for _, state in reader.entries()})
    except OutputError:
        return 0


def _text_file(fd: int, mode: str) -> io.TextIOWrapper:
    # ensure_ascii lines: ASCII is all that is ever written
    return os.fdopen(fd, mode, encoding="ascii", newline="\n")
