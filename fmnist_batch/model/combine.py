"""Where the models' answers meet: one batch of converted photos -> each row's probabilities and in_scope.

The main network reads catalog shots, the photo network the views its card gives it (segmented, and worn
when its pairing found so), a view's answer is kept to the classes it can show (labels.VIEW_CLASSES), and
a worn garment's colour picture is also read by the garment reader, whose answer is joined with the
network's (garment_reader.joined). in_scope is the scope judge's, which the conversion already ran on
each photo (convert/scope.py, which leaves dataset images unjudged): a photo that shows nothing at all
gets 0. Engines and the web app call `answer` and never see how.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from fmnist_batch.labels import CLASS_NAMES, IMAGE_SIZE, VIEW_CLASSES
from fmnist_batch.model.garment_reader import joined
from fmnist_batch.model.runtime import Model


class Answers(NamedTuple):
    """A batch's answers: N x 10 calibrated probabilities (rows that did not convert stay 0), N in_scope
    probabilities (NaN where the judge did not read the photo: no judge in use, a dataset image, no
    picture), and which photos show nothing at all (see shows_nothing)."""

    probabilities: np.ndarray
    in_scope: np.ndarray
    blank: np.ndarray


def answer(
    model: Model,
    images: np.ndarray,
    ok: np.ndarray,
    views: np.ndarray,
    colours: Sequence[bytes | None] | None = None,
    in_scope: Sequence[float | None] | None = None,
    logits: Sequence[np.ndarray | None] | None = None,
) -> Answers:
    """Every model's answer for a batch (see predict_where and judge_scope); `in_scope` and `logits`:
    each photo's Converted.in_scope and Converted.logits."""
    blank = shows_nothing(images, ok)
    probabilities = predict_where(model, images, ok, views, colours, logits)
    return Answers(probabilities, judge_scope(model, ok & ~blank, in_scope, blank), blank)


def shows_nothing(images: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """The converted photos whose 28x28 image is one flat value: a blank or uniform photo (a white page,
    a 1x1 pixel, a skin-coloured fill) trims to nothing, and no garment converts so. The models would still
    name a class for it; its row says it is not one (uncertain, or other where a judge runs)."""
    flat = np.asarray(images).reshape(len(ok), -1)
    return np.asarray(ok, dtype=bool) & (flat.max(axis=1, initial=0) == flat.min(axis=1, initial=0))


def judge_scope(
    model: Model, ok: np.ndarray, judged: Sequence[float | None] | None, blank: np.ndarray
) -> np.ndarray:
    """in_scope of each converted photo as the conversion gave it (Converted.in_scope: the judge's or the
    dataset reference's), 0 for one that shows nothing, NaN for the others (a 28x28 dataset image, a row
    that did not convert) and for every row when the model runs no judge."""
    in_scope = np.full(len(ok), np.nan, np.float32)
    if not model.scope_side:
        return in_scope
    in_scope[blank] = 0.0
    for i, value in enumerate(judged or ()):
        if value is not None and ok[i]:
            in_scope[i] = value
    return in_scope


def predict_where(
    model: Model,
    images: np.ndarray,
    ok: np.ndarray,
    views: np.ndarray,
    colours: Sequence[bytes | None] | None = None,
    logits: Sequence[np.ndarray | None] | None = None,
) -> np.ndarray:
    """Probabilities (N x 10 float32) for the images where `ok` is set (other rows stay 0); `images` is
    N x 784 or N x 28 x 28 uint8. The views the card gives its photo model (segmented photos, and worn
    ones when its pairing found so) go to it, the others to the main model, which reuses the logits
    the conversion computed (`logits`, Converted.logits) where it has them; a view's answer is one of
    the classes it can show (convert.VIEW_CLASSES). Worn rows with their garment in colour (`colours`,
    Converted.colour) are also read by the card's garment reader, if it has one."""
    ok = np.asarray(ok, dtype=bool)
    probabilities = np.zeros((len(ok), len(CLASS_NAMES)), np.float32)
    if ok.any():
        chosen = np.asarray(images)[ok].reshape(-1, IMAGE_SIZE, IMAGE_SIZE)
        to_photo_model = np.isin(np.asarray(views)[ok], model.photo_views)
        known = None if logits is None else [logits[i] for i in np.flatnonzero(ok)]
        probabilities[ok] = model.predict_proba(chosen, to_photo_model, known)
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
