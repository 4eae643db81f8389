"""Draw a montage of on-model photos: each photo that took the person path, the 28x28 image the plain
conversion gives it (the whole person), the one the model now sees (the garment the person wears), each
with the answer classify gives, and the garment in colour that the garment reader reads.

python scripts/worn_figure.py [FOLDER] [-o OUT.png] [--limit 24]

FOLDER: any folder of photos (searched recursively); a photo's folder named after a class (loosely:
``t-shirt-top`` is T-shirt/top) marks answers right (green) or wrong (red). Without FOLDER the photos are
scikit-image's public-domain `astronaut` in a few framings, which is what docs/figures/worn.png shows:

python scripts/worn_figure.py -o docs/figures/worn.png

Pillow only (no matplotlib). Photos whose licence is not clear must not go into a committed figure.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from fmnist_batch.convert import (
    Conversion,
    ConversionSettings,
    convert_image,
    find_worn_garment,
    load_image,
    to_rgb,
)
from fmnist_batch.convert.source import Converted
from fmnist_batch.engines.predict import stack
from fmnist_batch.labels import CLASS_NAMES, IMAGE_EXTENSIONS
from fmnist_batch.model import combine
from fmnist_batch.model.runtime import Model, load_model

ROOT = Path(__file__).resolve().parent.parent
TILE = 168  # px: a photo's box and each 28x28 image's upscaled side (6x)
TEXT = 40  # px under each tile for its caption
PAD = 8
COLUMNS = 2  # photo groups side by side
WHITE, GREEN, RED, GREY = (255, 255, 255), (0, 128, 0), (200, 0, 0), (60, 60, 60)


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


CLASS_BY_KEY = {_key(name): i for i, name in enumerate(CLASS_NAMES)}


def astronaut_framings() -> dict[str, Image.Image]:
    """scikit-image's `astronaut` (NASA, public domain) as a shop might frame a model: on a white studio
    canvas, as shot, with drawn trousers below (a second garment), as a 60x80 catalog thumbnail."""
    from skimage import data

    photo = Image.fromarray(data.astronaut())
    studio = Image.new("RGB", (600, 700), WHITE)
    studio.paste(photo, (44, 94))
    trousers = Image.new("RGB", (600, 700), WHITE)
    trousers.paste(photo, (44, 20))
    left, right, top = 174, 444, 532
    middle = (left + right) // 2
    legs = [(left, top), (right, top), (right - 5, 700), (middle + 8, 700), (middle, top + 40)]
    legs += [(middle - 8, 700), (left + 5, 700)]
    ImageDraw.Draw(trousers).polygon(legs, fill=(20, 20, 20))
    thumbnail = ImageOps.mirror(studio).resize((60, 70), Image.Resampling.LANCZOS)
    return {
        "studio shot": studio,
        "as shot": photo,
        "dark trousers below": trousers,
        "60x70 thumbnail, mirrored": thumbnail,
    }


def folder_photos(folder: Path) -> dict[str, Path]:
    """Every image under ``folder``, by its path relative to it (decoded one at a time, later)."""
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    return {str(p.relative_to(folder)): p for p in paths}


def open_photo(photo: Path | Image.Image) -> Image.Image:
    """An RGB image, decoded as classify decodes a file."""
    return to_rgb(load_image(photo) if isinstance(photo, Path) else photo)


def answer(model: Model, conversion: Conversion) -> int:
    """The class classify answers for a conversion (its 28x28 image, view and colour picture)."""
    return int(np.argmax(combine.answer(model, *stack([Converted.of(conversion)])).probabilities[0]))


def readings(photos: dict[str, Path | Image.Image], model: Model) -> list[dict]:
    """The photos that take the person path, each with both 28x28 images and the model's answers."""
    # "auto", as classify runs: the figure shows what a user gets
    settings = ConversionSettings(**{**model.card.conversion_settings(), "background": "auto"})
    plain = ConversionSettings(**{**model.card.conversion_settings(), "background": "plain"})
    out = []
    for name, photo in photos.items():
        img = open_photo(photo)
        worn = convert_image(img, settings)
        if worn.view != "worn":
            continue
        before = convert_image(img, plain)
        parts = Path(name).parts
        out.append(
            {
                "name": name,
                "truth": CLASS_BY_KEY.get(_key(parts[-2])) if len(parts) > 1 else None,
                "region": find_worn_garment(img).region,
                "before": (before.image, answer(model, before)),
                "after": (worn.image, answer(model, worn)),
                "colour": worn.colour,
            }
        )
    return out


