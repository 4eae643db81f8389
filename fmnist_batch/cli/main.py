"""Command line: argparse subcommands, argument validation, and mapping errors to exit codes.

The logic lives in the library modules; this file only wires arguments to them.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import TextIO

from fmnist_batch import __version__
from fmnist_batch.labels import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS


class ExitStatus(IntEnum):
    OK = 0
    SOME_FAILED = 1
    USAGE = 2
    TEMPFAIL = 75
    INTERRUPTED = 130


@dataclass
class Environment:
    """The streams a command talks to, and whether they are terminals; tests swap this, not globals."""

    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)

    @property
    def stderr_isatty(self) -> bool:
        return hasattr(self.stderr, "isatty") and self.stderr.isatty()

    def error(self, message: str) -> None:
        print(f"fmnist-batch: error: {message}", file=self.stderr)

    def info(self, message: str) -> None:
        print(message, file=self.stderr, flush=True)


EXIT_CODES_HELP = """exit codes:
  0    every file classified
  1    some files failed (their rows say why)
  2    usage error, or no images found
  75   another run holds the output's lock (EX_TEMPFAIL)
  130  interrupted (finished rows are kept; rerun with --resume)"""


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


class MissingExtra(Exception):
    """A command needs an optional extra that is not installed."""


def require(module: str, extra: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise MissingExtra(f"this command needs {module}: pip install 'fmnist-batch[{extra}]'")


# ------------------------------------------------------------------------------------ shared options


def _shared_options() -> dict[str, dict]:
    """The model and conversion options classify, evaluate and serve share: flag -> add_argument keywords."""
    from fmnist_batch.model.runtime import BACKENDS, PRECISIONS

    return {
        "--model": {
            "metavar": "PATH",
            "help": "model folder, .tflite/.keras file or card (default: bundled)",
        },
        "--backend": {
            "choices": BACKENDS,
            "default": "auto",
            "help": "default: %(default)s",
        },
        "--batch-size": {
            "type": _positive_int,
            "default": 256,
            "help": "images per prediction (default: %(default)s)",
        },
        "--workers": {"type": _positive_int, "help": "conversion processes (default: CPU count)"},
        "--top-k": {
            "type": _top_k,
            "default": 3,
            "help": "labels and probabilities per file (default: %(default)s)",
        },
        "--min-confidence": {
            "type": _probability,
            "default": 0.0,
            "metavar": "P",
            "help": "files below this confidence get status 'uncertain' (default: %(default)s)",
        },
        "--invert": {
            "choices": ("auto", "always", "never"),
            "default": "auto",
            "help": "negate photos (auto: unless the background is dark; default: %(default)s)",
        },
        "--background": {
            "choices": ("auto", "plain", "segment"),
            "default": "auto",
            "help": "segment: cut the garment out of its surroundings first (GrabCut); plain: the dataset's "
            "conversion as is; auto: segment unless the border is one plain colour (default: %(default)s)",
        },
        "--max-pixels": {
            "type": _positive_int,
            "default": DEFAULT_MAX_PIXELS,
            "help": "refuse larger images",
        },
        "--precision": {
            "choices": PRECISIONS,
            "default": "auto",
            "help": "which .tflite LiteRT runs: int8 (about 4x faster), float (the Keras model's exact "
            "twin) or auto: the one the model card chose on validation (default: %(default)s)",
        },
        "--no-photo-model": {
            "dest": "photo_model",
            "action": "store_false",
            "help": "classify segmented photos with the main model too, not with the photo model its card "
            "names",
        },
    }


def add_model_options(p: argparse.ArgumentParser, *flags: str) -> None:
    """Add the shared model and conversion options named by `flags`, in that order."""
    shared = _shared_options()
    for flag in flags:
        p.add_argument(flag, **shared[flag])


def add_discovery_options(p: argparse.ArgumentParser) -> None:
    """--no-recursive and --ext: how folders and glob patterns are listed (classify, merge --inputs)."""
    p.add_argument(
        "--no-recursive", dest="recursive", action="store_false", help="do not descend into subfolders"
    )
    p.add_argument(
        "--ext",
        metavar="EXTS",
        help="comma-separated extensions to pick up in folders and globs (default: "
        + ",".join(IMAGE_EXTENSIONS)
        + ")",
    )


def _extensions(args: argparse.Namespace) -> tuple[str, ...]:
    if not args.ext:
        return IMAGE_EXTENSIONS
    return tuple("." + e.strip().lower().lstrip(".") for e in args.ext.split(",") if e.strip())


# ---------------------------------------------------------------------------------------------- classify


def add_classify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "classify",
        help="classify photos into the 10 Fashion-MNIST classes, one output row per file",
        description="Classify photos (files, folders, glob patterns, or paths on stdin) with a CNN. "
        "Every photo goes through Fashion-MNIST's own conversion (trim the background, fit the longest edge "
        "to 28, sharpen, centre, invert, grayscale) and gets one row: path, label, confidence, top-k "
        "labels and probabilities, status (ok, uncertain, error) and error. Rows are streamed batch by "
        "batch; the file is put in place atomically at the end, and an interrupted run keeps its rows.",
        epilog="examples:\n"
        "  fmnist-batch classify ./photos -o out.csv\n"
        "  fmnist-batch classify ./photos -o out.csv --resume     # after an interrupted run\n"
        "  fmnist-batch classify 'shop/**/*.jpg' --top-k 5 --format jsonl -o out.jsonl\n"
        "  find /srv/catalog -newer last-run -print0 | fmnist-batch classify -0 - -o - --quiet\n"
        "  fmnist-batch classify photo.png -o - | cut -d, -f2\n"
        "  fmnist-batch classify ./photos -o out.csv --report report.html   # to review in a browser\n"
        "  fmnist-batch classify /srv/photos --shard 2/3 -o /srv/out/labels-2.csv   # host 2 of 3\n"
        "  fmnist-batch classify /srv/photos --engine ray --ray-address auto -o /srv/out/labels.csv\n\n"
        + EXIT_CODES_HELP,
        formatter_class=_formatter,
    )
    p.add_argument(
        "inputs", nargs="*", metavar="INPUT", help="files, folders or glob patterns; - reads paths from stdin"
    )
    p.add_argument(
        "-o", "--output", default="-", metavar="FILE", help="output file, - for stdout (default: -)"
    )
    p.add_argument(
        "--format", choices=("csv", "jsonl"), help="output format (default: from the name, else csv)"
    )
    p.add_argument(
        "-0", "--null", action="store_true", help="paths on stdin are NUL-separated (find -print0)"
    )
    add_discovery_options(p)
    p.add_argument(
        "--resume", action="store_true", help="keep the rows of a previous run of -o and skip their files"
    )
    p.add_argument(
        "--wait", action="store_true", help="if another run is writing the output, wait for it (else exit 75)"
    )
    p.add_argument(
        "--shard",
        type=_shard,
        metavar="K/N",
        help="classify only slice K of N stable slices of the files (a hash of each path inside its input "
        "folder), so N hosts can split one folder; writes OUTPUT.shard.json for merge",
    )
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: worker processes on this machine; ray: a Ray cluster, with Ray Data "
        "(pip install 'fmnist-batch[ray]') (default: %(default)s)",
    )
    p.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help="the Ray cluster for --engine ray: auto (the one this machine is part of) or HEAD:6379 "
        "(default: $RAY_ADDRESS, else a local Ray with --workers CPUs, for this run)",
    )
    add_model_options(
        p,
        "--model",
        "--backend",
        "--batch-size",
        "--workers",
        "--top-k",
        "--min-confidence",
        "--invert",
        "--background",
        "--max-pixels",
        "--precision",
        "--no-photo-model",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="per-file conversion time limit; slower files get an error row (default: %(default)s)",
    )
    p.add_argument("--save-preprocessed", metavar="DIR", help="also write the 28x28 images the model saw")
    p.add_argument(
        "--report",
        metavar="FILE",
        help="also write a self-contained HTML review report: summary, photos by class, errors",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    p.set_defaults(run=run_classify)


def _stdin_paths(args: argparse.Namespace, env: Environment) -> Iterator[str] | None:
    if "-" not in args.inputs:
        return None
    from fmnist_batch.discover import iter_paths_from_stream

    # the byte stream, so names that are not valid UTF-8 survive (os.fsdecode)
    return iter_paths_from_stream(getattr(env.stdin, "buffer", env.stdin), nul=args.null)


def run_classify(args: argparse.Namespace, env: Environment) -> int:
    from fmnist_batch.convert import PreprocessSettings
    from fmnist_batch.discover import check_inputs, discover
    from fmnist_batch.engines.local import Classifier, ClassifyOptions, keep_freed_memory
    from fmnist_batch.outputs.shards import write_record
    from fmnist_batch.outputs.summary import Summary
    from fmnist_batch.outputs.writer import ResultWriter, resolve_format, row_fields

    keep_freed_memory()  # this process converts the photos itself with --workers 1 or only a few files

    if not args.inputs:
        env.error("no inputs: name files, folders or glob patterns, or - to read paths from stdin")
        return ExitStatus.USAGE
    if args.inputs.count("-") > 1:
        env.error("stdin (-) can be named only once")
        return ExitStatus.USAGE
    if args.ray_address and args.engine != "ray":
        env.error("--ray-address needs --engine ray")
        return ExitStatus.USAGE
    if args.engine == "ray":
        for module in ("ray", "pyarrow"):
            require(module, "ray")
    check_inputs([i for i in args.inputs if i != "-"])
    extensions = _extensions(args)
    options = ClassifyOptions(
        model=args.model,
        backend=args.backend,
        precision=args.precision,
        photo_model=args.photo_model,
        batch_size=args.batch_size,
        workers=args.workers,
        top_k=args.top_k,
        min_confidence=args.min_confidence,
        preprocess=PreprocessSettings(
            invert=args.invert, background=args.background, max_pixels=args.max_pixels
        ),
        save_preprocessed=args.save_preprocessed,
        file_timeout=args.timeout,
    )
    fmt = resolve_format(args.output, args.format)
    summary = Summary()
    report = None
    if args.report:
        from fmnist_batch.outputs.html_report import HtmlReport

        report = HtmlReport(args.report, inputs=args.inputs, settings=options.preprocess)
    progress = None
    if env.stderr_isatty and not args.quiet:
        from tqdm import tqdm

        progress = tqdm(unit="img", file=env.stderr, dynamic_ncols=True)

    if args.engine == "ray":
        from fmnist_batch.engines.ray import RayClassifier

        engine: Classifier = RayClassifier(options, address=args.ray_address)
    else:
        engine = Classifier(options)
    in_other_slices = 0

    def count_other_slice(file: object) -> None:
        nonlocal in_other_slices
        in_other_slices += 1

    with engine as classifier:
        classifier.model  # a broken model is reported before the output is touched  # noqa: B018
        writer = ResultWriter(
            args.output, row_fields(args.top_k), fmt, stdout=env.stdout, resume=args.resume, wait=args.wait
        )
        with writer:
            # merge reads which slice an output holds, and whether its run finished, from this record
            record = args.shard is not None and writer.partial is not None
            if record:
                write_record(args.output, args.shard)
            summary.skipped = len(writer.done)
            files = discover(
                args.inputs,
                stdin_paths=_stdin_paths(args, env),
                recursive=args.recursive,
                extensions=extensions,
                on_warning=None if args.quiet else lambda m: env.info(f"warning: {m}"),
                shard=args.shard,
                on_other_slice=count_other_slice,
            )
            todo = (f for f in files if f.display not in writer.done)
            for row in classifier.run(todo, on_batch=writer.flush):
                writer.write(row)
                summary.add(row)
                if report is not None:
                    report.add(row)
                if progress is not None:
                    progress.update(1)
            if record:
                write_record(args.output, args.shard, rows=writer.rows)
    if progress is not None:
        progress.close()
    if summary.total == 0 and not summary.skipped:
        if not in_other_slices:
            env.error("no images found in: " + ", ".join(args.inputs))
            return ExitStatus.USAGE
        if not args.quiet:
            env.info(f"slice {args.shard} holds none of the {in_other_slices} files found")
    if not args.quiet:
        summary.print(env.stderr)
    if report is not None:
        with report:
            report.finish(skipped=summary.skipped, model_accuracy=classifier.model.test_accuracy)
        if not args.quiet:
            env.info(f"report: {args.report}")
    return ExitStatus.SOME_FAILED if summary.errors else ExitStatus.OK


# ---------------------------------------------------------------------------------------------- merge

MERGE_EXIT_CODES_HELP = """exit codes:
  0    merged; every slice is there and finished (and with --inputs, every file has a row)
  1    merged, with gaps (listed on stderr): a slice missing or unfinished, files with no row
  2    refused, nothing written: a path in two rows, different columns or splits; or a usage error
  75   another run holds the output's lock (EX_TEMPFAIL)"""


