"""Engines and output formats registered from outside the package are offered by the CLI and run by it:
the registries (engines.register_engine, outputs.formats.register_format) are the only lists."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar, TextIO

import pytest

from fmnist_batch import engines
from fmnist_batch.cli import Environment, main
from fmnist_batch.engines.local import LocalEngine
from fmnist_batch.outputs import formats
from fmnist_batch.outputs.formats import Format

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


class TabSeparated(Format):
    """A format a user might add: tab-separated values, one header line."""

    name = "tsv"
    suffixes = (".tsv",)

    def writer(self, stream: TextIO, fields: Sequence[str], *, csv_safe: bool = False):
        writer = csv.DictWriter(stream, fields, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        return writer.writerow

    def read(self, path: str, *, csv_safe: bool = False) -> Iterator[dict]:
        with open(path, newline="", encoding="utf-8") as file:
            yield from csv.DictReader(file, delimiter="\t")


class CountingEngine(LocalEngine):
    """An engine a user might add: the local one in this process, counting the files it was given."""

    runs: ClassVar[list[int]] = []

    def run(self, files, on_batch=None):
        files = list(files)
        CountingEngine.runs.append(len(files))
        yield from super().run(files, on_batch)


@pytest.fixture
def plugins(monkeypatch):
    monkeypatch.setitem(formats.FORMATS, "tsv", TabSeparated())
    monkeypatch.setitem(engines._ENGINES, "counting", CountingEngine)
    CountingEngine.runs.clear()


def run(*args: str) -> int:
    return main(list(args), Environment(stdout=io.StringIO(), stderr=io.StringIO()))


def test_a_registered_format_and_engine_run_from_the_cli(plugins, tmp_path):
    out, reference = tmp_path / "labels.tsv", tmp_path / "labels.csv"
    assert run("classify", str(SAMPLES), "-o", str(out), "--engine", "counting", "-q") == 0
    assert run("classify", str(SAMPLES), "-o", str(reference), "-q") == 0
    assert CountingEngine.runs == [len(list(reference.read_text().splitlines())) - 1]
    with open(out, newline="") as tsv, open(reference, newline="") as csv_file:
        assert list(csv.DictReader(tsv, delimiter="\t")) == list(csv.DictReader(csv_file))
    # --format takes the new name too, and --resume reads the format back
    again = tmp_path / "again.out"
    assert run("classify", str(SAMPLES), "-o", str(again), "--format", "tsv", "-q") == 0
    assert again.read_text() == out.read_text()
    assert run("classify", str(SAMPLES), "-o", str(out), "--engine", "counting", "--resume", "-q") == 0
    assert CountingEngine.runs[-1] == 0


def test_unregistered_names_are_refused_by_the_cli(tmp_path):
    for option, name in (("--engine", "counting"), ("--format", "tsv")):
        assert run("classify", str(SAMPLES), "-o", str(tmp_path / "out"), option, name) == 2
        assert not (tmp_path / "out").exists()
