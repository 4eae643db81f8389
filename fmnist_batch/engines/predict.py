"""Converted photos -> rows: predict the ones that converted, in one batch, and give the others their
error; every engine and the web app make their rows here."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from fmnist_batch.convert.settings import VIEW_CLASSES
from fmnist_batch.engines.workers import Converted
from fmnist_batch.labels import CLASS_NAMES, IMAGE_SIZE
from fmnist_batch.model.garment_reader import joined
from fmnist_batch.model.runtime import Model
from fmnist_batch.outputs.rows import make_row


def predict_where(
    model: Model,
    images: np.ndarray,
    ok: np.ndarray,
    views: np.ndarray,
    colours: Sequence[bytes | None] | None = None,
) -> np.ndarray:
    """Probabilities (N x 10 float32) for the images where `ok` is set (other rows stay 0); `images` is
    N x 784 or N x 28 x 28 uint8. The views the card gives its photo model (segmented photos, and worn
    ones when its pairing found so) go to it, the others to the main model; a view's answer is one of
    the classes it can show (convert.VIEW_CLASSES). Worn rows with their garment in colour (`colours`,
    Converted.colour) are also read by the card's garment reader, if it has one."""
    ok = np.asarray(ok, dtype=bool)
    probabilities = np.zeros((len(ok), len(CLASS_NAMES)), np.float32)
    if ok.any():
        chosen = np.asarray(images)[ok].reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
        probabilities[ok] = model.predict_proba(chosen, np.isin(np.asarray(views)[ok], model.photo_views))
    probabilities = within_view_classes(probabilities, np.asarray(views))
    return read_in_colour(model, probabilities, views, colours)


def read_in_colour(
    model: Model, probabilities: np.ndarray, views: np.ndarray, colours: Sequence[bytes | None] | None
) -> np.ndarray:
    """`probabilities` with each worn row that has its colour picture joined with the garment reader's
    answer (garment_reader.joined); the reader is loaded only when a batch has such a row."""
    if colours is None or not model.has_garment_reader:
        return probabilities
    rows = [
        i
        for i, colour in enumerate(colours)
        if colour is not None and views[i] == "worn" and probabilities[i].any()
    ]
    if not rows:
        return probabilities
    reader = model.garment_reader
    side = reader.side
    pictures = np.stack([np.frombuffer(colours[i], np.uint8).reshape(side, side, 3) for i in rows])
    probabilities[rows] = joined(probabilities[rows], reader.read(pictures), model.garment_weight)
    return probabilities


def within_view_classes(probabilities: np.ndarray, views: np.ndarray) -> np.ndarray:
    """Probabilities with the classes a row's view cannot show set to 0 and the rest scaled to sum to 1
    (rows left all 0, those that did not convert, stay so)."""
    for view, names in VIEW_CLASSES.items():
        rows = views == view
        if not rows.any():
            continue
        impossible = np.array([name not in names for name in CLASS_NAMES])
        kept = probabilities[rows]
        kept[:, impossible] = 0
        total = kept.sum(axis=1, keepdims=True)
        probabilities[rows] = np.divide(kept, total, out=np.zeros_like(kept), where=total > 0)
    return probabilities


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
