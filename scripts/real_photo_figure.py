"""Draw docs/figures/real_photos.png: real amateur photos next to the 28x28 images the model sees
through the old (plain, catalog) conversion and the new one (background "auto", which segments the
garment unless the border is plain, and sends segmented photos to the bundled photo model), with the
predicted class.

python scripts/real_photo_figure.py [--photos DIR] [--mapping CSV] [--per-class 2] [--seed 0]

The photos are a fixed seeded choice, ``--per-class`` from each folder that a Fashion-MNIST class fits,
of shared/real-photos/clothing-dataset-small/validation. Needs matplotlib (the ``[train]`` extra).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from fmnist_batch.convert import ConversionSettings, convert_image, load_image, to_rgb
from fmnist_batch.evaluate import read_mapping
from fmnist_batch.labels import CLASS_NAMES
from fmnist_batch.model.runtime import load_model

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT.parent / "shared" / "real-photos" / "clothing-dataset-small"
#: the conversion's background setting in each column; the rest is what the model's card records
BACKGROUNDS = {"old": "plain", "new": "auto"}
COLUMNS = 2  # photo groups side by side


def choose_photos(folder: Path, mapping: dict[str, frozenset[int]], per_class: int, seed: int) -> list[Path]:
    rng = random.Random(seed)
    chosen = []
    for name in sorted(mapping):
        files = sorted((folder / name).glob("*.jpg"))
        if mapping[name] and files:
            chosen += rng.sample(files, min(per_class, len(files)))
    return chosen


def draw(photos: list[Path], mapping: dict[str, frozenset[int]], out: Path) -> None:
    model = load_model(None, "auto", num_threads=1)
    conversions = {
        name: ConversionSettings(**{**model.card.conversion_settings(), "background": background})
        for name, background in BACKGROUNDS.items()
    }
    rows = -(-len(photos) // COLUMNS)
    figure = Figure(figsize=(3.3 * COLUMNS * 2, 2.0 * rows), dpi=100, layout="constrained")
    axes = figure.subplots(rows, 3 * COLUMNS, gridspec_kw={"width_ratios": [1.3, 1, 1] * COLUMNS})
    for ax in axes.ravel():
        ax.set_axis_off()
    for i, path in enumerate(photos):
        row, group = divmod(i, COLUMNS)
        folder = path.parent.name
        img = load_image(path)
        photo_ax = axes[row, 3 * group]
        photo_ax.imshow(np.asarray(to_rgb(img)))
        photo_ax.set_title(f"{folder}", fontsize=10)
        for k, (name, settings) in enumerate(conversions.items(), start=1):
            conversion = convert_image(img, settings)
            array = conversion.image
            label = int(np.argmax(model.predict_proba(array[None], np.array([conversion.segmented]))[0]))
            right = label in mapping[folder]
            ax = axes[row, 3 * group + k]
            ax.imshow(array, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            mark = ("right" if right else "wrong") + (", photo model" if conversion.segmented else "")
            ax.set_title(
                f"{name}: {CLASS_NAMES[label]}\n({mark})", fontsize=9, color="green" if right else "red"
            )
    figure.suptitle(
        "Real photos (clothing-dataset-small validation) and the 28x28 images the model sees\n"
        "old: the plain conversion; new: --background auto (segments unless the border is plain;\n"
        "segmented photos are classified by the bundled photo model)",
        fontsize=12,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", type=Path, default=PHOTOS / "validation")
    parser.add_argument("--mapping", type=Path, default=PHOTOS / "mapping.csv")
    parser.add_argument("--per-class", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "figures" / "real_photos.png")
    args = parser.parse_args()
    mapping = read_mapping(args.mapping)
    draw(choose_photos(args.photos, mapping, args.per_class, args.seed), mapping, args.output)
    print(args.output)


if __name__ == "__main__":
    main()