def add_merge(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "merge",
        help="combine the outputs of classify --shard runs into one, checking for overlaps and gaps",
        description="Write the rows of the SHARD outputs (CSV or JSON Lines, as written by classify --shard "
        "K/N -o FILE), shard by shard, into OUTPUT, atomically. A path with more than one row is refused. "
        "Gaps are reported: from the FILE.shard.json record each shard run writes next to its output, a "
        "slice of 1..N that no output holds or whose run did not finish; with --inputs, files that no "
        "output has a row for.",
        epilog="examples:\n"
        "  fmnist-batch merge labels.csv out/labels-1.csv out/labels-2.csv out/labels-3.csv\n"
        "  fmnist-batch merge labels.csv out/labels-*.csv --shards 3          # expect 3 slices\n"
        "  fmnist-batch merge labels.csv out/labels-*.csv --inputs /srv/photos  # every file covered?\n\n"
        + MERGE_EXIT_CODES_HELP,
        formatter_class=_formatter,
    )
    p.add_argument("output", metavar="OUTPUT", help="the merged output file")
    p.add_argument("shard_outputs", nargs="+", metavar="SHARD", help="the shard runs' output files")
    p.add_argument(
        "--format", choices=("csv", "jsonl"), help="output format (default: from the name, else csv)"
    )
    p.add_argument(
        "--shards",
        type=_positive_int,
        metavar="N",
        help="the number of slices the outputs must cover (default: what their records say)",
    )
    p.add_argument(
        "--inputs",
        nargs="+",
        metavar="INPUT",
        help="the shard runs' inputs, named as they named them: list the files no output has a row for",
    )
    add_discovery_options(p)
    p.add_argument(
        "--wait", action="store_true", help="if another run is writing the output, wait for it (else exit 75)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors and gaps")
    p.set_defaults(run=run_merge)


