"""The garment reader: a colour model for worn garments, and how its answer joins the 28x28 model's.

A Fashion-MNIST model reads a garment by its outline, and a worn garment's outline is the wearer's. The
reader (models/garment, built by scripts/build_garment_model.py) sees the same garment in colour at
224x224 with an ImageNet backbone, so buttons, collars, zips and knit count. Its answer is over the
classes a worn garment can be (convert.VIEW_CLASSES["worn"]); the row's answer is the weighted
geometric mean of both models' probabilities, so either can overrule the other only when it is sure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fmnist_batch.labels import CLASS_NAMES
from fmnist_batch.model import litert


class GarmentReader(litert.PictureModel):
    """A loaded reader: `read(uint8 (N, S, S, 3)) -> float32 (N, 10)`, 0 for the classes it cannot give."""

    def __init__(self, path: Path, classes: tuple[str, ...], num_threads: int | None = None):
        super().__init__(path, num_threads)
        self._columns = [CLASS_NAMES.index(name) for name in classes]

    def read(self, pictures: np.ndarray) -> np.ndarray:
        out = np.zeros((len(pictures), len(CLASS_NAMES)), np.float32)
        for i, answer in enumerate(self.each(pictures)):
            out[i, self._columns] = answer
        return out


def joined(model_probabilities: np.ndarray, reader_probabilities: np.ndarray, weight: float) -> np.ndarray:
    """Rows of the two models' probabilities joined as p_model^(1-weight) * p_reader^weight, renormalised
    over the classes both allow (a class either rules out stays 0)."""
    allowed = (model_probabilities > 0) & (reader_probabilities > 0)
    tiny = np.finfo(np.float32).tiny
    log = (1 - weight) * np.log(np.maximum(model_probabilities, tiny)) + weight * np.log(
        np.maximum(reader_probabilities, tiny)
    )
    log = np.where(allowed, log, -np.inf)
    top = np.max(log, axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    joint = np.exp(log - top)
    total = joint.sum(axis=1, keepdims=True)
    # a row where the two share no class keeps the 28x28 model's answer
    return np.where(total > 0, joint / np.where(total > 0, total, 1), model_probabilities).astype(np.float32)
