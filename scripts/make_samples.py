"""Render the sample photos shipped in samples/: Fashion-MNIST test images as catalog-style photos.

    python scripts/make_samples.py --out samples --per-class 2
    python scripts/make_samples.py --out /tmp/catalog-dev --per-class 50 --split validation

``--split validation`` renders retrain's validation split instead (the 5,000 training images it holds
out, seed 42): catalog photos to develop the conversion on without looking at the test set.

Each class gets its own folder (named by class, so the folder doubles as a labelled set). Photos vary
as real catalog shots do: size, white or #fdfdfd background, off-centre placement, tint, JPEG/PNG/WebP.
Deterministic for a given --seed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from synth import CATALOG_GREY, WHITE, render_catalog_photo, save_photo

from fmnist_batch.labels import CLASS_NAMES
from fmnist_batch.training.data import load_dataset

TINTS = [None, (40, 60, 120), (120, 30, 30), (30, 90, 50), (90, 70, 40)]
FORMATS = [("JPEG", "jpg"), ("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp")]
QUALITY = 88


def render_sample(
    image: np.ndarray, rng: np.random.Generator, seed: int
) -> tuple[Image.Image, tuple[str, str]]:
    """One 28x28 image as a catalog photo in this script's style, and the (format, extension) to save it
    as (with QUALITY): the photos samples/ and the catalog accuracy figure are made of."""
    photo = render_catalog_photo(
        image,
        size=int(rng.integers(400, 701)),
        background=WHITE if rng.random() < 0.6 else CATALOG_GREY,
        tint=TINTS[rng.integers(len(TINTS))],
        offset=(float(rng.uniform(-0.12, 0.12)), float(rng.uniform(-0.12, 0.12))),
        garment_fraction=float(rng.uniform(0.5, 0.8)),
        noise=1.0,
        seed=seed,
    )
    return photo, FORMATS[rng.integers(len(FORMATS))]


def slug(name: str) -> str:
    return name.lower().replace("/", "-").replace(" ", "-")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="samples", help="folder to write into (default: %(default)s)")
    parser.add_argument("--per-class", type=int, default=2, help="photos per class (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", help="Fashion-MNIST folder (default: search)")
    parser.add_argument(
        "--split", choices=("test", "validation"), default="test", help="default: %(default)s"
    )
    args = parser.parse_args()

    dataset = load_dataset(args.data)
    test = dataset.test
    if args.split == "validation":
        from fmnist_batch.training.data import Split
        from fmnist_batch.training.prepare import TrainConfig, stratified_split

        _, val = stratified_split(dataset.train.labels, TrainConfig().val_size, TrainConfig().seed)
        test = Split(dataset.train.images[val], dataset.train.labels[val])
    rng = np.random.default_rng(args.seed)
    for label, name in enumerate(CLASS_NAMES):
        folder = Path(args.out, slug(name))
        folder.mkdir(parents=True, exist_ok=True)
        indices = rng.choice(np.flatnonzero(test.labels == label), size=args.per_class, replace=False)
        for index in indices:
            photo, (fmt, ext) = render_sample(test.images[index], rng, seed=int(index))
            save_photo(photo, folder / f"{args.split}-{index:05d}.{ext}", fmt, quality=QUALITY)
    print(f"wrote {len(CLASS_NAMES) * args.per_class} photos to {args.out}/")


if __name__ == "__main__":
    main()