def run_merge(args: argparse.Namespace, env: Environment) -> int:
    from fmnist_batch.discover import check_inputs
    from fmnist_batch.outputs.shards import merge

    if args.inputs:
        check_inputs(args.inputs)
    report = merge(
        args.output,
        args.shard_outputs,
        fmt=args.format,
        count=args.shards,
        inputs=args.inputs,
        recursive=args.recursive,
        extensions=_extensions(args),
        on_warning=None if args.quiet else lambda m: env.info(f"warning: {m}"),
        wait=args.wait,
    )
    for gap in report.gaps:
        env.info(f"fmnist-batch: gap: {gap}")
    if not args.quiet:
        slices = (
            f", {report.count} slices" if report.count is not None else ", slices not checked (no records)"
        )
        env.info(f"merged {len(args.shard_outputs)} files, {report.rows} rows into {args.output}{slices}")
    return ExitStatus.SOME_FAILED if report.gaps else ExitStatus.OK


# ---------------------------------------------------------------------------------------------- evaluate


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="a model's accuracy on a folder of labelled photos (one subfolder per class)",
        description="Classify every photo under DIR through the same conversion and runtime as classify, and "
        "score it against its subfolder: folders named after a Fashion-MNIST class, or a mapping CSV "
        "(folder,fmnist_labels; several classes separated by |; empty = no class fits, folder skipped). "
        "Prints accuracy per folder and a confusion matrix.",
        epilog="examples:\n"
        "  fmnist-batch evaluate samples\n"
        "  fmnist-batch evaluate photos/validation --mapping mapping.csv --json eval.json\n"
        "  fmnist-batch evaluate photos --model runs/new --invert never",
        formatter_class=_formatter,
    )
    p.add_argument("folder", metavar="DIR", help="folder with one subfolder of photos per class")
    p.add_argument("--mapping", metavar="CSV", help="which Fashion-MNIST classes count as right per folder")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    add_model_options(
        p, "--model", "--workers", "--invert", "--background", "--precision", "--no-photo-model"
    )
    p.set_defaults(run=run_evaluate)


