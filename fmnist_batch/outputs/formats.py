"""Output formats behind one interface, chosen by name or by the output's suffix: CSV and JSON Lines.

A format writes rows (dicts keyed by the row schema, see rows.py) to a text stream and reads a file of
them back. Adding one is a Format subclass and `register_format` (inside the package or from outside it:
the CLI offers every registered name); the writer, resume and merge only ever
talk to this interface.

File names that are not valid UTF-8. Python gives each byte it cannot decode as a lone surrogate
(os.fsdecode, "surrogateescape"); written raw they would make the whole file invalid UTF-8. So in every
format each such byte is written as the four characters ``\\xNN`` (two lowercase hex digits, 80 to ff):
the file ``b"caf\\xe9.jpg"`` is written ``caf\\xe9.jpg``, and the file is always valid UTF-8.
unescape() gives the name back. The one ambiguity: a name that really holds a backslash, an ``x`` and two
such hex digits reads back as that byte (resume then classifies that file again; nothing is mixed up).
Other lone surrogates, which no file name yields, are written ``\\udNNN``.

``csv_safe`` (CSV only): a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
is a formula to a spreadsheet (a file named ``=cmd|' /C calc'!A0.jpg``), so it is written with a
leading ``'``. So that this can be undone exactly, a cell whose leading apostrophes hide such a start
gets one more. Reading with csv_safe strips that one apostrophe.
"""

from __future__ import annotations

import csv
import json
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TextIO

from fmnist_batch.outputs.errors import OutputError

#: writes one row; columns the row lacks are written empty (None in JSON Lines)
RowWriter = Callable[[Mapping[str, Any]], None]
#: how output files are opened: UTF-8; files of older versions may hold names' raw bytes, read back as such
ENCODING = {"encoding": "utf-8", "errors": "surrogateescape"}


_SURROGATE = re.compile("[\ud800-\udfff]")
_ESCAPED_BYTE = re.compile(r"\\x([89a-f][0-9a-f])")
#: what a spreadsheet takes for the start of a formula
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def escape(text: str) -> str:
    """`text` with each undecodable byte of a file name as ``\\xNN`` (see the module docstring)."""
    if text.isascii():
        return text
    return _SURROGATE.sub(_escape_surrogate, text)


def unescape(text: str) -> str:
    """The inverse of escape(): ``\\xNN`` (80 to ff) back to the byte os.fsdecode stands for."""
    if "\\x" not in text:
        return text
    return _ESCAPED_BYTE.sub(lambda match: chr(0xDC00 + int(match[1], 16)), text)


