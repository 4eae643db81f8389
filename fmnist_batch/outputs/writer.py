"""The result writer: rows streamed to an output file (CSV, JSON Lines: see formats.py) with atomic
replacement, or to a stream; and resuming a previous run.

For an output file the rows stream into a sibling ``<name>.partial`` (flushed and fsync'ed at every
flush(), so a killed run leaves it for --resume), and only finish() or abort() rename it onto ``<name>``.

Text is UTF-8; file names that are not valid UTF-8 (os.fsdecode gave them surrogate escapes) are written
back as their original bytes, so a resumed run recognises them. Nothing here prints.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import IO, Any, TextIO

from fmnist_batch.discover import InputFile
from fmnist_batch.files import fsync_folder
from fmnist_batch.outputs.destination import check_destination, is_device_or_pipe, lock_output, release_lock
from fmnist_batch.outputs.errors import OutputError, OutputLocked, SettingsMismatch
from fmnist_batch.outputs.formats import ENCODING, get_format, read_rows, resolve_format

__all__ = [
    "PARTIAL_SUFFIX",
    "OutputError",
    "OutputLocked",
    "ResultWriter",
    "SettingsMismatch",
    "read_rows",
    "resolve_format",
]

PARTIAL_SUFFIX = ".partial"


class ResultWriter:
    """Streams rows to `output` ('-' = the `stdout` stream, sys.stdout if not given).

    For a file, rows go to ``<output>.partial`` in the same folder, flushed and fsync'ed at every flush().
    finish() renames it onto `output` atomically. abort() (Ctrl-C, SIGTERM, any error) renames what was
    written into place too, so every finished row is kept; if no row was written at all, it removes the
    partial instead and leaves an existing `output` alone. As a context manager: finish() on a clean exit,
    abort() on an exception, which then propagates.

    resume=True carries the rows of a previous run over, from ``<output>.partial`` (newer) and `output`,
    each path once; pending() leaves their files out. The columns must match.
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
        settings: Mapping[str, Any] | None = None,
        retry_errors: bool = True,
        csv_safe: bool = False,
    ) -> None:
        self.format = get_format(fmt)
        self.output = output
        self.fields = list(fields)
        self.fmt = self.format.name
        self.settings = dict(settings or {})
        self.retry_errors = retry_errors
        self.csv_safe = csv_safe
        self.done: set[str] = set()
        self.rows = 0  # rows in the output so far, carried-over ones included
        self._rows_flushed = 0
        self._closed = False
        self._field_set = set(self.fields)
        self._owns_stream = False
        self._lock: int | None = None
        if output == "-" or is_device_or_pipe(output):
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
            check_destination(output)
            self.partial = output + PARTIAL_SUFFIX
            # Locked before the partial is touched: a second run must not truncate the first one's rows.
            self._lock = lock_output(output, wait)
            try:
                self._open_partial(resume)
            except BaseException:
                self._release_lock()
                raise

    @property
    def carried(self) -> int:
        """Rows carried over from a previous run (--resume)."""
        return len(self.done)

    def pending(self, files: Iterable[InputFile]) -> Iterator[InputFile]:
        """The files this run still has to classify: those without a row from a previous run."""
        return (file for file in files if file.display not in self.done)

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

    def write(self, row: dict, file: InputFile | None = None) -> None:
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
            fsync_folder(self.output)

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
        self._write_row = self.format.writer(self._file, self.fields)

    def _open_partial(self, resume: bool) -> None:
        # Build the new partial under a temporary name: resuming reads the old one while writing this one,
        # and a failure here must not destroy it.
        temporary = f"{self.partial}.{os.getpid()}.tmp"
        try:
            self._file = open(temporary, "w", newline="", **ENCODING)  # noqa: SIM115 (lives with the writer)
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
        self._write_row(row)
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


def _open_stream(output: str) -> IO[str]:
    try:
        return open(output, "w", newline="", **ENCODING)
    except OSError as e:
        raise OutputError(f"cannot write {output!r}: {e.strerror}") from e