def run_evaluate(args: argparse.Namespace, env: Environment) -> int:
    import json

    from fmnist_batch.convert import PreprocessSettings
    from fmnist_batch.engines.local import ClassifyOptions
    from fmnist_batch.evaluate import evaluate
    from fmnist_batch.outputs.summary import evaluation_tables, print_tables

    options = ClassifyOptions(
        model=args.model,
        precision=args.precision,
        photo_model=args.photo_model,
        workers=args.workers,
        preprocess=PreprocessSettings(invert=args.invert, background=args.background),
    )
    result = evaluate(args.folder, mapping=args.mapping, options=options)
    print_tables(evaluation_tables(result), env.stdout)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result.to_dict(), f, indent=2)
    return ExitStatus.OK


# ---------------------------------------------------------------------------------------------- retrain


def add_retrain(sub: argparse._SubParsersAction) -> None:
    from fmnist_batch.training.train import TrainConfig

    defaults = TrainConfig()
    p = sub.add_parser(
        "retrain",
        help="retrain the CNN on Fashion-MNIST and export the model files classify uses",
        description="Retrain the CNN on Fashion-MNIST with augmentation and early stopping on a stratified "
        "validation split carved from the training images; evaluate once on the test set; export "
        "model.keras, model.tflite, model_card.json and history.csv into --out.",
        epilog="examples:\n"
        "  fmnist-batch retrain --out runs/full\n"
        "  fmnist-batch retrain --limit 2000 --epochs 1 --out /tmp/m      # a quick smoke run\n"
        "  fmnist-batch retrain --init-from runs/full --augment light --epochs 8 --learning-rate 1e-3 \\\n"
        "      --out runs/finetuned                                       # a fine-tuning pass\n"
        "  FMNIST_DATA=~/data/fmnist fmnist-batch retrain --epochs 60 --patience 10 --out runs/long\n"
        "  fmnist-batch retrain --augment photo --extra-data photos/train --mapping mapping.csv \\\n"
        "      --extra-cache runs/photos.npz --out runs/photos            # prepared for real photos\n"
        "\n"
        "real photos (--extra-data): laid out as for `evaluate` (one subfolder per class, or --mapping\n"
        "CSV with folder,fmnist_labels; several classes separated by |, empty = folder left out), converted\n"
        "as classify converts them, and mixed into the training split only. 20% of each folder (seeded)\n"
        "is held out: its accuracy is logged every epoch and recorded in the model card. A folder with\n"
        "several classes is learnt with a partial-label loss, -log(total probability of its classes).",
        formatter_class=_formatter,
    )
    p.add_argument("--data", metavar="DIR", help="folder with the IDX files or Kaggle CSVs (default: search)")
    p.add_argument("--download", action="store_true", help="download through Keras if not found locally")
    p.add_argument(
        "--epochs",
        type=_non_negative_int,
        default=defaults.epochs,
        help="maximum epochs; 0 with --init-from evaluates and exports that model as it is (default: "
        "%(default)s)",
    )
    p.add_argument(
        "--batch-size", type=_positive_int, default=defaults.batch_size, help="default: %(default)s"
    )
    p.add_argument(
        "--patience",
        type=_positive_int,
        default=defaults.patience,
        help="early-stopping patience on val loss (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=defaults.seed, help="default: %(default)s")
    p.add_argument(
        "--limit", type=_positive_int, metavar="N", help="train on a stratified subset of N images"
    )
    p.add_argument(
        "--learning-rate", type=float, default=defaults.learning_rate, help="peak rate (default: %(default)s)"
    )
    p.add_argument(
        "--augment",
        choices=("full", "light", "photo", "none"),
        default=defaults.augment,
        help="full: flips, shifts, small rotations, random erasing; light: flips and shifts; photo: full "
        "plus scale, contrast, gamma and blur as converted real photos vary (default: %(default)s)",
    )
    p.add_argument(
        "--init-from",
        metavar="DIR",
        help="start from this model folder's weights (a fine-tuning pass; the rate warms up "
        "again, so validation dips before it improves: allow a --patience of half the --epochs or more)",
    )
    p.add_argument(
        "--flip-average",
        choices=("auto", "on", "all", "off"),
        default=defaults.flip_average,
        help="classify an image as the mean of its and its mirror image's logits: on: only images the "
        "model is unsure of, below the lowest confidence gate that is as accurate on validation as "
        "mirroring every image; all: every image (twice the model's work); auto: on, when mirroring is "
        "more accurate on the validation split (default: %(default)s)",
    )
    p.add_argument(
        "--quantize",
        choices=("auto", "on", "off"),
        default=defaults.quantize,
        help="also export model.int8.tflite (int8 weights and activations, about 4x faster): on: LiteRT "
        "runs it; auto: when its validation accuracy is within 0.001 of the float file's; off: no int8 "
        "file (default: %(default)s)",
    )
    p.add_argument("--extra-data", metavar="DIR", help="also train on these labelled real photos (see below)")
    p.add_argument(
        "--mapping", metavar="CSV", help="with --extra-data: which classes each of its folders holds"
    )
    p.add_argument(
        "--extra-share",
        type=_probability,
        default=defaults.extra_share,
        metavar="F",
        help="with --extra-data: the real photos' share of each epoch; they are repeated to reach it, "
        "at least once (default: %(default)s: ~2,000 photos beside 50,000 images appear 4 times)",
    )
    p.add_argument(
        "--extra-cache",
        metavar="FILE",
        help="with --extra-data: keep the converted photos in this .npz and reuse them while the photos, "
        "conversion settings and code are unchanged",
    )
    add_model_options(p, "--workers")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write the model files into")
    p.set_defaults(run=run_retrain)


def run_retrain(args: argparse.Namespace, env: Environment) -> int:
    require("tensorflow", "train")
    from fmnist_batch.evaluate import EvaluationError
    from fmnist_batch.training.data import load_dataset
    from fmnist_batch.training.train import TrainConfig, TrainSetupError, train

    if args.extra_data is None and (args.mapping or args.extra_cache):
        env.error("--mapping and --extra-cache go with --extra-data")
        return ExitStatus.USAGE
    dataset = load_dataset(args.data, download=args.download)
    env.info(f"Fashion-MNIST from {dataset.source}")
    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        patience=args.patience,
        seed=args.seed,
        limit=args.limit,
        learning_rate=args.learning_rate,
        augment=args.augment,
        init_from=args.init_from,
        extra_data=args.extra_data,
        extra_mapping=args.mapping,
        extra_share=args.extra_share,
        extra_cache=args.extra_cache,
        workers=args.workers,
        flip_average=args.flip_average,
        quantize=args.quantize,
        command=args.command_line,
    )
    try:
        card = train(dataset, args.out, config, log=env.info)
    except TrainSetupError as e:
        env.error(str(e))
        return ExitStatus.USAGE
    except EvaluationError as e:  # the --extra-data folder or its mapping
        env.error(f"--extra-data {args.extra_data}: {e}")
        return ExitStatus.USAGE
    if importlib.util.find_spec("matplotlib") is not None:
        from fmnist_batch.training.figures import write_evaluation_figures

        for path in write_evaluation_figures(args.out, dataset, Path(args.out) / "figures"):
            env.info(f"wrote {path}")
    metrics = card["metrics"]
    env.info(
        f"done: validation accuracy {metrics['validation_accuracy']:.4f}, test accuracy "
        f"{metrics['test_accuracy']:.4f}, files in {args.out}"
    )
    return ExitStatus.OK


