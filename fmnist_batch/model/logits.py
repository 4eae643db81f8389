"""Logits to what a row says: softmax with the card's temperature, the top probability, and flip
averaging (an image's logits averaged with its mirror image's when it is unsure). Retrain and the runtime
both compute them here, so the card's figures are the runtime's."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: Confidence gates tried for flip averaging, in order (retrain takes the first that is as accurate on
#: validation as mirroring every image): the mirror image is classified only when the image alone is less
#: sure than this, which the dataset's easy majority never is.
FLIP_GATES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Probabilities (float64) of rows of logits divided by `temperature` (the card's calibration)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def top_probability(logits: np.ndarray) -> np.ndarray:
    """The largest softmax probability of each row of logits (temperature 1)."""
    return softmax(logits).max(axis=-1)


def flip_averaged(
    logits: np.ndarray, mirrored: Callable[[np.ndarray], np.ndarray], below: float | None
) -> np.ndarray:
    """`logits` of single views, with each image whose top probability is below `below` (every image when
    None) replaced by the mean of its logits and its mirror image's; `mirrored(indices)` returns those.
    Retrain and the runtime both compute flip averaging here, so the card's figures are the runtime's."""
    todo = np.arange(len(logits)) if below is None else np.flatnonzero(top_probability(logits) < below)
    out = logits.copy()
    if len(todo):
        out[todo] = (logits[todo] + mirrored(todo)) / 2
    return out
