"""Test helper (not a test module): catalog photos rendered from the Fashion-MNIST test set, photos of a
garment on clutter, and the small images and comparisons the conversion's tests share.

The rendering lives in synth (the sample folder and the benchmark use it too).
"""

from __future__ import annotations

import functools
import io
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from synth import CATALOG_GREY, WHITE, render_catalog_photo, save_photo

from fmnist_batch.training.data import DEBIAN_DIR, DatasetError, load_dataset

__all__ = [
    "CATALOG_GREY",
    "NAVY",
    "WHITE",
    "cluttered_background",
    "correlation",
    "first_row",
    "garment_array",
    "garment_silhouette",
    "load_fmnist_test_sample",
    "photo_with_box",
    "png_claiming_size",
    "render_catalog_photo",
    "render_garment_photo",
    "save_photo",
]


@functools.cache
def _read_test_set() -> tuple[np.ndarray, np.ndarray] | None:
    try:
        test = load_dataset(DEBIAN_DIR).test
    except DatasetError:
        return None
    return test.images, test.labels


def load_fmnist_test_sample(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """``n`` random images (uint8, n x 28 x 28) and labels from the official test set, or None when the
    Debian package ``dataset-fashion-mnist`` is not installed (callers skip)."""
    test_set = _read_test_set()
    if test_set is None:
        return None
    images, labels = test_set
    index = np.random.default_rng(seed).choice(len(images), size=n, replace=False)
    return images[index], labels[index]


def png_claiming_size(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose IHDR is patched (with a correct CRC) to claim width x height."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1), 0).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    return bytes(data)


# --- photos that are not catalog shots ---------------------------------------------------------------

# A T-shirt outline in fractions of its box: neck, shoulder, sleeve, armpit, hem, and back up.
_TSHIRT = [
    (0.38, 0.0), (0.18, 0.06), (0.0, 0.3), (0.14, 0.42), (0.24, 0.32), (0.24, 1.0),
    (0.76, 1.0), (0.76, 0.32), (0.86, 0.42), (1.0, 0.3), (0.82, 0.06), (0.62, 0.0), (0.5, 0.1),
]  # fmt: skip


def garment_silhouette(size: int) -> np.ndarray:
    """A bool size x size mask of a T-shirt filling its box (taller than its sleeves are wide)."""
    img = Image.new("L", (size, size), 0)
    ImageDraw.Draw(img).polygon([(x * (size - 1), y * (size - 1)) for x, y in _TSHIRT], fill=255)
    return np.asarray(img) > 0


def cluttered_background(
    size: int, seed: int = 0, clear: tuple[int, int, int, int] | None = None
) -> np.ndarray:
    """A size x size x 3 float floor: wood-like stripes under scattered objects in browns, greens, reds
    and greys (never navy, the garment's colour), like the floors and beds of amateur photos. No object
    overlaps the box ``clear`` (left, top, right, bottom), where the garment will lie."""
    rng = np.random.default_rng(seed)
    y = np.arange(size, dtype=np.float32)[:, None]
    grain = 150 + 25 * np.sin(y / 5 + rng.uniform(0, 6)) + rng.normal(0, 6, (size, size))
    floor = np.stack([grain, grain * 0.8, grain * 0.55], axis=-1)
    img = Image.fromarray(np.clip(floor, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    palette = [(120, 80, 40), (70, 110, 60), (170, 170, 160), (200, 180, 120), (90, 90, 90), (180, 60, 40)]
    for _ in range(25):
        x0, y0 = rng.integers(0, size, 2)
        w, h = rng.integers(size // 16, size // 6, 2)
        if clear and x0 < clear[2] and x0 + w > clear[0] and y0 < clear[3] and y0 + h > clear[1]:
            continue
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x0, y0, x0 + w, y0 + h), fill=palette[rng.integers(len(palette))])
    return np.asarray(img, dtype=np.float32)


def render_garment_photo(
    *,
    size: int = 320,
    background: str = "clutter",
    garment_fraction: float = 0.6,
    offset: tuple[float, float] = (0.0, 0.0),
    colour: tuple[int, int, int] = (30, 40, 90),
    shadow: bool = False,
    light_gradient: float = 0.0,
    seed: int = 0,
) -> tuple[Image.Image, np.ndarray]:
    """A photo of a T-shirt with folds and its true silhouette (bool, photo size).

    ``background`` is "clutter" (cluttered_background, objects around but not on the garment's box) or
    "plain" (#fdfdfd); the garment's box spans
    ``garment_fraction`` of the photo, shifted by ``offset`` (fractions of the size); ``shadow`` casts a
    soft shadow down and right of it; ``light_gradient`` darkens the whole scene from left (full light)
    to right (1 - light_gradient of it), as a window light does.
    """
    box = round(size * garment_fraction)
    free = size - box
    left = min(free, max(0, round(free / 2 + offset[0] * size)))
    top = min(free, max(0, round(free / 2 + offset[1] * size)))
    if background == "plain":
        scene = np.full((size, size, 3), CATALOG_GREY, dtype=np.float32)
    else:
        gap = size // 40
        scene = cluttered_background(
            size, seed, clear=(left - gap, top - gap, left + box + gap, top + box + gap)
        )
    silhouette = np.zeros((size, size), dtype=bool)
    silhouette[top : top + box, left : left + box] = garment_silhouette(box)
    if shadow:
        cast = np.roll(silhouette, (box // 12, box // 12), axis=(0, 1)).astype(np.float32)
        cast = np.asarray(Image.fromarray(cast * 255).convert("L").filter(ImageFilter.GaussianBlur(box / 40)))
        scene *= 1 - 0.45 * (cast[..., None] / 255)
    y, x = np.mgrid[0:size, 0:size]
    folds = 1 + 0.12 * np.sin((x + 2 * y) / (box / 10))  # folds shade the garment, not its outline
    scene[silhouette] = np.asarray(colour, dtype=np.float32) * folds[silhouette][:, None]
    scene *= (1 - light_gradient * x / (size - 1))[..., None]
    return Image.fromarray(np.clip(np.rint(scene), 0, 255).astype(np.uint8)), silhouette


# --- small images and comparisons (test_steps, test_decode, test_segment, test_conversion) -----------

NAVY = (30, 40, 90)


def garment_array() -> np.ndarray:
    """A 28x28 dataset-like garment: bright, textured, taller than wide, black background."""
    array = np.zeros((28, 28), dtype=np.uint8)
    array[:, 7:21] = 120
    array[4:24, 9:19] = 230
    array[::3, 7:21] = 60  # stripes, so orientation and scale errors show
    return array


def photo_with_box(size=(100, 80), box=(10, 20, 40, 60), background=WHITE, colour=(200, 30, 30)):
    img = Image.new("RGB", size, background)
    ImageDraw.Draw(img).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=colour)
    return img


def first_row(img: Image.Image) -> list:
    return [img.getpixel((x, 0)) for x in range(img.width)]


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(np.float64).ravel(), b.astype(np.float64).ravel())[0, 1])


#: the CC0 amateur photos the maintainers keep beside the repository (CI gets a copy of shared/ too)
REAL_PHOTOS = Path(__file__).resolve().parent.parent.parent / "shared" / "real-photos"


def cc0_photos(split: str, n: int, seed: int = 0) -> list[Path]:
    """n photos of clothing-dataset-small (CC0), drawn at random from `split`; the test is skipped
    with the reason where the folder is absent."""
    import random

    import pytest

    folder = REAL_PHOTOS / "clothing-dataset-small" / split
    if not folder.is_dir():
        pytest.skip(f"the CC0 photos are not at {folder}")
    photos = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return random.Random(seed).sample(photos, n)