# ------------------------------------------------------------------------------------ pair-photo-model


def add_pair_photo_model(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pair-photo-model",
        help="give a model a second model, trained with real photos, for the photos it segments",
        description="Write --model (default: the bundled one) into --out with PHOTO_MODEL as its photo "
        "model: classify, evaluate and serve then send each photo the conversion cut out of a non-plain "
        "background to PHOTO_MODEL, and everything else (catalog shots, the dataset's images) to the first "
        "model. PHOTO_MODEL must come from `retrain --extra-data`: it is attached only if it is more "
        "accurate than the first model on the real photos that retrain held out and the conversion "
        "segments. The card records both accuracies either way.",
        epilog="examples:\n"
        "  fmnist-batch retrain --init-from models --augment photo --extra-data photos/train \\\n"
        "      --mapping mapping.csv --epochs 5 --learning-rate 1e-3 --out runs/photo\n"
        "  fmnist-batch pair-photo-model runs/photo --out runs/paired",
        formatter_class=_formatter,
    )
    p.add_argument("photo_model", metavar="PHOTO_MODEL", help="model folder trained with --extra-data")
    p.add_argument("--model", metavar="DIR", help="the model for everything else (default: bundled)")
    p.add_argument("--out", required=True, metavar="DIR", help="new folder to write the paired model into")
    add_model_options(p, "--workers")
    p.add_argument(
        "--cache", metavar="FILE", help="keep the converted photos in this .npz (as retrain --extra-cache)"
    )
    p.set_defaults(run=run_pair_photo_model)