def _escape_surrogate(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def defuse(cell: str) -> str:
    """A CSV cell a spreadsheet will not run as a formula (see the module docstring)."""
    return "'" + cell if cell.lstrip("'").startswith(FORMULA_STARTS) else cell


def undefuse(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and cell.lstrip("'").startswith(FORMULA_STARTS) else cell


class Format(ABC):
    """One output format: its name (for --format), its suffixes, a row writer and a row reader."""

    name: str
    suffixes: tuple[str, ...]

    @abstractmethod
    def writer(self, stream: TextIO, fields: Sequence[str], *, csv_safe: bool = False) -> RowWriter:
        """Write what the format puts before the rows (a header) to `stream`; return the row writer.
        Text values are escaped (see the module docstring)."""

    @abstractmethod
    def read(self, path: str, *, csv_safe: bool = False) -> Iterator[dict]:
        """The rows of the file at `path`, text as written (escaped); a last record cut short (a killed
        run) is dropped, damage anywhere else raises OutputError. OSError passes through."""

    def columns(self, path: str) -> list[str] | None:
        """The columns the file at `path` declares even without rows, or None if it cannot say."""
        return None


class CsvFormat(Format):
    name = "csv"
    suffixes = (".csv",)

    def writer(self, stream: TextIO, fields: Sequence[str], *, csv_safe: bool = False) -> RowWriter:
        # "\n" line ends keep the last column clean for cut/awk. csv quotes only "\n", the delimiter and the
        # quote char then, so a row with a bare "\r" (a reader would end the record there) is written
        # fully quoted instead.
        plain = csv.writer(stream, lineterminator="\n")
        quote_all = csv.writer(stream, lineterminator="\n", quoting=csv.QUOTE_ALL)
        plain.writerow(fields)

        def write(row: Mapping[str, Any]) -> None:
            values = [_text(row.get(field), csv_safe) for field in fields]
            if any(isinstance(value, str) and "\r" in value for value in values):
                quote_all.writerow(values)
            else:
                plain.writerow(values)

        return write

    def read(self, path: str, *, csv_safe: bool = False) -> Iterator[dict]:
        ends_with_newline = _ends_with_newline(path)
        with open(path, newline="", **ENCODING) as file:
            rows = _read_csv(file, path, ends_with_newline)
            if not csv_safe:
                yield from rows
                return
            for row in rows:
                yield {field: undefuse(value) for field, value in row.items()}

    def columns(self, path: str) -> list[str] | None:
        with open(path, newline="", **ENCODING) as file:
            return next(csv.reader(file), None)


class JsonLinesFormat(Format):
    name = "jsonl"
    suffixes = (".jsonl", ".ndjson")

    def writer(self, stream: TextIO, fields: Sequence[str], *, csv_safe: bool = False) -> RowWriter:
        def write(row: Mapping[str, Any]) -> None:
            record = {field: _text(row.get(field), False) for field in fields}
            stream.write(json.dumps(record, ensure_ascii=False) + "\n")

        return write

    def read(self, path: str, *, csv_safe: bool = False) -> Iterator[dict]:
        # JSON escapes every line break inside a value, so only "\n" ends a record.
        with open(path, newline="\n", **ENCODING) as file:
            yield from read_json_lines(file, path)


FORMATS: dict[str, Format] = {format.name: format for format in (CsvFormat(), JsonLinesFormat())}


def register_format(format: Format) -> None:
    """Make an output format choosable by its name (--format, resolve_format, read_rows, merge)."""
    FORMATS[format.name] = format


def format_names() -> tuple[str, ...]:
    return tuple(FORMATS)


#: for a name without a known suffix, and for stdout
DEFAULT_FORMAT = "csv"


def get_format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown output format {name!r}; expected one of: {', '.join(FORMATS)}") from None


def resolve_format(output: str, fmt: str | None) -> str:
    """An explicit format wins; else the one whose suffix `output` has (any case); else CSV (stdout too)."""
    if fmt is not None:
        return get_format(fmt).name
    lowered = output.lower()
    for format in FORMATS.values():
        if lowered.endswith(format.suffixes):
            return format.name
    return DEFAULT_FORMAT


def read_rows(path: str, fmt: str | None = None, *, csv_safe: bool = False) -> Iterator[dict]:
    """The rows of an output file (CSV values come back as strings, "" for empty), in the format `fmt`
    (default: what resolve_format says for the name), names as written (see unescape). A last record
    cut short (the run was killed mid-write) is dropped; damage anywhere else raises OutputError."""
    format = get_format(resolve_format(path, fmt))
    try:
        yield from format.read(path, csv_safe=csv_safe)
    except OSError as e:
        raise OutputError(f"cannot read {path!r}: {e.strerror}") from e


def _text(value: Any, csv_safe: bool) -> Any:
    if not isinstance(value, str):
        return value
    value = escape(value)
    return defuse(value) if csv_safe else value


def read_json_lines(file: TextIO, path: str) -> Iterator[dict]:
    """The objects of a JSON Lines stream, one per line; a last line without its "\\n" (cut off
    mid-write) is dropped."""
    for number, line in enumerate(file, 1):
        if not line.endswith("\n"):
            return
        try:
            row = json.loads(line)
        except ValueError as e:
            raise OutputError(f"{path!r} line {number} is not JSON (is it a CSV file?): {e}") from e
        if not isinstance(row, dict):
            raise OutputError(f"{path!r} line {number} is not a JSON object")
        yield row


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


def _ends_with_newline(path: str) -> bool:
    with open(path, "rb") as file:
        if file.seek(0, os.SEEK_END) == 0:
            return False
        file.seek(-1, os.SEEK_END)
        return file.read(1) == b"\n"
