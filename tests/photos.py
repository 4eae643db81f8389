"""Test helper (not a test module): catalog photos rendered from the Fashion-MNIST test set.

The rendering lives in fmnist_batch.synth (the sample folder and the benchmark use it too).
"""

from __future__ import annotations

import functools
import io
import zlib

import numpy as np
from PIL import Image

from fmnist_batch.data import DEBIAN_DIR, DatasetError, load_dataset
from fmnist_batch.synth import CATALOG_GREY, WHITE, render_catalog_photo, save_photo

__all__ = [
    "CATALOG_GREY",
    "WHITE",
    "load_fmnist_test_sample",
    "png_claiming_size",
    "render_catalog_photo",
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
