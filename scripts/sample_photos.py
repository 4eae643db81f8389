"""A seeded random sample of a labelled photo folder (one subfolder per class), as symlinks.

    DATA=../shared/real-photos/clothing-dataset-small
    python scripts/sample_photos.py $DATA/train /tmp/train-a --per-folder 50 --seed 1
    fmnist-batch evaluate /tmp/train-a --mapping $DATA/mapping.csv

The README's check that the real-photo conversion is not tuned to one folder evaluates two such samples
of clothing-dataset-small's train split (seeds 1 and 2) beside its validation split.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from fmnist_batch.labels import IMAGE_EXTENSIONS


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source", type=Path, help="labelled folder: one subfolder of photos per class")
    parser.add_argument("out", type=Path, help="new folder for the sample (must not exist)")
    parser.add_argument("--per-folder", type=int, default=50, help="photos per class (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="default: %(default)s")
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"{args.out} exists; choose a new folder")
    rng = random.Random(args.seed)
    for folder in sorted(p for p in args.source.iterdir() if p.is_dir()):
        photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        chosen = rng.sample(photos, min(args.per_folder, len(photos)))
        (args.out / folder.name).mkdir(parents=True)
        for photo in chosen:
            (args.out / folder.name / photo.name).symlink_to(photo.resolve())
        print(f"{folder.name}: {len(chosen)} of {len(photos)}")


if __name__ == "__main__":
    main()
