"""The licensed photos the judge is fitted and measured on, and the picture the product makes of each.

Only these are read: clothing-dataset-small train/validation (CC0), the Fashion-MNIST TRAIN split (MIT;
read by fmnist_batch.training.data), scikit-image's bundled data images. Every photo reaches the judge as
the product's own file decode and squaring make it, so build and runtime see the same pixels.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fmnist_batch.convert.decode import load_image, load_image_bytes, to_rgb
from fmnist_batch.convert.garment import judge_picture
from fmnist_batch.convert.settings import ConversionSettings
from fmnist_batch.training.data import load_dataset

#: scikit-image's bundled images (skimage/data, no download), none of the 10 classes
SKIMAGE_NAMES = ("astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "colorwheel",
                 "grass", "gravel", "horse", "hubble_deep_field", "immunohistochemistry", "logo",
                 "microaneurysms", "moon", "page", "retina", "rocket", "text", "checkerboard",
                 "cell")  # fmt: skip
#: random crops per scikit-image photo: the photos are few, and a crop is as much a non-product as the whole
CROPS_PER_IMAGE = 8
#: Fashion-MNIST TRAIN images measured (never fitted on) as rendered catalog photos and as 28x28 files
RENDER_INDICES = range(2000, 2500)
RAW_INDICES = range(3500, 3700)


@dataclass
class PhotoSet:
    """Photos (file paths or encoded files in memory), whether each is in scope, and a tag per photo (its
    folder or source image)."""

    files: list[Path | bytes]
    in_scope: np.ndarray
    tags: np.ndarray


def picture(file: Path | bytes, side: int) -> np.ndarray:
    """What the product's judge reads of a file: the product's decode (JPEGs at reduced scale), RGB with
    transparency on white, made into the judge's picture (convert.garment.judge_picture)."""
    settings = ConversionSettings()
    img = load_image_bytes(file, settings) if isinstance(file, bytes) else load_image(file, settings)
    return judge_picture(to_rgb(img), side)


def pictures(files: Iterable[Path | bytes], side: int) -> np.ndarray:
    return np.stack([picture(f, side) for f in files])


def out_of_scope_folders(dataset: Path) -> set[str]:
    """The dataset's folders mapped to none of the 10 classes (mapping.csv: empty fmnist_labels)."""
    with open(dataset / "mapping.csv", newline="") as f:
        return {row["folder"] for row in csv.DictReader(f) if not row["fmnist_labels"].strip()}


def clothing_small(dataset: Path, split: str) -> PhotoSet:
    """clothing-dataset-small's `split` (train or validation): every photo, in scope unless its folder
    maps to no class (hat, shorts, skirt)."""
    out = out_of_scope_folders(dataset)
    paths = sorted(p for p in (dataset / split).glob("*/*") if p.is_file())
    folders = np.array([p.parent.name for p in paths])
    return PhotoSet(list(paths), ~np.isin(folders, sorted(out)), folders)


def _encoded(img: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **options)
    return buffer.getvalue()


def fmnist_renders(images: np.ndarray, seed: int = 2) -> PhotoSet:
    """Fashion-MNIST images rendered as catalog photos (scripts/synth.py) with varied background, tint,
    placement, size and noise, saved as JPEG like a shop's files."""
    from synth import CATALOG_GREY, WHITE, render_catalog_photo

    rng = np.random.default_rng(seed)
    files: list[Path | bytes] = []
    for array in images:
        tint = None if rng.random() < 0.5 else tuple(int(v) for v in rng.integers(0, 200, 3))
        photo = render_catalog_photo(
            array,
            size=int(rng.choice([200, 300, 400])),
            background=WHITE if rng.random() < 0.7 else CATALOG_GREY,
            tint=tint,
            offset=(float(rng.uniform(-0.1, 0.1)), float(rng.uniform(-0.1, 0.1))),
            garment_fraction=float(rng.uniform(0.5, 0.9)),
            noise=float(rng.choice([0.0, 0.0, 3.0])),
            seed=int(rng.integers(1 << 30)),
        )
        files.append(_encoded(photo, "JPEG", quality=90))
    return PhotoSet(files, np.ones(len(files), bool), np.full(len(files), "render"))


def sample_renders(images: np.ndarray, seed: int = 3) -> PhotoSet:
    """Fashion-MNIST images rendered in scripts/make_samples.py's catalog style (larger photos, its five
    tints, JPEG, PNG or WebP): the style of samples/ and of the catalog accuracy figure, encoded in memory."""
    from make_samples import QUALITY, render_sample

    rng = np.random.default_rng(seed)
    files: list[Path | bytes] = []
    for i, array in enumerate(images):
        photo, (fmt, _) = render_sample(array, rng, seed=i)
        files.append(_encoded(photo, fmt, **({"quality": QUALITY} if fmt in ("JPEG", "WEBP") else {})))
    return PhotoSet(files, np.ones(len(files), bool), np.full(len(files), "sample render"))


def fmnist_measured(data_dir: Path | None = None) -> dict[str, PhotoSet]:
    """The Fashion-MNIST TRAIN images the operating point is reported on: as catalog renders and as the
    dataset's own 28x28 files (which the product lets through without the judge)."""
    train = load_dataset(data_dir).train.images
    raw = [_encoded(Image.fromarray(train[i], "L"), "PNG") for i in RAW_INDICES]
    return {
        "renders": fmnist_renders(train[list(RENDER_INDICES)]),
        "28x28": PhotoSet(raw, np.ones(len(raw), bool), np.full(len(raw), "28x28")),
    }


def _skimage_photo(name: str) -> Image.Image:
    import skimage.data

    array = getattr(skimage.data, name)()
    if array.dtype != np.uint8:
        array = (255 * (array.astype(np.float64) / max(array.max(), 1))).astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[..., :3]
    return Image.fromarray(array)


def skimage_photos(seed: int = 0) -> PhotoSet:
    """scikit-image's bundled photos, each whole and in random crops (30-80% of each side), as PNG files;
    all out of scope, tagged by the source image so a split never puts one source on both sides."""
    import skimage.data

    rng = np.random.default_rng(seed)
    sources = [(name, _skimage_photo(name)) for name in SKIMAGE_NAMES]
    sources.append(("motorcycle", Image.fromarray(skimage.data.stereo_motorcycle()[0])))
    files: list[Path | bytes] = []
    tags = []
    for name, image in sources:
        crops = [image]
        width, height = image.size
        for _ in range(CROPS_PER_IMAGE):
            w, h = int(width * rng.uniform(0.3, 0.8)), int(height * rng.uniform(0.3, 0.8))
            x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            crops.append(image.crop((x, y, x + w, y + h)))
        files += [_encoded(crop, "PNG") for crop in crops]
        tags += [name] * len(crops)
    return PhotoSet(files, np.zeros(len(files), bool), np.array(tags))


def _subset(photos: PhotoSet, mask: np.ndarray) -> PhotoSet:
    files = [f for f, keep in zip(photos.files, mask, strict=True) if keep]
    return PhotoSet(files, photos.in_scope[mask], photos.tags[mask])


def split_by_source(photos: PhotoSet) -> tuple[PhotoSet, PhotoSet]:
    """Every other source image (sorted by name) for fitting, the rest for validation."""
    fitting = set(sorted(set(photos.tags))[::2])
    mask = np.array([t in fitting for t in photos.tags])
    return _subset(photos, mask), _subset(photos, ~mask)
