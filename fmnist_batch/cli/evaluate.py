"""`fmnist-batch evaluate`: a model's accuracy on a folder of labelled photos (fmnist_batch.evaluate)."""

from __future__ import annotations

import argparse

from fmnist_batch.cli.arguments import add_model_options, formatter, options_from
from fmnist_batch.cli.env import Environment, ExitStatus
from fmnist_batch.labels import OTHER_FOLDER


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="a model's accuracy on a folder of labelled photos (one subfolder per class)",
        description="Classify every photo under DIR through the same conversion and runtime as classify, and "
        "score it against its subfolder: folders named after a Fashion-MNIST class, or a mapping CSV "
        "(folder,fmnist_labels; several classes separated by |; empty = no class fits, folder skipped). "
        "A subfolder named other (--other-folder) holds photos of none of the 10 classes. Prints accuracy "
        "per folder, a confusion matrix and the share of the other folder answered other.",
        epilog="examples:\n"
        "  fmnist-batch evaluate samples\n"
        "  fmnist-batch evaluate photos/validation --mapping mapping.csv --json eval.json\n"
        "  fmnist-batch evaluate photos --model runs/new --invert never",
        formatter_class=formatter,
    )
    p.add_argument("folder", metavar="DIR", help="folder with one subfolder of photos per class")
    p.add_argument("--mapping", metavar="CSV", help="which Fashion-MNIST classes count as right per folder")
    p.add_argument(
        "--other-folder",
        default=OTHER_FOLDER,
        metavar="NAME",
        help="the subfolder of photos that show none of the 10 classes, in subfolders of any depth; "
        "reported as the share answered other per subfolder and the AUROC of in_scope (default: "
        "%(default)s)",
    )
    p.add_argument(
        "--json",
        metavar="FILE",
        help="also write the figures and the misclassified files as JSON (- for stdout)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print no tables (only errors)")
    add_model_options(
        p, "--model", "--workers", "--invert", "--background", "--precision", "--no-photo-model",
        "--no-garment-reader", "--other-threshold", "--no-other",
    )  # fmt: skip
    p.set_defaults(run=run_evaluate)


def run_evaluate(args: argparse.Namespace, env: Environment) -> int:
    import json

    from fmnist_batch.evaluate import evaluate
    from fmnist_batch.evaluation_tables import evaluation_tables
    from fmnist_batch.files import atomic_write
    from fmnist_batch.outputs.summary import print_tables

    result = evaluate(
        args.folder, mapping=args.mapping, options=options_from(args), other_folder=args.other_folder
    )
    if not args.quiet:  # tables are for people: stderr, so stdout can carry the JSON
        print_tables(evaluation_tables(result), env.stderr)
    if args.json == "-":
        json.dump(result.to_dict(), env.stdout, indent=2)
        env.stdout.write("\n")
    elif args.json:
        with atomic_write(args.json, encoding="utf-8") as file:
            json.dump(result.to_dict(), file, indent=2)
    return ExitStatus.OK
