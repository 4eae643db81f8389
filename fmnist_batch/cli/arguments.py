"""Argument types and the options several commands share, with defaults and help taken from
ClassifyOptions (the one source of classify's defaults)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

from fmnist_batch.engines import engine_names
from fmnist_batch.labels import IMAGE_EXTENSIONS
from fmnist_batch.options import default


class UsageError(Exception):
    """Options that cannot go together; the CLI exits 2 with the message."""


def formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _bounded(parse: Callable[[str], float], low: float, high: float, meaning: str) -> Callable[[str], Any]:
    """An argparse type: `parse` the text, then refuse values outside [low, high] saying what is meant."""

    def check(text: str):
        value = parse(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {meaning}, got {text}")
        return value

    check.__name__ = parse.__name__  # argparse names the type in its "invalid int value" message
    return check


positive_int = _bounded(int, 1, math.inf, "a positive integer")
non_negative_int = _bounded(int, 0, math.inf, "0 or a positive integer")
positive_float = _bounded(float, math.ulp(0.0), math.inf, "a positive number")
port = _bounded(int, 0, 65535, "a port number (0-65535)")
top_k = _bounded(int, 1, 10, "between 1 and 10")
probability = _bounded(float, 0.0, 1.0, "between 0 and 1")


def shard(text: str):  # -> discover.Shard, imported here so --help stays fast
    from fmnist_batch.discover import Shard

    try:
        return Shard.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _model_options() -> dict[str, dict]:
    """Flag -> add_argument keywords of the model and conversion options; dest = the ClassifyOptions field."""
    return {**_model_choice_options(), **_conversion_options(), **_answer_options(), **_run_options()}


def _model_choice_options() -> dict[str, dict]:
    """Which model runs, and how: backend, precision, the models its card names, batches and workers."""
    from fmnist_batch.model.runtime import BACKENDS, PRECISIONS

    return {
        "--model": {
            "metavar": "PATH",
            "help": "model folder, .tflite/.keras file or card (default: bundled)",
        },
        "--backend": {
            "choices": BACKENDS,
            "default": default("backend"),
            "help": "what runs the model: litert (its .tflite files, no TensorFlow needed) or keras (its "
            ".keras file, with the train extra); auto: LiteRT when installed, else Keras (default: "
            "%(default)s)",
        },
        "--precision": {
            "choices": PRECISIONS,
            "default": default("precision"),
            "help": "which .tflite LiteRT runs: int8 (about 4x faster), float (the Keras model's exact "
            "twin) or auto: the one the model card chose on validation (default: %(default)s)",
        },
        "--no-photo-model": {
            "dest": "photo_model",
            "action": "store_false",
            "help": "classify segmented and worn photos with the main model too, not with the photo model "
            "its card names",
        },
        "--no-garment-reader": {
            "dest": "garment_reader",
            "action": "store_false",
            "help": "read worn garments with the 28x28 model alone, not also in colour with the garment "
            "reader its card names (faster, less accurate on photos of a person)",
        },
        "--batch-size": {
            "type": positive_int,
            "default": default("batch_size"),
            "help": "images per prediction (default: %(default)s)",
        },
        "--workers": {
            "type": positive_int,
            "help": "conversion processes (default: the CPUs this process may use)",
        },
    }


def _conversion_options() -> dict[str, dict]:
    """How a photo becomes the 28x28 image: negation, the view of the garment, the size refused."""
    from fmnist_batch.convert import BACKGROUND_CHOICES, INVERT_CHOICES

    return {
        "--invert": {
            "choices": INVERT_CHOICES,
            "help": "negate photos (auto: unless the background is dark; default: the model card's, "
            "else auto)",
        },
        "--background": {
            "choices": BACKGROUND_CHOICES,
            "default": default("background"),
            "help": "segment: cut the garment out of its surroundings first (GrabCut); person: cut out the "
            "garment a person wears (no head, skin or second garment; plain when nobody is found); plain: "
            "the dataset's conversion as is; auto: person for photos that show one, else segment unless "
            "the border is one plain colour; products: auto without the person check, for folders of "
            "garments alone (default: %(default)s)",
        },
        "--max-pixels": {
            "type": positive_int,
            "default": default("max_pixels"),
            "help": "refuse larger images, from their header, before decoding (default: %(default)s)",
        },
        "--save-preprocessed": {
            "metavar": "DIR",
            "help": "also write the 28x28 images the model saw, as DIR/PHOTO-PATH.png (never through a "
            "symlink in DIR); a DIR inside an input folder is refused unless hidden (photos/.seen)",
        },
    }


def _answer_options() -> dict[str, dict]:
    """What each row answers: how many labels, and when a row is uncertain or other."""
    return {
        "--top-k": {
            "type": top_k,
            "default": default("top_k"),
            "help": "labels and probabilities per file (default: %(default)s)",
        },
        "--min-confidence": {
            "type": probability,
            "metavar": "P",
            "help": "files below this confidence get status 'uncertain'; 0 marks none (default: the "
            "model card's, the confidence below which its answers were wrong more often than right on "
            "labelled real photos)",
        },
        "--other-threshold": {
            "type": probability,
            "metavar": "P",
            "help": "answer 'other' (none of the 10 classes) below this in_scope probability; higher "
            "catches more out-of-scope products and loses more in-scope ones (default: the operating "
            "point the model card records)",
        },
        "--no-other": {
            "dest": "other",
            "action": "store_false",
            "help": "give every photo one of the 10 classes, without the card's scope judge: no 'other' "
            "answers and no in_scope column",
        },
    }


def _run_options() -> dict[str, dict]:
    """Where and how long the conversion runs."""
    return {
        "--timeout": {
            "type": positive_float,
            "default": default("timeout"),
            "metavar": "SECONDS",
            "help": "per-file conversion time limit; slower files get an error row (default: %(default)s)",
        },
        "--engine": {
            "choices": engine_names(),
            "default": default("engine"),
            "help": "local: worker processes on this machine; ray: a Ray cluster, with Ray Data "
            "(pip install '.[ray]') (default: %(default)s)",
        },
        "--ray-address": {
            "metavar": "ADDRESS",
            "help": "the Ray cluster for --engine ray: auto (the one this machine is part of) or HEAD:6379 "
            "(default: $RAY_ADDRESS, else a local Ray with --workers CPUs, for this run)",
        },
    }


def add_model_options(p: argparse.ArgumentParser, *flags: str) -> None:
    """Add the shared model and conversion options named by `flags`, in that order."""
    shared = _model_options()
    for flag in flags:
        p.add_argument(flag, **shared[flag])


def options_from(args: argparse.Namespace, **extra: object):  # -> ClassifyOptions
    """ClassifyOptions from the parsed options that are its fields (the others keep their defaults)."""
    from dataclasses import fields

    from fmnist_batch.options import ClassifyOptions

    names = {f.name for f in fields(ClassifyOptions)}
    given = {name: value for name, value in vars(args).items() if name in names}
    try:
        return ClassifyOptions(**given, **extra)
    except ValueError as e:  # a combination argparse cannot check alone
        raise UsageError(str(e)) from None


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


def extensions(args: argparse.Namespace) -> tuple[str, ...]:
    if not args.ext:
        return IMAGE_EXTENSIONS
    return tuple("." + e.strip().lower().lstrip(".") for e in args.ext.split(",") if e.strip())