def run_pair_photo_model(args: argparse.Namespace, env: Environment) -> int:
    from fmnist_batch.training.photo_model import PairingError, pair_with_photo_model

    try:
        decision = pair_with_photo_model(
            args.model, args.photo_model, args.out, workers=args.workers, cache=args.cache, log=env.info
        )
    except PairingError as e:
        env.error(str(e))
        return ExitStatus.USAGE
    env.info(f"wrote {args.out} ({'with' if decision['attached'] else 'without'} a photo model)")
    return ExitStatus.OK


# ---------------------------------------------------------------------------------------------- eda


def add_eda(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eda",
        help="exploratory figures of Fashion-MNIST (and a model's evaluation) as PNGs",
        description="Write exploratory figures of the dataset: samples per class, class counts, mean and "
        "standard-deviation images, intensity histograms, a PCA embedding and the classes that look most "
        "alike. With --model, also the model's evaluation: training curves, confusion matrix, per-class "
        "scores and the most confident mistakes.",
        epilog="examples:\n"
        "  fmnist-batch eda --out docs/figures\n"
        "  fmnist-batch eda --out docs/figures --model models      # the README's figures",
        formatter_class=_formatter,
    )
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write the PNGs into")
    p.add_argument("--data", metavar="DIR", help="folder with the IDX files or Kaggle CSVs (default: search)")
    p.add_argument("--download", action="store_true", help="download through Keras if not found locally")
    p.add_argument("--model", metavar="DIR", help="also draw this model folder's evaluation figures")
    p.add_argument(
        "--sample-size",
        type=_positive_int,
        default=2000,
        help="images in the PCA plot (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: %(default)s)")
    p.set_defaults(run=run_eda)


