"""The result writer: rows streamed to an output file in its format (CSV, JSON Lines: formats.py) by way
of a journal, or straight to a stream; and resuming an earlier run.

For an output file, rows go to the run's journal ``<output>.partial`` (journal.py: JSON Lines whatever
the format, each row with the file it is for), flushed and fsync'ed at every flush(). finish() writes the
output from it, atomically, and removes it. Nothing else ever touches the output: an interrupted or
failed run leaves the output as it was (the last finished run's) and its rows in the partial, where
``--resume`` continues. One run per output at a time (a lock); a fresh run starts the journal over.

Names that are not valid UTF-8 are written escaped (formats.py). Nothing here prints.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import IO, Any, TextIO

from fmnist_batch.discover import InputFile
from fmnist_batch.files import atomic_write, fsync_folder
from fmnist_batch.outputs.destination import (
    check_destination,
    is_device_or_pipe,
    lock_output,
    release_lock,
    remove_stale_temporaries,
    settings_path,
)
from fmnist_batch.outputs.errors import OutputError, OutputLocked, SettingsMismatch
from fmnist_batch.outputs.formats import ENCODING, get_format, read_rows, resolve_format
from fmnist_batch.outputs.journal import PARTIAL_SUFFIX, FileState, Journal, JournalReader, count_rows, header
from fmnist_batch.outputs.resume import Carried, carry_over_output, check_header

__all__ = [
    "PARTIAL_SUFFIX",
    "OutputError",
    "OutputLocked",
    "ResultWriter",
    "SettingsMismatch",
    "read_rows",
    "resolve_format",
]


class ResultWriter:
    """Streams rows to `output` ('-' = the `stdout` stream, sys.stdout if not given; a pipe or device is
    written in place too). As a context manager: finish() on a clean exit, abort() on an exception (the
    message abort() returns is added to the exception as a note).

    - settings: what shaped the rows (model, top-k, ...), recorded in the journal; resume=True with other
      settings raises SettingsMismatch naming them.
    - resume=True carries the rows of the earlier run over: from its partial, else from a finished
      `output` (rows matched to files by resolving their path from the current folder). pending() then
      leaves out the files whose rows hold (resume.py).
    - retry_errors=False carries error rows over too, instead of classifying their files again.
    - csv_safe: CSV cells that a spreadsheet would run as formulas get a leading ' (formats.py).
    - on_carried: called by finish() with each carried-over row that goes into the output, so a summary
      can cover the whole output, not only this run's rows.
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
        on_carried: Callable[[dict], None] | None = None,
    ) -> None:
        self.format = get_format(fmt)
        self._on_carried = on_carried
        self.fmt = self.format.name
        self.output = output
        self.fields = list(fields)
        self.settings = dict(settings or {})
        self.csv_safe = csv_safe
        self.discarded = 0  # rows of an unfinished earlier run this fresh run started over from
        self.notice: str | None = None  # what the caller should tell the user about that, if anything
        self.partial: str | None = None
        self._field_set = set(self.fields)
        self._carried = Carried(retry_errors)
        self._new_rows = 0
        self._rows_flushed = 0
        self._states: dict[str, FileState] = {}  # files pending() handed out, until their row comes
        self._closed = False
        self._lost = False  # the partial was deleted under us: nothing is kept, whatever abort() says
        self._lock: int | None = None
        self._journal: Journal | None = None
        if output == "-" or is_device_or_pipe(output):
            self._open_stream(stdout, resume)
        else:
            self._open_file(resume, wait)

    @property
    def carried(self) -> int:
        """Rows carried over from the earlier run (--resume); drops as pending() finds files changed."""
        return self._carried.count

    @property
    def carried_errors(self) -> int:
        """Of the carried rows, the error rows (kept with retry_errors=False)."""
        return self._carried.errors

    @property
    def rows(self) -> int:
        """Rows the output will hold, carried-over ones included."""
        return self._carried.count + self._new_rows

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.finish()
            return
        message = self.abort()
        if message is not None:
            exc.add_note(message)

    def pending(self, files: Iterable[InputFile]) -> Iterator[InputFile]:
        """The files this run still has to classify: all but those with a row that holds (--resume)."""
        if self._journal is None:
            yield from files
            return
        for file in files:
            state = FileState.of(file.resolved, file.path)  # before it is read: a later change redoes it
            if not self._carried.keeps(state):
                self._states[state.real] = state
                yield file

    def write(self, row: dict, file: InputFile | None = None) -> None:
        """Queue one row; columns it lacks are written empty (None in JSON Lines). `file` is the file it
        is for (else the file its path names from the current folder), as a resumed run matches it."""
        unknown = row.keys() - self._field_set
        if unknown:
            raise ValueError(f"row has columns the output does not: {sorted(unknown)}")
        self._guarded(self._write_record, row, file)

    def flush(self) -> None:
        """Make every row written so far durable: a crash after this loses none of them."""
        self._guarded(self._flush_to_disk)

    def finish(self) -> None:
        """Flush, and for a file write the output from the journal, atomically, then remove the journal."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        if self._journal is None:
            if self._owns_stream:
                self._stream.close()
            return
        try:
            self._journal.close()
            self._write_output()
            self._write_settings()
            os.unlink(self.partial)
        except OSError as e:
            raise OutputError(
                f"cannot write {self.output!r}: {e.strerror}; {self._kept(self.rows)}"
                f" (after fixing that, rerun with --resume to finish)"
            ) from e
        finally:
            self._release_lock()
        with contextlib.suppress(OSError):
            fsync_folder(self.output)

    def abort(self) -> str | None:
        """End an interrupted or failed run, leaving the output alone; never raises (the caller is already
        failing). Returns what was kept ("412 rows kept in 'out.csv.partial'; rerun with --resume ..."),
        or None when nothing was (no rows: the partial is removed)."""
        if self._closed:
            return None
        self._closed = True
        if self._journal is None:
            with contextlib.suppress(OSError):
                self._stream.close() if self._owns_stream else self._stream.flush()
            return None
        with contextlib.suppress(OSError, OutputError):
            self._flush_to_disk()
        with contextlib.suppress(OSError):
            self._journal.close()
        kept = None
        if self._rows_flushed and not self._lost:  # lost: the partial went with its folder, say nothing
            kept = f"{self._kept(self._rows_flushed)}; rerun with --resume to continue"
        elif not self._lost:
            with contextlib.suppress(OSError):
                os.unlink(self.partial)  # no rows: nothing to resume (still locked: it is our partial)
        self._release_lock()
        return kept

    # ---------------------------------------------------------------------------------- opening

    def _open_stream(self, stdout: TextIO | None, resume: bool) -> None:
        # Written as it is: renaming a file onto /dev/null (as root) would replace it.
        if resume:
            raise OutputError(f"--resume needs a regular output file; {self.output!r} cannot be read back")
        self._owns_stream = self.output != "-"
        if self._owns_stream:
            try:
                self._stream: IO[str] = open(self.output, "w", newline="", **ENCODING)  # noqa: SIM115
            except OSError as e:
                raise OutputError(f"cannot write {self.output!r}: {e.strerror}") from e
        else:
            self._stream = stdout if stdout is not None else sys.stdout
        self._write_row = self.format.writer(self._stream, self.fields, csv_safe=self.csv_safe)

    def _open_file(self, resume: bool, wait: bool) -> None:
        check_destination(self.output)
        self.partial = self.output + PARTIAL_SUFFIX
        self._owns_stream = False
        # Locked before the partial is touched: a second run must not start over the first one's rows.
        self._lock = lock_output(self.output, wait)
        try:
            remove_stale_temporaries(self.output)
            if resume and os.path.lexists(self.partial):
                self._journal = self._continue_journal()
            else:
                self._journal = self._new_journal(resume)
        except BaseException as e:
            self._release_lock()
            if isinstance(e, OSError):
                raise OutputError(f"cannot write next to {self.output!r}: {e.strerror}") from e
            raise
        self._rows_flushed = self.rows
        self._new_from = self._journal.entries  # the journal index of this run's first row

    def _continue_journal(self) -> Journal:
        with JournalReader(self.partial) as reader:
            check_header(reader.header(), self.fields, self.settings, self.partial)
            entries = 0
            for row, state in reader.entries():
                self._carried.add(entries, row, state)
                entries += 1
            end = reader.end
        return Journal.reopen(self.partial, end, entries)

    def _new_journal(self, resume: bool) -> Journal:
        if not resume:
            self._note_discarded()
        journal = Journal.create(self.partial, header(self.fields, self.settings))
        try:
            if resume and os.path.exists(self.output):
                self._check_output_settings()
                carry_over_output(
                    self.output, self.format, self.fields, self.csv_safe, journal, self._carried
                )
            journal.publish(self.partial)
        except BaseException:
            journal.discard()
            raise
        return journal

    def _write_settings(self) -> None:
        # beside the output, hidden like the lock: the settings its rows were made with
        with atomic_write(settings_path(self.output), encoding="utf-8") as file:
            json.dump(header(self.fields, self.settings), file)

    def _check_output_settings(self) -> None:
        """Refuse to resume from a finished output made with other settings (an output written before
        settings were recorded, or by hand, has no record: only its columns are checked)."""
        try:
            with open(settings_path(self.output), encoding="utf-8") as file:
                recorded = json.load(file)
        except FileNotFoundError:
            return
        except (OSError, ValueError) as e:
            raise OutputError(f"cannot read the settings of {self.output!r}: {e}") from e
        check_header(recorded, self.fields, self.settings, self.output)

    def _note_discarded(self) -> None:
        self.discarded = count_rows(self.partial)
        if self.discarded:
            self.notice = (
                f"started over: the {self.discarded} rows of an unfinished run in {self.partial!r} were "
                "discarded (--resume continues a run instead)"
            )

    # ---------------------------------------------------------------------------------- writing

    def _write_record(self, row: dict, file: InputFile | None) -> None:
        if self._journal is None:
            self._write_row(row)
        else:
            if file is not None:
                real = file.resolved
                state = self._states.pop(real, None) or FileState.of(real, file.path)
            else:
                state = FileState.of(os.path.realpath(row["path"]), row["path"])
            self._journal.add(row, state)
            self._carried.replace(state.real)
        self._new_rows += 1

    def _flush_to_disk(self) -> None:
        if self._journal is None:
            self._stream.flush()
            return
        self._journal.flush()
        if not self._journal.is_linked():
            self._lost = True
            raise OutputError(self._gone_message())
        self._rows_flushed = self.rows

    def _write_output(self) -> None:
        with (
            JournalReader(self.partial) as reader,
            atomic_write(self.output, newline="", encoding="utf-8") as file,
        ):
            reader.header()
            write = self.format.writer(file, self.fields, csv_safe=self.csv_safe)
            for index, (row, state) in enumerate(reader.entries()):
                if index >= self._new_from:
                    write(row)
                elif self._carried.counts(index, state.real):
                    write(row)
                    if self._on_carried is not None:
                        self._on_carried(row)

    def _gone_message(self) -> str:
        folder = os.path.dirname(os.path.abspath(self.output))
        rows = f"{self.rows} rows were in {self.partial!r}"
        if not os.path.isdir(folder):
            return f"the output folder {folder!r} no longer exists; {rows}"
        return f"{self.partial!r} was deleted during the run; {rows}"

    def _kept(self, rows: int) -> str:
        return f"{rows} rows kept in {self.partial!r}"

    def _guarded(self, operation: Callable[..., None], *args: object) -> None:
        # A file that cannot take more rows (disk full, I/O error) ends the run but keeps the partial as it
        # is for --resume. Errors on stdout (a closed pipe) are the caller's to handle.
        if self._closed:
            raise OutputError(f"the writer of {self.output!r} is closed")
        try:
            operation(*args)
        except OSError as e:
            if self.output == "-":
                raise
            self._closed = True
            reason = "disk full" if e.errno in (errno.ENOSPC, errno.EDQUOT) else e.strerror
            if self._journal is None:  # a device or pipe named with -o
                raise OutputError(f"{reason} writing {self.output!r}") from e
            with contextlib.suppress(OSError):
                self._journal.close()
            # Counted in the file: rows written since the last flush may be there too (the buffer spills
            # as a batch grows) or cut short, and --resume keeps every whole one.
            kept = f"{self._kept(count_rows(self.partial))} (rerun with --resume to continue)"
            self._release_lock()
            raise OutputError(f"{reason} writing {self.partial!r}; {kept}") from e
        except OutputError:
            self._closed = True
            with contextlib.suppress(OSError):
                self._journal.close()
            self._release_lock()
            raise

    def _release_lock(self) -> None:
        if self._lock is not None:
            release_lock(self.output, self._lock)
            self._lock = None
