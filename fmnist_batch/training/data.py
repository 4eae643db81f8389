"""Loading Fashion-MNIST: IDX files (gzipped or not) or Kaggle's CSV pair, from a known set of places.

Search order (first hit wins): an explicit folder, ``$FMNIST_DATA``, Debian's ``dataset-fashion-mnist``
package, the Keras cache. Downloading happens only when asked for (``download=True``), through Keras.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fmnist_batch.labels import IMAGE_SIZE, NUM_CLASSES
from fmnist_batch.model.card import file_sha256

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
KERAS_CACHE_DIR = Path("~/.keras/datasets/fashion-mnist")
ENV_VAR = "FMNIST_DATA"

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CSV_FILES = {"train": "fashion-mnist_train.csv", "test": "fashion-mnist_test.csv"}
EXPECTED_COUNTS = {"train": 60_000, "test": 10_000}

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049

HOW_TO_GET = (
    "Install it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu), point --data or "
    f"${ENV_VAR} at a folder holding the four IDX files (gzipped or not) or Kaggle's "
    f"{CSV_FILES['train']} and {CSV_FILES['test']}, or pass --download to fetch it through Keras."
)


class DatasetError(Exception):
    """The dataset is missing or broken; the message says where we looked and how to get it."""


@dataclass
class Split:
    """One split of the dataset: uint8 images (N, 28, 28), uint8 labels (N,) and the files read."""

    images: np.ndarray
    labels: np.ndarray
    files: list[Path] = field(default_factory=list)


@dataclass
class Dataset:
    train: Split
    test: Split
    source: Path

    def file_hashes(self) -> dict[str, str]:
        """sha256 of every file the dataset was read from, keyed by file name (recorded in model cards)."""
        return {p.name: file_sha256(p) for p in self.train.files + self.test.files}


def candidate_dirs(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Folders to look in, in order. An explicit folder is the only candidate when given."""
    if data_dir is not None:
        return [Path(data_dir).expanduser()]
    dirs = []
    if os.environ.get(ENV_VAR):
        dirs.append(Path(os.environ[ENV_VAR]).expanduser())
    dirs += [DEBIAN_DIR, KERAS_CACHE_DIR.expanduser()]
    return dirs


def _open_maybe_gzip(path: Path) -> bytes:
    with open(path, "rb") as f:
        head = f.read(2)
    opener = gzip.open if head == b"\x1f\x8b" else open
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as e:
        raise DatasetError(f"{path}: cannot read ({e})") from e


def parse_idx_images(raw: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse an IDX3 image file (magic 2051) into uint8 (N, rows, cols), checking header and length."""
    if len(raw) < 16:
        raise DatasetError(f"{source}: too short for an IDX image file ({len(raw)} bytes)")
    magic, count, rows, cols = np.frombuffer(raw[:16], dtype=">u4")
    if magic != IMAGES_MAGIC:
        raise DatasetError(f"{source}: not an IDX image file (magic {magic}, expected {IMAGES_MAGIC})")
    if (rows, cols) != (IMAGE_SIZE, IMAGE_SIZE):
        raise DatasetError(f"{source}: images are {rows}x{cols}, expected {IMAGE_SIZE}x{IMAGE_SIZE}")
    expected = 16 + int(count) * int(rows) * int(cols)
    if len(raw) != expected:
        raise DatasetError(f"{source}: {len(raw)} bytes, expected {expected} for {count} images (truncated?)")
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(int(count), int(rows), int(cols))


def parse_idx_labels(raw: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse an IDX1 label file (magic 2049) into uint8 (N,), checking header, length and range."""
    if len(raw) < 8:
        raise DatasetError(f"{source}: too short for an IDX label file ({len(raw)} bytes)")
    magic, count = np.frombuffer(raw[:8], dtype=">u4")
    if magic != LABELS_MAGIC:
        raise DatasetError(f"{source}: not an IDX label file (magic {magic}, expected {LABELS_MAGIC})")
    if len(raw) != 8 + int(count):
        raise DatasetError(f"{source}: {len(raw)} bytes, expected {8 + int(count)} for {count} labels")
    labels = np.frombuffer(raw, dtype=np.uint8, offset=8)
    if labels.size and labels.max() >= NUM_CLASSES:
        raise DatasetError(f"{source}: label {labels.max()} out of range 0..{NUM_CLASSES - 1}")
    return labels


def parse_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse Kaggle's CSV layout: a header, then label,pixel1..pixel784 per row."""
    try:
        table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: not a Fashion-MNIST CSV ({e})") from e
    if table.shape[1] != 1 + IMAGE_SIZE * IMAGE_SIZE:
        raise DatasetError(f"{path}: {table.shape[1]} columns, expected {1 + IMAGE_SIZE * IMAGE_SIZE}")
    labels, pixels = table[:, 0], table[:, 1:]
    if labels.min() < 0 or labels.max() >= NUM_CLASSES or pixels.min() < 0 or pixels.max() > 255:
        raise DatasetError(f"{path}: labels or pixel values out of range")
    return pixels.astype(np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE), labels.astype(np.uint8)


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx")):
        if (folder / name).is_file():
            return folder / name
    return None


def _load_split(folder: Path, split: str, check_count: bool) -> Split | None:
    """Load one split from a folder, IDX first then CSV; None when the folder has neither."""
    images_stem, labels_stem = IDX_FILES[split]
    images_path, labels_path = _find(folder, images_stem), _find(folder, labels_stem)
    if images_path and labels_path:
        images = parse_idx_images(_open_maybe_gzip(images_path), str(images_path))
        labels = parse_idx_labels(_open_maybe_gzip(labels_path), str(labels_path))
        files = [images_path, labels_path]
    elif (folder / CSV_FILES[split]).is_file():
        images, labels = parse_csv(folder / CSV_FILES[split])
        files = [folder / CSV_FILES[split]]
    else:
        return None
    if len(images) != len(labels):
        raise DatasetError(f"{folder}: {len(images)} {split} images but {len(labels)} labels")
    if check_count and len(images) != EXPECTED_COUNTS[split]:
        raise DatasetError(f"{folder}: {len(images)} {split} images, expected {EXPECTED_COUNTS[split]}")
    return Split(images, labels, files)


def load_dataset(
    data_dir: str | os.PathLike | None = None, *, download: bool = False, check_counts: bool = True
) -> Dataset:
    """Load both splits from the first folder that holds them; raise DatasetError saying where we looked."""
    looked = []
    for folder in candidate_dirs(data_dir):
        looked.append(str(folder))
        if not folder.is_dir():
            continue
        train = _load_split(folder, "train", check_counts)
        test = _load_split(folder, "test", check_counts)
        if train and test:
            return Dataset(train, test, folder)
    if download:
        return _download()
    raise DatasetError("Fashion-MNIST not found. Looked in: " + ", ".join(looked) + ". " + HOW_TO_GET)


def _download() -> Dataset:
    try:
        import keras
    except ImportError as e:
        raise DatasetError("--download needs Keras: pip install 'fmnist-batch[train]'") from e
    try:
        keras.datasets.fashion_mnist.load_data()
    except Exception as e:  # network errors come in many types
        raise DatasetError(f"download failed ({e}). {HOW_TO_GET}") from e
    return load_dataset(KERAS_CACHE_DIR.expanduser())
