"""docs/figures/answers.png: a strip of real photos with classify's answer to each, `other` among them.

    python scripts/answers_figure.py ../shared/real-photos/clothing-dataset-small/validation \
        -o docs/figures/answers.png

The photos: the first (by name) of each folder of the CC0 clothing-dataset-small split given, two of the
rendered samples, and four of scikit-image's photos that show none of the 10 classes: a clock, coins, a
cup of coffee and a cat. Whatever classify says is drawn, right or wrong.
Needs the [train] extra (matplotlib).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from fmnist_batch import Classifier

REPO = Path(__file__).resolve().parent.parent
FOLDERS = ("shoes", "t-shirt", "pants", "dress", "outwear", "hat", "shorts")
SAMPLES = ("samples/bag", "samples/sandal")
PUBLIC_DOMAIN = ("clock", "coins", "coffee", "chelsea")
TILE = 200


def photos(split: Path) -> list[tuple[str, str | np.ndarray]]:
    """(caption, photo: its path, or the pixels of a photo scikit-image ships) of every photo the strip
    shows, in order; files are classified as classify reads them."""
    import skimage.data

    chosen: list[tuple[str, str | np.ndarray]] = []
    for name in FOLDERS:
        chosen.append((f"{name}/ (CC0)", str(sorted((split / name).iterdir())[0])))
    for folder in SAMPLES:
        chosen.append((f"{folder}/", str(sorted((REPO / folder).iterdir())[0])))
    for name in PUBLIC_DOMAIN:
        chosen.append((f"skimage {name}", getattr(skimage.data, name)()))
    return chosen


def shown(photo: str | np.ndarray) -> Image.Image:
    if isinstance(photo, str):
        with Image.open(photo) as image:
            return ImageOps.exif_transpose(image).convert("RGB")
    return Image.fromarray(photo).convert("RGB")


def answer_text(result: dict) -> str:
    if result["status"] == "other":
        return f"other\n{result['view']}\nin_scope {result['in_scope']:.2f}"
    # an image already in the dataset's 28x28 format has no in_scope: it is in scope
    scope = "28x28 image" if result["in_scope"] is None else f"in_scope {result['in_scope']:.2f}"
    return f"{result['label']} {result['score']:.0%}\n{result['view']}\n{scope}"


def draw(chosen: list[tuple[str, str | np.ndarray]], results: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = (len(chosen) + 1) // 2
    figure, axes = plt.subplots(2, columns, figsize=(1.9 * columns, 6.0))
    for axis, (caption, photo), result in zip(axes.flat, chosen, results, strict=False):
        tile = ImageOps.pad(shown(photo), (TILE, TILE), color=(255, 255, 255))
        axis.imshow(np.asarray(tile))
        colour = "#c92a2a" if result["status"] == "other" else "#1c7ed6"
        axis.set_title(answer_text(result), fontsize=9, color=colour, fontweight="bold")
        axis.set_xlabel(caption, fontsize=8)
        axis.set_xticks([])
        axis.set_yticks([])
    for axis in list(axes.flat)[len(chosen) :]:
        axis.axis("off")
    figure.suptitle("fmnist-batch classify: each photo's answer (blue: a class, red: other)", fontsize=11)
    figure.tight_layout()
    figure.savefig(out, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("split", type=Path, help="a split of clothing-dataset-small (one folder a class)")
    parser.add_argument("-o", "--out", type=Path, default=REPO / "docs" / "figures" / "answers.png")
    args = parser.parse_args()
    chosen = photos(args.split)
    results = Classifier()([photo for _, photo in chosen])
    draw(chosen, results, args.out)
    for (caption, _), result in zip(chosen, results, strict=True):
        print(f"{caption}: {answer_text(result).replace(chr(10), ', ')}")


if __name__ == "__main__":
    main()
