"""Result files: CSV / JSON Lines writers with atomic replacement, and reading a previous run back.

A row is a plain dict per input file, keyed by row_fields(top_k). For an output file the rows stream into
a sibling ``<name>.partial`` (flushed and fsync'ed at every flush(), so a killed run leaves it for
--resume), and only finish() or abort() rename it onto ``<name>``.

Text is UTF-8; file names that are not valid UTF-8 (os.fsdecode gave them surrogate escapes) are written
back as their original bytes, so a resumed run recognises them. Nothing here prints.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import json
import os
import stat
import sys
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import IO, TextIO

FORMATS = ("csv", "jsonl")
PARTIAL_SUFFIX = ".partial"
_JSONL_SUFFIXES = (".jsonl", ".ndjson")
_ENCODING = {"encoding": "utf-8", "errors": "surrogateescape"}


class OutputLocked(Exception):
    """Another run is writing the same output (the CLI exits 75, EX_TEMPFAIL)."""


class OutputError(Exception):
    """The results cannot be written or a previous run cannot be read; the message says what to do."""


def row_fields(top_k: int) -> list[str]:
    """The output columns for top_k predictions per file."""
    fields = ["path", "label", "confidence"]
    for k in range(1, top_k + 1):
        fields += [f"top{k}_label", f"top{k}_prob"]
    return [*fields, "status", "error"]


def resolve_format(output: str, fmt: str | None) -> str:
    """An explicit format wins; else a .jsonl / .ndjson suffix means JSON Lines; else CSV (stdout too)."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown output format {fmt!r}; expected one of: {', '.join(FORMATS)}")
        return fmt
    return "jsonl" if output.lower().endswith(_JSONL_SUFFIXES) else "csv"


