"""The dataset reference: does a catalog shot's garment read as a Fashion-MNIST image?

The scope judge reads colour and texture. A Fashion-MNIST image enlarged into a product photo (a grey or
tinted 28 px silhouette) has neither, and the judge answers such photos `other` more often than real
garments. Their 28x28 images are the dataset's own, though: the main network answers them as it answers
the images it was trained on. The reference (models/reference/, built by
scripts/build_dataset_reference.py) holds the main network's logits for its training images, each scaled
to length 1; a catalog shot whose own scaled logits lie within the card's `radius` of one of them reads as
a dataset image, and like a 28x28 grey file it is never answered other (model/combine.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from fmnist_batch.model.card import ModelCard

#: rows compared at once: a block of distances is CHUNK x the reference's size (about 13 MB of float32)
CHUNK = 64


def unit_rows(logits: np.ndarray) -> np.ndarray:
    """Each row of `logits` scaled to length 1 (float32): the reference compares directions only."""
    logits = np.asarray(logits, dtype=np.float32)
    norms = np.linalg.norm(logits, axis=1, keepdims=True)
    return logits / np.maximum(norms, np.float32(1e-12))


class DatasetReference:
    """A loaded reference: `nearest(logits)` is each row's distance to the closest training image's."""

    def __init__(self, path: str | os.PathLike, radius: float):
        points = np.load(path, allow_pickle=False)
        if points.ndim != 2 or not len(points):
            raise ValueError(f"{path} holds no reference points (shape {points.shape})")
        self._points = np.ascontiguousarray(points, dtype=np.float32)
        self.radius = float(radius)

    def nearest(self, logits: np.ndarray) -> np.ndarray:
        """Euclidean distance from each row's unit logits to the nearest reference point (N,)."""
        rows = unit_rows(logits)
        best = np.empty(len(rows), np.float32)
        for start in range(0, len(rows), CHUNK):
            similarity = rows[start : start + CHUNK] @ self._points.T
            # both unit length: |a - b|^2 = 2 - 2 a.b
            best[start : start + CHUNK] = np.sqrt(np.maximum(2 - 2 * similarity.max(axis=1), 0))
        return best

    def reads_as_dataset(self, logits: np.ndarray) -> np.ndarray:
        """Which rows of logits lie within the radius of a training image's (bool, N)."""
        return self.nearest(logits) <= self.radius


def load_reference(card: ModelCard, path: Path) -> DatasetReference:
    """The reference `card` declares, read from `path` (verified by the registry), after checking it was
    made with one of the card's own network files."""
    from fmnist_batch.model.card import ModelError

    entry = card.dataset_reference or {}
    networks = {f.get("sha256") for f in card.files.values()}
    if entry.get("network_sha256") not in networks:
        raise ModelError(
            f"model card {card.path}: its dataset reference was made with another network than the "
            "card's; rebuild it (scripts/build_dataset_reference.py) or remove the entry"
        )
    try:
        return DatasetReference(path, entry["radius"])
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot load {path}: {e}") from None
