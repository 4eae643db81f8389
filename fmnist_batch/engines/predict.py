"""Converted photos -> rows: the models answer the ones that converted, in one batch (model/combine.py),
and the others get their error; every engine and the web app make their rows here."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from fmnist_batch.convert.source import Converted
from fmnist_batch.labels import IMAGE_SIZE
from fmnist_batch.model.combine import answer
from fmnist_batch.model.runtime import Model
from fmnist_batch.outputs.rows import Scope, make_row

if TYPE_CHECKING:
    from fmnist_batch.options import ClassifyOptions


class Batch(NamedTuple):
    """A batch of conversions as the models take it (model.combine.answer's arguments)."""

    images: np.ndarray  # N x 784 uint8
    ok: np.ndarray
    views: np.ndarray
    colours: list[bytes | None]
    in_scope: list[float | None]
    logits: list[np.ndarray | None]


def stack(converted: Sequence[Converted]) -> Batch:
    """A batch of conversions, stacked."""
    images = np.zeros((len(converted), IMAGE_SIZE * IMAGE_SIZE), np.uint8)
    for i, conversion in enumerate(converted):
        if conversion.data is not None:
            images[i] = np.frombuffer(conversion.data, np.uint8)
    ok = np.array([c.data is not None for c in converted], dtype=bool)
    views = np.array([c.view for c in converted], dtype=object)
    colours, in_scope = [c.colour for c in converted], [c.in_scope for c in converted]
    return Batch(images, ok, views, colours, in_scope, [logits_of(c.logits) for c in converted])


def logits_of(data: bytes | None) -> np.ndarray | None:
    """A conversion's logits (Converted.logits: 10 float32, or nothing)."""
    return np.frombuffer(data, np.float32) if data else None


def scope_of(in_scope: float, below: float | None) -> Scope | None:
    """A row's Scope: None without a judge (no in_scope column), else what it said (NaN: not read)."""
    if below is None:
        return None
    return Scope(None if np.isnan(in_scope) else float(in_scope), below)


def predicted_rows(
    model: Model, options: ClassifyOptions, displays: Sequence[str], converted: Sequence[Converted]
) -> Iterator[dict]:
    """One row per file, in order: answered if it converted, its error otherwise."""
    batch = stack(converted)
    below, min_confidence = model.other_below(options), model.min_confidence(options)
    answers = answer(model, *batch)
    rows = zip(displays, converted, *answers, batch.ok, strict=True)
    for display, conversion, probabilities, in_scope, blank, good in rows:
        yield make_row(
            display,
            probabilities if good else None,
            conversion.error,
            top_k=options.top_k,
            min_confidence=min_confidence,
            view=conversion.view,
            region=conversion.region,
            scope=scope_of(in_scope, below),
            blank=bool(blank),
        )