def run_eda(args: argparse.Namespace, env: Environment) -> int:
    require("matplotlib", "train")
    from fmnist_batch.training.data import load_dataset
    from fmnist_batch.training.figures import write_eda_figures, write_evaluation_figures

    dataset = load_dataset(args.data, download=args.download)
    written = write_eda_figures(dataset, args.out, sample_size=args.sample_size, seed=args.seed)
    if args.model:
        try:
            written += write_evaluation_figures(args.model, dataset, args.out)
        except (FileNotFoundError, ValueError) as e:
            env.error(f"cannot draw the evaluation of {args.model}: {e}")
            return ExitStatus.USAGE
    for path in written:
        env.info(f"wrote {path}")
    return ExitStatus.OK


# ---------------------------------------------------------------------------------------------- serve


def add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="a web page and JSON API to classify photos from a browser or over HTTP",
        description="Serve a page where photos dropped or picked in a browser are classified (each with the "
        "28x28 image the model saw and its top-k probabilities), and a JSON API: POST /api/classify "
        "(multipart/form-data, files in fields named 'files'; one result per file with the same fields as a "
        "CSV row plus preview_png), GET /api/health, GET /api/model (the model card). The model loads once, "
        "at start; uploads are decoded in memory and never written to disk. Errors are JSON: 400 no files "
        "or a malformed body, 413 an upload over --max-upload-mb or with more than --max-files files, 415 "
        "not multipart; a file that is not a usable image gets status 'error' in its result (200).",
        epilog="examples:\n"
        "  fmnist-batch serve                                   # then open http://127.0.0.1:8000/\n"
        "  fmnist-batch serve --port 8080 --model runs/full --top-k 5\n"
        "  curl -F files=@shoe.jpg -F files=@bag.png http://127.0.0.1:8000/api/classify\n\n"
        "The server has no authentication: keep the default --host 127.0.0.1 unless a proxy in front of it "
        "does that.",
        formatter_class=_formatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=_port, default=8000, help="port to listen on (default: %(default)s)")
    add_model_options(p, "--model")
    p.add_argument(
        "--max-upload-mb",
        type=_positive_float,
        default=20.0,
        metavar="MB",
        help="largest request accepted, all its files together (default: %(default)g)",
    )
    p.add_argument(
        "--max-files", type=_positive_int, default=50, help="most files per request (default: %(default)s)"
    )
    add_model_options(
        p, "--top-k", "--min-confidence", "--background", "--max-pixels", "--precision", "--no-photo-model"
    )
    p.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace, env: Environment) -> int:
    for module in ("fastapi", "uvicorn", "python_multipart"):
        require(module, "serve")
    import uvicorn

    from fmnist_batch.convert import PreprocessSettings
    from fmnist_batch.engines.local import ClassifyOptions
    from fmnist_batch.model.runtime import load_model
    from fmnist_batch.serve.app.app import MEGABYTE, ServeOptions, create_app

    classify_options = ClassifyOptions(
        model=args.model,
        precision=args.precision,
        photo_model=args.photo_model,
        top_k=args.top_k,
        min_confidence=args.min_confidence,
        preprocess=PreprocessSettings(background=args.background, max_pixels=args.max_pixels),
    )
    options = ServeOptions(
        classify=classify_options,
        max_upload_bytes=int(args.max_upload_mb * MEGABYTE),
        max_files=args.max_files,
    )
    # Loaded here, once, so a broken model is a clean usage error (exit 2) before the port is opened.
    model = load_model(args.model, use_photo_model=args.photo_model, precision=args.precision)
    server = uvicorn.Server(uvicorn.Config(create_app(options, model), host=args.host, port=args.port))
    try:
        server.run()
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C / SIGTERM it shut down on
        pass
    except SystemExit:  # uvicorn exits when it cannot listen; it has logged why
        env.error(f"cannot serve on {args.host}:{args.port}")
        return ExitStatus.USAGE
    return ExitStatus.OK