def spread(items: list[dict], limit: int) -> list[dict]:
    """At most ``limit`` items, evenly spaced, so every folder of a sorted tree shows."""
    if len(items) <= limit or limit < 2:
        return items[: max(limit, 1)]
    return [items[round(i * (len(items) - 1) / (limit - 1))] for i in range(limit)]


def tile(array: np.ndarray) -> Image.Image:
    return Image.fromarray(array).resize((TILE, TILE), Image.Resampling.NEAREST).convert("RGB")


def caption(draw: ImageDraw.ImageDraw, xy: tuple[int, int], lines: list[str], colour) -> None:
    font = ImageFont.load_default(size=13)
    for i, line in enumerate(lines):
        draw.text((xy[0], xy[1] + 16 * i), line, fill=colour, font=font)


def draw_group(canvas: Image.Image, x: int, y: int, item: dict) -> None:
    """One photo, its plain conversion and its worn conversion, side by side, captioned."""
    draw = ImageDraw.Draw(canvas)
    photo = ImageOps.contain(item["photo"], (TILE, TILE), Image.Resampling.LANCZOS)
    left, top = x + (TILE - photo.width) // 2, y + (TILE - photo.height) // 2
    canvas.paste(photo, (left, top))
    # a frame: a studio shot's white border is the page's colour
    draw.rectangle((left - 1, top - 1, left + photo.width, top + photo.height), outline=(200, 200, 200))
    caption(draw, (x, y + TILE + 4), [item["name"][:26]], GREY)
    columns = (("before", "plain"), ("after", f"worn, {item['region']}"))
    for k, (column, title) in enumerate(columns, start=1):
        image, label = item[column]
        left = x + k * (TILE + PAD)
        canvas.paste(tile(image), (left, y))
        colour = GREY if item["truth"] is None else (GREEN if label == item["truth"] else RED)
        caption(draw, (left, y + TILE + 4), [f"{title}: {CLASS_NAMES[label]}"], colour)
    if item.get("colour") is not None:  # what the garment reader sees, beside the worn 28x28 image
        left = x + 3 * (TILE + PAD)
        canvas.paste(
            Image.fromarray(item["colour"]).resize((TILE, TILE), Image.Resampling.LANCZOS), (left, y)
        )
        draw.rectangle((left - 1, y - 1, left + TILE, y + TILE), outline=(200, 200, 200))
        caption(draw, (left, y + TILE + 4), ["in colour, for the reader"], GREY)


def montage(items: list[dict], title: str) -> Image.Image:
    group = 4 * TILE + 4 * PAD
    rows = -(-len(items) // COLUMNS)
    header = 76
    canvas = Image.new("RGB", (COLUMNS * group + PAD, header + rows * (TILE + TEXT + PAD)), WHITE)
    caption(ImageDraw.Draw(canvas), (PAD, 8), title.splitlines(), (0, 0, 0))
    for i, item in enumerate(items):
        row, column = divmod(i, COLUMNS)
        draw_group(canvas, PAD + column * group, header + row * (TILE + TEXT + PAD), item)
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", nargs="?", type=Path, help="photos to look at (default: the astronaut)")
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "figures" / "worn.png")
    parser.add_argument("--limit", type=int, default=24, help="at most this many on-model photos")
    args = parser.parse_args()
    photos = folder_photos(args.folder) if args.folder else astronaut_framings()
    model = load_model(None, "auto", num_threads=1)
    worn = readings(photos, model)
    if not worn:
        raise SystemExit(f"none of the {len(photos)} photos shows a person")
    items = [item | {"photo": open_photo(photos[item["name"]])} for item in spread(worn, args.limit)]
    source = args.folder or "scikit-image's astronaut (NASA, public domain), framed by this script"
    title = (
        f"On-model photos: {source}.\n"
        "Beside each photo: the 28x28 image the plain conversion gives (the whole person) and the one "
        "the model\nsees through the person path ('worn, full': all worn below the chin; 'worn, upper': "
        "the torso garment),\neach with the answer classify gives, and the garment in colour that the "
        "garment reader also reads."
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    montage(items, title).save(args.output, optimize=True)
    print(f"{args.output}: {len(worn)} of {len(photos)} photos took the person path; {len(items)} drawn")


if __name__ == "__main__":
    main()
