"""Output formats behind one interface, chosen by name or by the output's suffix: CSV and JSON Lines.

A format writes rows (dicts keyed by the row schema, see rows.py) to a text stream and reads a file of
them back. Adding one is a class here and a line in FORMATS; the writer, resume and merge only ever
talk to this interface.
"""

from __future__ import annotations

import csv
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TextIO

from fmnist_batch.outputs.errors import OutputError

#: writes one row; columns the row lacks are written empty (None in JSON Lines)
RowWriter = Callable[[Mapping[str, Any]], None]
#: how output files are opened: UTF-8, names that are not valid UTF-8 kept as their bytes
ENCODING = {"encoding": "utf-8", "errors": "surrogateescape"}


class Format(ABC):
    """One output format: its name (for --format), its suffixes, a row writer and a row reader."""

    name: str
    suffixes: tuple[str, ...]

    @abstractmethod
    def writer(self, stream: TextIO, fields: Sequence[str]) -> RowWriter:
        """Write what the format puts before the rows (a header) to `stream`; return the row writer."""

    @abstractmethod
    def read(self, path: str) -> Iterator[dict]:
        """The rows of the file at `path`; a last record cut short (a killed run) is dropped, damage
        anywhere else raises OutputError. OSError passes through (read_rows words it)."""

    def columns(self, path: str) -> list[str] | None:
        """The columns the file at `path` declares even without rows, or None if it cannot say."""
        return None


class CsvFormat(Format):
    name = "csv"
    suffixes = (".csv",)

    def writer(self, stream: TextIO, fields: Sequence[str]) -> RowWriter:
        # "\n" line ends keep the last column clean for cut/awk. csv quotes only "\n", the delimiter and the
        # quote char then, so a row with a bare "\r" (a reader would end the record there) is written
        # fully quoted instead.
        plain = csv.writer(stream, lineterminator="\n")
        quote_all = csv.writer(stream, lineterminator="\n", quoting=csv.QUOTE_ALL)
        plain.writerow(fields)

        def write(row: Mapping[str, Any]) -> None:
            values = [row.get(field) for field in fields]
            if any(isinstance(value, str) and "\r" in value for value in values):
                quote_all.writerow(values)
            else:
                plain.writerow(values)

        return write

    def read(self, path: str) -> Iterator[dict]:
        ends_with_newline = _ends_with_newline(path)
        with open(path, newline="", **ENCODING) as file:
            yield from _read_csv(file, path, ends_with_newline)

    def columns(self, path: str) -> list[str] | None:
        with open(path, newline="", **ENCODING) as file:
            return next(csv.reader(file), None)


class JsonLinesFormat(Format):
    name = "jsonl"
    suffixes = (".jsonl", ".ndjson")

    def writer(self, stream: TextIO, fields: Sequence[str]) -> RowWriter:
        def write(row: Mapping[str, Any]) -> None:
            record = {field: row.get(field) for field in fields}
            stream.write(json.dumps(record, ensure_ascii=False) + "\n")

        return write

    def read(self, path: str) -> Iterator[dict]:
        # JSON escapes every line break inside a value, so only "\n" ends a record.
        with open(path, newline="\n", **ENCODING) as file:
            yield from read_json_lines(file, path)


FORMATS: dict[str, Format] = {format.name: format for format in (CsvFormat(), JsonLinesFormat())}
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


def read_rows(path: str, fmt: str | None = None) -> Iterator[dict]:
    """The rows of an output file (CSV values come back as strings, "" for empty), in the format `fmt`
    (default: what resolve_format says for the name). A last record cut short (the run was killed
    mid-write) is dropped; damage anywhere else raises OutputError."""
    format = get_format(resolve_format(path, fmt))
    try:
        yield from format.read(path)
    except OSError as e:
        raise OutputError(f"cannot read {path!r}: {e.strerror}") from e


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