class ResultWriter:
    """Streams rows to `output` ('-' = the `stdout` stream, sys.stdout if not given).

    For a file, rows go to ``<output>.partial`` in the same folder, flushed and fsync'ed at every flush().
    finish() renames it onto `output` atomically. abort() (Ctrl-C, SIGTERM, any error) renames what was
    written into place too, so every finished row is kept; if no row was written at all, it removes the
    partial instead and leaves an existing `output` alone. As a context manager: finish() on a clean exit,
    abort() on an exception, which then propagates.

    resume=True carries the rows of a previous run over, from ``<output>.partial`` (newer) and `output`,
    each path once; their paths are in `done`, for the pipeline to skip. The columns must match.
    """

    def __init__(
        self,
        output: str,
        fields: list[str],
        fmt: str,
        *,
        stdout: TextIO | None = None,
        resume: bool = False,
        wait: bool = False,
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown output format {fmt!r}; expected one of: {', '.join(FORMATS)}")
        self.output = output
        self.fields = list(fields)
        self.fmt = fmt
        self.done: set[str] = set()
        self.rows = 0  # rows in the output so far, carried-over ones included
        self._rows_flushed = 0
        self._closed = False
        self._field_set = set(self.fields)
        self._owns_stream = False
        self._lock: int | None = None
        if output == "-" or _is_device_or_pipe(output):
            # Streams are written as they are: renaming a file onto /dev/null (as root) would replace it.
            if resume:
                raise OutputError(f"--resume needs a regular output file; {output!r} cannot be read back")
            self.partial: str | None = None
            if output == "-":
                self._file: IO[str] = stdout if stdout is not None else sys.stdout
            else:
                self._file = _open_stream(output)
                self._owns_stream = True
            self._start()
        else:
            _check_destination(output)
            self.partial = output + PARTIAL_SUFFIX
            # Locked before the partial is touched: a second run must not truncate the first one's rows.
            self._lock = lock_output(output, wait)
            try:
                self._open_partial(resume)
            except BaseException:
                self._release_lock()
                raise

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.abort()

    def write(self, row: dict) -> None:
        """Queue one row; columns it lacks are written empty (None in JSON Lines)."""
        unknown = row.keys() - self._field_set
        if unknown:
            raise ValueError(f"row has columns the output does not: {sorted(unknown)}")
        self._guarded(self._write_record, row)

    def flush(self) -> None:
        """Make every row written so far durable: a crash after this loses none of them."""
        self._guarded(self._flush_to_disk)

    def finish(self) -> None:
        """Flush and (for a file) move the results into place."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        if self.partial is None:
            if self._owns_stream:
                self._file.close()
            return
        self._file.close()
        try:
            os.replace(self.partial, self.output)
        except OSError as e:
            raise OutputError(f"cannot move {self.partial!r} onto {self.output!r}: {e.strerror}") from e
        finally:
            self._release_lock()
        # Best effort: makes the rename durable, so after a power cut the output is the old file or the new.
        with contextlib.suppress(OSError):
            _fsync_folder(self.output)

    def abort(self) -> None:
        """Keep what was written (see the class docstring); never raises, the caller is already failing."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            if self.partial is not None or self._owns_stream:
                self._file.close()
            else:
                self._file.flush()
        if self.partial is None:
            return
        # If this fails the partial stays where it is, and --resume still finds it.
        with contextlib.suppress(OSError):
            if self.rows:
                os.replace(self.partial, self.output)
            else:
                os.unlink(self.partial)
        self._release_lock()

    def _release_lock(self) -> None:
        if self._lock is not None:
            release_lock(self.output, self._lock)
            self._lock = None

    def _start(self) -> None:
        if self.fmt == "csv":
            # "\n" line ends keep the last column clean for cut/awk. csv quotes only "\n", the delimiter and
            # the quote char then, so a row with a bare "\r" (a reader would end the record there) is
            # written fully quoted instead.
            self._csv = csv.writer(self._file, lineterminator="\n")
            self._csv_quote_all = csv.writer(self._file, lineterminator="\n", quoting=csv.QUOTE_ALL)
            self._csv.writerow(self.fields)

    def _open_partial(self, resume: bool) -> None:
        # Build the new partial under a temporary name: resuming reads the old one while writing this one,
        # and a failure here must not destroy it.
        temporary = f"{self.partial}.{os.getpid()}.tmp"
        try:
            self._file = open(temporary, "w", newline="", **_ENCODING)  # noqa: SIM115 (lives with the writer)
        except OSError as e:
            raise OutputError(f"cannot create a file next to {self.output!r}: {e.strerror}") from e
        try:
            self._start()
            if resume:
                self._carry_over()
            self._flush_to_disk()
            os.replace(temporary, self.partial)
        except BaseException as e:
            with contextlib.suppress(OSError):
                self._file.close()
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            if isinstance(e, OSError):
                raise OutputError(f"cannot write {temporary!r}: {e.strerror}") from e
            raise

    def _carry_over(self) -> None:
        for previous in (self.partial, self.output):  # the partial first: it is the newer of the two
            if not os.path.exists(previous):
                continue
            for row in read_rows(previous, self.fmt):
                if list(row) != self.fields:
                    raise OutputError(
                        f"cannot resume from {previous!r}: it has the columns {', '.join(row)}, this run "
                        f"writes {', '.join(self.fields)} (a different --top-k?); rerun with the same "
                        "settings, or without --resume to start over"
                    )
                if row["path"] not in self.done:
                    self.done.add(row["path"])
                    self._write_record(row)

    def _write_record(self, row: dict) -> None:
        values = [row.get(field) for field in self.fields]
        if self.fmt == "jsonl":
            self._file.write(
                json.dumps(dict(zip(self.fields, values, strict=True)), ensure_ascii=False) + "\n"
            )
        elif any(isinstance(value, str) and "\r" in value for value in values):
            self._csv_quote_all.writerow(values)
        else:
            self._csv.writerow(values)
        self.rows += 1

    def _flush_to_disk(self) -> None:
        self._file.flush()
        if self.partial is not None:
            os.fsync(self._file.fileno())
        self._rows_flushed = self.rows

    def _guarded(self, operation: Callable[..., None], *args: object) -> None:
        # A file that cannot take more rows (disk full, I/O error) ends the run but keeps the partial as it
        # is for --resume; abort() then leaves it alone rather than moving a cut-off file into place.
        # Errors on stdout (a closed pipe) are the caller's to handle.
        try:
            operation(*args)
        except OSError as e:
            if self.output == "-":
                raise
            if self.partial is None:  # a device or pipe named with -o
                self._closed = True
                reason = "disk full" if e.errno == errno.ENOSPC else e.strerror
                raise OutputError(f"{reason} writing {self.output!r}") from e
            self._closed = True
            with contextlib.suppress(OSError):
                self._file.close()
            kept = f"{self._rows_flushed} rows kept in {self.partial!r} (rerun with --resume to continue)"
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise OutputError(f"disk full writing {self.output!r}; {kept}") from e
            raise OutputError(f"cannot write {self.partial!r}: {e.strerror}; {kept}") from e


def lock_path(output: str) -> str:
    folder, name = os.path.split(os.path.abspath(output))
    return os.path.join(folder, f".{name}.lock")


def lock_output(output: str, wait: bool = False) -> int:
    """Take an exclusive flock on a hidden sibling of `output`; returns the descriptor that holds it.

    flock belongs to the open file, so the kernel drops it when a run dies, even by SIGKILL: a stale lock
    file never blocks the next run. The holder deletes the file when done (release_lock), so a run that
    locked a file which was deleted meanwhile checks the inode and locks again."""
    path = lock_path(output)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise OutputError(f"cannot create the lock file {path!r}: {e.strerror}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputLocked(
                f"another fmnist-batch run is writing {output!r} (it holds {path!r}); "
                "try again later, or pass --wait to queue behind it"
            ) from None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the previous holder removed the file while we waited: lock the new one


def release_lock(output: str, fd: int) -> None:
    with contextlib.suppress(OSError):
        os.unlink(lock_path(output))  # while still holding it, so nobody else's lock file is removed
    os.close(fd)


def read_rows(path: str, fmt: str | None = None) -> Iterator[dict]:
    """The rows of an output file (CSV values come back as strings, "" for empty).

    fmt defaults to what resolve_format says for the name (a ``.partial`` suffix ignored). A last record
    cut short (the run was killed mid-write) is dropped; damage anywhere else raises OutputError.
    """
    fmt = resolve_format(path.removesuffix(PARTIAL_SUFFIX), fmt)
    try:
        ends_with_newline = _ends_with_newline(path)
        # JSON escapes every line break inside a value, so only "\n" ends a JSON Lines record.
        with open(path, newline="" if fmt == "csv" else "\n", **_ENCODING) as file:
            if fmt == "csv":
                yield from _read_csv(file, path, ends_with_newline)
            else:
                yield from _read_jsonl(file, path)
    except OSError as e:
        raise OutputError(f"cannot read {path!r}: {e.strerror}") from e


def _read_csv(file: TextIO, path: str, ends_with_newline: bool) -> Iterator[dict]:
    # strict: a record cut inside a quoted field raises instead of coming back looking whole.
    reader = csv.reader(file, strict=True)
    header = next(reader, None)
    previous = None  # held back one record: only the end of the file tells whether the last one is whole
    previous_line = 0
    while True:
        try:
            record = next(reader)
        except StopIteration:
            if previous is not None and ends_with_newline and len(previous) == len(header):
                yield dict(zip(header, previous, strict=True))
            return
        except csv.Error as e:
            if file.read(1):
                raise OutputError(f"{path!r} is not a valid CSV file (line {reader.line_num}: {e})") from e
            record = None  # the file ends inside a quoted field: that last record was cut off
        if previous is not None:
            if len(previous) != len(header):
                raise OutputError(
                    f"{path!r} line {previous_line}: {len(previous)} values for {len(header)} columns"
                )
            yield dict(zip(header, previous, strict=True))
        if record is None:
            return
        previous, previous_line = record, reader.line_num


def _read_jsonl(file: TextIO, path: str) -> Iterator[dict]:
    for number, line in enumerate(file, 1):
        if not line.endswith("\n"):
            return  # the last line, cut off mid-write
        try:
            row = json.loads(line)
        except ValueError as e:
            raise OutputError(f"{path!r} line {number} is not JSON (is it a CSV file?): {e}") from e
        if not isinstance(row, dict):
            raise OutputError(f"{path!r} line {number} is not a JSON object")
        yield row


def _ends_with_newline(path: str) -> bool:
    with open(path, "rb") as file:
        if file.seek(0, os.SEEK_END) == 0:
            return False
        file.seek(-1, os.SEEK_END)
        return file.read(1) == b"\n"


def _is_device_or_pipe(output: str) -> bool:
    try:
        mode = os.stat(output).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _open_stream(output: str) -> IO[str]:
    try:
        return open(output, "w", newline="", **_ENCODING)
    except OSError as e:
        raise OutputError(f"cannot write {output!r}: {e.strerror}") from e


def _check_destination(output: str) -> None:
    # Checked before any image is decoded, so a typo in -o does not cost a whole run.
    if os.path.isdir(output):
        example = os.path.join(output, "results.csv")
        raise OutputError(f"output {output!r} is a folder; name a file in it, e.g. -o {example}")
    folder = os.path.dirname(output) or os.curdir
    if not os.path.isdir(folder):
        raise OutputError(f"the folder for {output!r} does not exist: {folder!r}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write in folder {folder!r}: permission denied")


def _fsync_folder(path: str) -> None:
    fd = os.open(os.path.dirname(path) or os.curdir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
