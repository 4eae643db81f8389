"""`fmnist-batch retrain`, `pair-photo-model` and `eda`: the training side (fmnist_batch.training)."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from fmnist_batch.cli.arguments import (
    add_model_options,
    formatter,
    non_negative_int,
    positive_int,
    probability,
)
from fmnist_batch.cli.env import Environment, ExitStatus, require

if TYPE_CHECKING:
    from fmnist_batch.training import TrainConfig

RETRAIN_DESCRIPTION = (
    "Retrain the CNN on Fashion-MNIST with augmentation and early stopping on a stratified "
    "validation split carved from the training images; evaluate once on the test set; export "
    "model.keras, model.tflite, model_card.json and history.csv into --out."
)
RETRAIN_EPILOG = (
    "examples:\n"
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
    "several classes is learnt with a partial-label loss, -log(total probability of its classes)."
)


def add_retrain(sub: argparse._SubParsersAction) -> None:
    from fmnist_batch.training import TrainConfig

    defaults = TrainConfig()
    p = sub.add_parser(
        "retrain",
        help="retrain the CNN on Fashion-MNIST and export the model files classify uses",
        description=RETRAIN_DESCRIPTION,
        epilog=RETRAIN_EPILOG,
        formatter_class=formatter,
    )
    p.add_argument("--data", metavar="DIR", help="folder with the IDX files or Kaggle CSVs (default: search)")
    p.add_argument("--download", action="store_true", help="download through Keras if not found locally")
    p.add_argument(
        "--epochs",
        type=non_negative_int,
        default=defaults.epochs,
        help="maximum epochs; 0 with --init-from evaluates and exports that model as it is (default: "
        "%(default)s)",
    )
    p.add_argument(
        "--batch-size", type=positive_int, default=defaults.batch_size, help="default: %(default)s"
    )
    p.add_argument(
        "--patience",
        type=positive_int,
        default=defaults.patience,
        help="early-stopping patience on val loss (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=defaults.seed, help="default: %(default)s")
    p.add_argument("--limit", type=positive_int, metavar="N", help="train on a stratified subset of N images")
    p.add_argument(
        "--learning-rate", type=float, default=defaults.learning_rate, help="peak rate (default: %(default)s)"
    )
    _add_export_options(p, defaults)
    _add_extra_data_options(p, defaults.extra_share)
    add_model_options(p, "--workers")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write the model files into")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    p.add_argument(
        "--verbose", action="store_true", help="also show TensorFlow's and the converter's own log lines"
    )
    p.set_defaults(run=run_retrain)


def _add_export_options(p: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    """How the model learns beyond the schedule (augmentation, a starting point) and what retrain exports
    with it (mirror averaging, the int8 file)."""
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


def _add_extra_data_options(p: argparse.ArgumentParser, extra_share: float) -> None:
    """--extra-data and the options that go with it: labelled real photos mixed into training."""
    p.add_argument("--extra-data", metavar="DIR", help="also train on these labelled real photos (see below)")
    p.add_argument(
        "--mapping", metavar="CSV", help="with --extra-data: which classes each of its folders holds"
    )
    p.add_argument(
        "--extra-share",
        type=probability,
        default=extra_share,
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


def run_retrain(args: argparse.Namespace, env: Environment) -> int:
    require("tensorflow", "train")
    from fmnist_batch.evaluate import EvaluationError
    from fmnist_batch.training import TrainConfig, TrainSetupError, load_dataset, train

    if args.extra_data is None and (args.mapping or args.extra_cache):
        env.error("--mapping and --extra-cache go with --extra-data")
        return ExitStatus.USAGE
    dataset = load_dataset(args.data, download=args.download)
    if not args.quiet:
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
        with tensorflow_quieted(env, args.verbose) as log:
            card = train(dataset, args.out, config, log=(lambda message: None) if args.quiet else log)
    except TrainSetupError as e:
        env.error(str(e))
        return ExitStatus.USAGE
    except EvaluationError as e:  # the --extra-data folder or its mapping
        env.error(f"--extra-data {args.extra_data}: {e}")
        return ExitStatus.USAGE
    if importlib.util.find_spec("matplotlib") is not None:
        from fmnist_batch.training import write_evaluation_figures

        for path in write_evaluation_figures(args.out, dataset, Path(args.out) / "figures"):
            if not args.quiet:
                env.info(f"wrote {path}")
    metrics = card["metrics"]
    if not args.quiet:
        env.info(
            f"done: validation accuracy {metrics['validation_accuracy']:.4f}, test accuracy "
            f"{metrics['test_accuracy']:.4f}, files in {args.out}"
        )
    return ExitStatus.OK


@contextlib.contextmanager
def tensorflow_quieted(env: Environment, verbose: bool) -> Iterator[Callable[[str], None]]:
    """Run TensorFlow with its own output silenced; yields the function that logs retrain's own lines.

    TensorFlow, absl and the LiteRT converter write from native code straight to file descriptors 1 and 2
    (cuInit failures, TensorSpec listings, MLIR warnings): only pointing those descriptors elsewhere
    silences them. retrain's own lines go to a copy of the real stderr kept for them."""
    if verbose:
        yield env.info
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # read when TensorFlow is first imported
    ours = env.info
    real_stderr = None
    if env.stderr is sys.stderr:
        real_stderr = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
        ours = lambda message: print(message, file=real_stderr, flush=True)  # noqa: E731
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield ours
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)
        if real_stderr is not None:
            real_stderr.close()


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
        "segments. The card records both accuracies either way. With --worn-photos, the photo model also "
        "reads the garments cut out of photos of a person if it reads those of DIR better (balanced "
        "accuracy).",
        epilog="examples:\n"
        "  fmnist-batch retrain --init-from models --augment photo --extra-data photos/train \\\n"
        "      --mapping mapping.csv --epochs 5 --learning-rate 1e-3 --out runs/photo\n"
        "  fmnist-batch pair-photo-model runs/photo --out runs/paired",
        formatter_class=formatter,
    )
    p.add_argument("photo_model", metavar="PHOTO_MODEL", help="model folder trained with --extra-data")
    p.add_argument("--model", metavar="DIR", help="the model for everything else (default: bundled)")
    p.add_argument("--out", required=True, metavar="DIR", help="new folder to write the paired model into")
    add_model_options(p, "--workers")
    p.add_argument(
        "--cache", metavar="FILE", help="keep the converted photos in this .npz (as retrain --extra-cache)"
    )
    p.add_argument(
        "--worn-photos",
        metavar="DIR",
        help="labelled photos of garments worn by a person (a folder per class, as evaluate reads) that "
        "decide which model reads the worn view",
    )
    p.set_defaults(run=run_pair_photo_model)


def run_pair_photo_model(args: argparse.Namespace, env: Environment) -> int:
    from fmnist_batch.evaluate import EvaluationError
    from fmnist_batch.training import PairingError, pair_with_photo_model

    try:
        decision = pair_with_photo_model(
            args.model,
            args.photo_model,
            args.out,
            workers=args.workers,
            cache=args.cache,
            worn_photos=args.worn_photos,
            log=env.info,
        )
    except (PairingError, EvaluationError) as e:
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
        formatter_class=formatter,
    )
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write the PNGs into")
    p.add_argument("--data", metavar="DIR", help="folder with the IDX files or Kaggle CSVs (default: search)")
    p.add_argument("--download", action="store_true", help="download through Keras if not found locally")
    p.add_argument("--model", metavar="DIR", help="also draw this model folder's evaluation figures")
    p.add_argument(
        "--sample-size",
        type=positive_int,
        default=2000,
        help="images in the PCA plot (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: %(default)s)")
    p.set_defaults(run=run_eda)


def run_eda(args: argparse.Namespace, env: Environment) -> int:
    require("matplotlib", "train")
    from fmnist_batch.training import load_dataset, write_eda_figures, write_evaluation_figures

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
