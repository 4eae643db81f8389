"""One classify job: inputs -> engine -> output file, with resume, locking, shards and the HTML report.

The CLI and `Classifier.classify_folder(..., output=...)` run this; callers learn what happens through
callbacks (`on_row`, `on_total`, `on_warning`), never through printing. `fmnist_batch.classify` and
`classify_folder` without an output stream the engine's rows directly: no output, so no journal, lock
or resume.

Order of a job, so that a mistake costs nothing: the inputs and destinations are checked, the model is
loaded and every file its card names verified, the output is locked and prepared, and only then are
files discovered and photos read.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from fmnist_batch.discover import (
    STDIN,
    InputError,
    InputFile,
    Shard,
    check_inputs,
    discover,
    glob_root,
    is_glob,
)
from fmnist_batch.engines import engine_factory
from fmnist_batch.labels import IMAGE_EXTENSIONS
from fmnist_batch.model.runtime import Model, load_job_model
from fmnist_batch.options import ClassifyOptions
from fmnist_batch.outputs.rows import row_fields
from fmnist_batch.outputs.summary import Summary


@dataclass
class JobResult:
    """What a finished job did: the summary of its rows, and how many files other shards hold."""

    summary: Summary
    output: str
    in_other_slices: int = 0
    #: error rows of an earlier run kept as they were (retry_errors=False)
    carried_errors: int = 0
    #: what the writer has to tell the user (an unfinished earlier run that this fresh run started over)
    notice: str | None = None
    report: str | None = None
    model_test_accuracy: float | None = None

    @property
    def found_nothing(self) -> bool:
        return self.summary.total == 0 and not self.in_other_slices

    @property
    def errors(self) -> int:
        """Files of the output without a label: this run's error rows and those carried over (the
        summary counts the whole output)."""
        return self.summary.errors


@dataclass
class ClassifyJob:
    """A classify job's inputs, destination and settings; `run()` does it."""

    inputs: Sequence[str]
    output: str = "-"
    options: ClassifyOptions = field(default_factory=ClassifyOptions)
    #: "csv", "jsonl" or None (from the output's name)
    format: str | None = None
    resume: bool = False
    retry_errors: bool = True
    wait: bool = False
    csv_safe: bool = False
    shard: Shard | None = None
    report: str | None = None
    recursive: bool = True
    extensions: Sequence[str] = IMAGE_EXTENSIONS
    #: the paths that "-" among the inputs stands for
    stdin_paths: Iterable[str] | None = None
    #: where "-o -" writes (default sys.stdout)
    stdout: TextIO | None = None
    on_row: Callable[[dict], None] | None = None
    #: called once, from a helper thread, with the number of files to do as soon as discovery knows it
    on_total: Callable[[int], None] | None = None
    on_warning: Callable[[str], None] | None = None

    def run(self, model: Model | None = None) -> JobResult:
        """Classify every input file into the output; returns the summary. A `model` already loaded
        (Classifier.classify_folder) is used as it is, else options.model is loaded."""
        self._check()
        model = model or load_job_model(self.options)
        settings = model.conversion_settings(self.options)
        result = JobResult(Summary(), self.output, model_test_accuracy=model.test_accuracy)
        report = self._open_report(settings)
        try:
            with engine_factory(self.options.engine)(self.options, model, settings) as engine:
                fields = row_fields(self.options.top_k, model.other_below(self.options) is not None)
                self._write(engine, result, report, fields, settings_of(self.options, model, settings))
            if report is not None:
                # the report shows this run's rows only, so it counts them itself
                report.finish(skipped=result.summary.carried, model_accuracy=model.test_accuracy)
                result.report = self.report
        finally:
            if report is not None:
                report.close()  # its thumbnail threads and temporary database, also when the run fails
        return result

    def _check(self) -> None:
        named = [i for i in self.inputs if i != STDIN]
        if not self.inputs:
            raise InputError("no inputs: name files, folders or glob patterns, or - to read paths from stdin")
        if self.inputs.count(STDIN) > 1:
            raise InputError("stdin (-) can be named only once")
        check_inputs(named)
        destinations = [d for d in (self.output, self.report) if d not in (None, "-")]
        if self.report is not None and self.output != "-" and _same_file(self.report, self.output):
            raise InputError(f"--report and -o name the same file ({self.output!r}); name two files")
        for destination in destinations:
            if any(_same_file(destination, name) for name in named):
                raise InputError(f"{destination!r} is one of the inputs; write the results elsewhere")
        if self.options.save_preprocessed is not None:
            _check_preview_folder(os.fspath(self.options.save_preprocessed), named)

    def _open_report(self, settings):  # -> HtmlReport | None
        if self.report is None:
            return None
        from fmnist_batch.outputs.html_report import HtmlReport

        return HtmlReport(self.report, inputs=list(self.inputs), settings=settings)

    def _write(self, engine, result: JobResult, report, fields: list[str], settings: dict) -> None:
        from fmnist_batch.outputs.shards import describe_inputs, write_record
        from fmnist_batch.outputs.writer import ResultWriter, resolve_format

        fmt = resolve_format(self.output, self.format)
        writer = ResultWriter(
            self.output,
            fields,
            fmt,
            stdout=self.stdout,
            resume=self.resume,
            wait=self.wait,
            settings=settings,
            retry_errors=self.retry_errors,
            csv_safe=self.csv_safe,
            on_carried=lambda row: result.summary.add(row, carried=True),
        )
        with writer:
            # merge reads which slice an output holds, and whether its run finished, from this record
            record = self.shard is not None and writer.partial is not None
            inputs = describe_inputs(self.inputs, self.recursive, self.extensions)
            if record:
                write_record(self.output, self.shard, inputs=inputs)
            result.notice = writer.notice
            todo = writer.pending(self._discover(result, writer))
            for file, row in _with_files(todo, engine, on_batch=writer.flush):
                writer.write(row, file)
                result.summary.add(row)
                if report is not None:
                    report.add(row)
                if self.on_row is not None:
                    self.on_row(row)
            # read at the end: carried rows whose files changed since were dropped along the way (the
            # carried rows themselves reach the summary when the writer finishes, through on_carried)
            result.carried_errors = writer.carried_errors
            if record:
                write_record(self.output, self.shard, rows=writer.rows, inputs=inputs)

    def _discover(self, result: JobResult, writer) -> Iterator[InputFile]:
        def other_slice(file: InputFile) -> None:
            result.in_other_slices += 1

        if self.on_total is not None and self.stdin_paths is None:
            carried = writer.carried  # before pending() drops the rows of changed files: near enough
            threading.Thread(
                target=self._count, args=(carried,), name="fmnist-batch-count", daemon=True
            ).start()
        return discover(
            self.inputs,
            stdin_paths=self.stdin_paths,
            recursive=self.recursive,
            extensions=self.extensions,
            on_warning=self.on_warning,
            shard=self.shard,
            on_other_slice=other_slice,
        )

    def _count(self, carried: int) -> None:
        # A second, silent walk that only counts: listing folders costs microseconds a file, converting
        # them milliseconds, and a progress bar with a total can show an ETA.
        files = discover(self.inputs, recursive=self.recursive, extensions=self.extensions, shard=self.shard)
        self.on_total(max(0, sum(1 for _ in files) - carried))


