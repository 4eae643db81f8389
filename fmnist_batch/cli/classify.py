"""`fmnist-batch classify`: parse the options, run the library's ClassifyJob, report on stderr."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from fmnist_batch.cli.arguments import (
    add_discovery_options,
    add_model_options,
    extensions,
    formatter,
    options_from,
    shard,
)
from fmnist_batch.cli.env import CLASSIFY_MEANINGS, Environment, ExitStatus, exit_codes_help
from fmnist_batch.outputs.formats import format_names

DESCRIPTION = (
    "Classify photos (files, folders, glob patterns, or paths on stdin) with a CNN. Every photo goes "
    "through Fashion-MNIST's own conversion (trim the background, fit the longest edge to 28, sharpen, "
    "centre, invert, grayscale); a photo that is not a catalog shot is prepared first: a garment on a "
    "floor, bed or hanger is cut out of its surroundings (segmented), a garment a person wears is cut "
    "away from the person (worn) and also read in colour by the garment reader (see --background). Each "
    "photo gets one row: path, label, confidence, top-k labels and probabilities, view (catalog, "
    "segmented, worn), region, status (ok, uncertain, error) and error. Rows are streamed batch by "
    "batch into OUTPUT.partial; the output is put in place atomically when the run finishes, and an "
    "interrupted run keeps its rows in the partial file for --resume."
)
EXAMPLES = """examples:
  fmnist-batch classify ./photos -o out.csv
  fmnist-batch classify ./photos -o out.csv --resume     # after an interrupted run, or nightly
  fmnist-batch classify 'shop/**/*.jpg' --top-k 5 --format jsonl -o out.jsonl
  find /srv/catalog -newer last-run -print0 | fmnist-batch classify -0 - -o - --quiet
  fmnist-batch classify photo.png -o - | cut -d, -f2
  fmnist-batch classify ./photos -o out.csv --report report.html   # to review in a browser
  fmnist-batch classify /srv/photos --shard 2/3 -o /srv/out/labels-2.csv   # host 2 of 3
  fmnist-batch classify /srv/photos --engine ray --ray-address auto -o /srv/out/labels.csv
