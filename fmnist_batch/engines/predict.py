"""Converted photos -> rows: the models answer the ones that converted, in one batch (model/combine.py),
and the others get their error; every engine and the web app make their rows here."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from fmnist_batch.engines.workers import Converted
from fmnist_batch.labels import IMAGE_SIZE
from fmnist_batch.model.combine import predict_where
from fmnist_batch.model.runtime import Model
from fmnist_batch.outputs.rows import make_row


def stack(converted: Sequence[Converted]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[bytes | None]]:
    """(images N x 784 uint8, ok, views, colours) of a batch of conversions."""
    images = np.zeros((len(converted), IMAGE_SIZE * IMAGE_SIZE), np.uint8)
    for i, conversion in enumerate(converted):
        if conversion.data is not None:
            images[i] = np.frombuffer(conversion.data, np.uint8)
    ok = np.array([c.data is not None for c in converted], dtype=bool)
    views = np.array([c.view for c in converted], dtype=object)
    return images, ok, views, [c.colour for c in converted]


def predicted_rows(
    model: Model, displays: Sequence[str], converted: Sequence[Converted], top_k: int, min_confidence: float
) -> Iterator[dict]:
    """One row per file, in order: predicted if it converted, its error otherwise."""
    images, ok, views, colours = stack(converted)
    probabilities = predict_where(model, images, ok, views, colours)
    for display, conversion, probs, good in zip(displays, converted, probabilities, ok, strict=True):
        probs = probs if good else None
        yield make_row(
            display,
            probs,
            conversion.error,
            top_k=top_k,
            min_confidence=min_confidence,
            view=conversion.view,
            region=conversion.region,
        )