def _with_files(
    files: Iterable[InputFile], engine, on_batch: Callable[[], None]
) -> Iterator[tuple[InputFile, dict]]:
    """Each row with the file it is for: the engine keeps input order, so a queue of the files handed to
    it pairs them up. `on_batch` runs once a batch's rows are all written (the writer makes them durable)."""
    handed: list[InputFile] = []
    position = 0

    def tap() -> Iterator[InputFile]:
        for file in files:
            handed.append(file)
            yield file

    for row in engine.run(tap(), on_batch=on_batch):
        file = handed[position]
        position += 1
        if position > 4096:  # keep the queue short: only files still in flight are needed
            del handed[:position]
            position = 0
        yield file, row


def settings_of(options: ClassifyOptions, model: Model, settings) -> dict:
    """What shapes a row, recorded with a run's partial output: a resumed run must match it."""
    return {
        "model_card_sha256": hashlib.sha256(model.card.path.read_bytes()).hexdigest(),
        # every model file the run may read (registry.py), person detectors included
        "models": model.model_hashes,
        "model_file": model.litert_file or "keras",
        "photo_model": options.photo_model,
        "garment_reader": options.garment_reader,
        "top_k": options.top_k,
        "min_confidence": model.min_confidence(options),
        "conversion": settings.record(),
        # where "other" starts (None: no scope judge, every photo gets one of the 10 classes)
        **({"other_below": below} if (below := model.other_below(options)) is not None else {}),
    }


def _check_preview_folder(folder: str, inputs: Sequence[str]) -> None:
    """Refuse a --save-preprocessed folder that discovery would walk: the next run, or --resume, would
    classify the saved previews as photos (a folder of 2 photos would end with 4 rows). A hidden folder is
    fine: discovery skips hidden names."""
    real = os.path.realpath(folder)
    for name in inputs:
        pattern = is_glob(name) and not os.path.lexists(name)
        root = glob_root(name) if pattern else name
        if not pattern and not os.path.isdir(name):
            continue  # a file named outright: nothing is discovered beside it
        inside = os.path.relpath(real, os.path.realpath(root or os.curdir))
        parts = [] if inside == os.curdir else inside.split(os.sep)
        if parts[:1] == [os.pardir] or any(part.startswith(".") for part in parts):
            continue  # outside the input, or hidden from discovery
        first_wildcard = name[len(root) :].lstrip(os.sep).split(os.sep)[0] if pattern else "**"
        if parts and first_wildcard != "**" and not fnmatch.fnmatchcase(parts[0], first_wildcard):
            continue  # the pattern never reaches it
        hidden = os.path.join(
            os.path.dirname(folder.rstrip(os.sep)), "." + os.path.basename(folder.rstrip(os.sep))
        )
        raise InputError(
            f"--save-preprocessed {folder!r} is inside the input {name!r}, so the next run (or --resume) "
            f"would classify the saved previews as photos; save them outside the inputs, or in a hidden "
            f"folder, which discovery skips (e.g. {hidden!r})"
        )


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)