# ---------------------------------------------------------------------------------------------- parsing


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number (0-65535), got {text}")
    return value


def _top_k(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 10:
        raise argparse.ArgumentTypeError(f"must be between 1 and 10, got {text}")
    return value


def _shard(text: str):  # -> discover.Shard, imported here so --help stays fast
    from fmnist_batch.discover import Shard

    try:
        return Shard.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fmnist-batch",
        description="Classify folders of product photos into the 10 Fashion-MNIST classes.",
        epilog=EXIT_CODES_HELP,
        formatter_class=_formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    add_classify(sub)
    add_merge(sub)
    add_evaluate(sub)
    add_retrain(sub)
    add_pair_photo_model(sub)
    add_eda(sub)
    add_serve(sub)
    return parser


def main(argv: Sequence[str] | None = None, env: Environment | None = None) -> int:
    env = env or Environment()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        # what the model card records: the command as typed, also when main() is called from Python
        args.command_line = ["fmnist-batch", *(sys.argv[1:] if argv is None else argv)]
    except SystemExit as e:  # argparse exits 2 on usage errors and 0 on --help
        return int(e.code or 0)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if _in_main_thread() else None
    try:
        return int(args.run(args, env))
    except KeyboardInterrupt:
        hint = (
            "; finished rows are kept (rerun with --resume to continue)" if args.command == "classify" else ""
        )
        env.error("interrupted" + hint)
        return ExitStatus.INTERRUPTED
    except Exception as e:
        status = _status_of(e)
        if status is None:
            raise
        env.error(str(e))
        return status
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _status_of(error: Exception) -> ExitStatus | None:
    """The exit status of an error the user can act on, or None for a bug (which keeps its traceback).
    The error classes are imported here, on failure, so a run's start-up does not import their modules."""
    from fmnist_batch.discover import InputError
    from fmnist_batch.engines.ray import RayUnavailable
    from fmnist_batch.evaluate import EvaluationError
    from fmnist_batch.model.runtime import ModelError
    from fmnist_batch.outputs.shards import MergeError
    from fmnist_batch.outputs.writer import OutputError, OutputLocked
    from fmnist_batch.training.data import DatasetError

    if isinstance(error, OutputLocked):
        return ExitStatus.TEMPFAIL
    usage_errors = (
        MissingExtra,
        DatasetError,
        EvaluationError,
        InputError,
        MergeError,
        ModelError,
        OutputError,
        RayUnavailable,
    )
    if isinstance(error, usage_errors):
        return ExitStatus.USAGE
    return None


def _raise_interrupt(signum: int, frame: object) -> None:
    # SIGTERM (cron timeouts, systemd) takes the same path as Ctrl-C: keep finished rows, exit 130.
    raise KeyboardInterrupt


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def entry_point() -> None:
    # Exit quietly when a pipeline's reader goes away (`fmnist-batch classify ... -o - | head`).
    try:
        status = main()
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        status = ExitStatus.SOME_FAILED
    sys.exit(status)