"""


def add_classify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "classify",
        help="classify photos into the 10 Fashion-MNIST classes, one output row per file",
        description=DESCRIPTION,
        epilog=EXAMPLES + "\n" + exit_codes_help(CLASSIFY_MEANINGS),
        formatter_class=formatter,
    )
    _add_inputs_and_output(p)
    add_discovery_options(p)
    _add_run_control(p)
    add_model_options(
        p, "--engine", "--ray-address", "--model", "--backend", "--batch-size", "--workers", "--top-k",
        "--min-confidence", "--invert", "--background", "--max-pixels", "--precision", "--no-photo-model",
        "--no-garment-reader", "--other-threshold", "--no-other", "--timeout", "--save-preprocessed",
    )  # fmt: skip
    p.add_argument(
        "--report",
        metavar="FILE",
        help="also write a self-contained HTML review report: summary, photos by class, errors",
    )
    p.add_argument(
        "-q", "--quiet", action="store_true", help="print only errors, and one line if files failed"
    )
    p.set_defaults(run=run_classify)


def _add_inputs_and_output(p: argparse.ArgumentParser) -> None:
    """What to read and where the rows go."""
    p.add_argument(
        "inputs", nargs="*", metavar="INPUT", help="files, folders or glob patterns; - reads paths from stdin"
    )
    p.add_argument(
        "-o", "--output", default="-", metavar="FILE", help="output file, - for stdout (default: -)"
    )
    p.add_argument(
        "--format", choices=format_names(), help="output format (default: from the name, else csv)"
    )
    p.add_argument(
        "-0", "--null", action="store_true", help="paths on stdin are NUL-separated (find -print0)"
    )


def _add_run_control(p: argparse.ArgumentParser) -> None:
    """How this run relates to others: resuming one, waiting for one, taking one slice of the files."""
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep the rows of a previous run of -o (finished or interrupted) and do only the files it has "
        "no row for, or that changed since; refused if that run had other settings",
    )
    p.add_argument(
        "--no-retry-errors",
        dest="retry_errors",
        action="store_false",
        help="with --resume: keep the error rows of the previous run instead of trying those files again",
    )
    p.add_argument(
        "--wait", action="store_true", help="if another run is writing the output, wait for it (else exit 75)"
    )
    p.add_argument(
        "--shard",
        type=shard,
        metavar="K/N",
        help="classify only slice K of N stable slices of the files (a hash of each path inside its input "
        "folder), so N hosts can split one folder; writes OUTPUT.shard.json for merge",
    )
    p.add_argument(
        "--csv-safe",
        action="store_true",
        help="prefix CSV cells that a spreadsheet would run as a formula (=, +, -, @) with '",
    )


def _stdin_paths(args: argparse.Namespace, env: Environment) -> Iterator[str] | None:
    if "-" not in args.inputs:
        return None
    from fmnist_batch.discover import iter_paths_from_stream

    # the byte stream, so names that are not valid UTF-8 survive (os.fsdecode)
    return iter_paths_from_stream(getattr(env.stdin, "buffer", env.stdin), nul=args.null)


def run_classify(args: argparse.Namespace, env: Environment) -> int:
    from fmnist_batch.engines.workers import keep_freed_memory
    from fmnist_batch.job import ClassifyJob

    keep_freed_memory()  # this process converts the photos itself with --workers 1 or only a few files
    if args.ray_address and args.engine != "ray":
        env.error("--ray-address needs --engine ray")
        return ExitStatus.USAGE
    if args.engine == "ray":
        from fmnist_batch.cli.env import require

        for module in ("ray", "pyarrow"):
            require(module, "ray")
    progress = _Progress(env) if env.stderr_isatty and not args.quiet else None
    job = ClassifyJob(
        args.inputs,
        args.output,
        options_from(args),
        format=args.format,
        resume=args.resume,
        retry_errors=args.retry_errors,
        wait=args.wait,
        csv_safe=args.csv_safe,
        shard=args.shard,
        report=args.report,
        recursive=args.recursive,
        extensions=extensions(args),
        stdin_paths=_stdin_paths(args, env),
        stdout=env.stdout,
        on_row=progress.row if progress else None,
        on_total=progress.total if progress else None,
        on_warning=None if args.quiet else lambda m: env.info(f"warning: {m}"),
    )
    try:
        result = job.run()
    finally:
        if progress is not None:
            progress.close()
    return _report(result, args, env)


def _report(result, args: argparse.Namespace, env: Environment) -> int:
    summary = result.summary
    if result.notice and not args.quiet:
        env.info(f"fmnist-batch: {result.notice}")
    if result.found_nothing:
        env.error("no images found in: " + ", ".join(args.inputs))
        return ExitStatus.USAGE
    if summary.total == 0 and result.in_other_slices and not args.quiet:
        env.info(f"slice {args.shard} holds none of the {result.in_other_slices} files found")
    if not args.quiet:
        summary.print(env.stderr)
        if result.report:
            env.info(f"report: {result.report}")
    if result.errors:
        where = "the error column of " + (args.output if args.output != "-" else "the output")
        env.info(f"fmnist-batch: {result.errors:,} of {summary.total:,} files failed; see {where}")
        return ExitStatus.SOME_FAILED
    return ExitStatus.OK


class _Progress:
    """A progress bar on stderr; it learns the total (and so shows an ETA) once discovery has counted."""

    def __init__(self, env: Environment):
        from tqdm import tqdm

        self._bar = tqdm(unit="img", file=env.stderr, dynamic_ncols=True)

    def row(self, row: dict) -> None:
        self._bar.update(1)

    def total(self, count: int) -> None:
        self._bar.total = count  # read by the next refresh, from the main thread

    def close(self) -> None:
        self._bar.close()
