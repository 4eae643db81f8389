"""The classify job from Python in one call: rows as an iterator, or a pandas DataFrame.

Both load the model for that call; to classify many times, or photos already in memory, make a
`fmnist_batch.Classifier` once and reuse it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from fmnist_batch.labels import IMAGE_EXTENSIONS

Inputs = str | os.PathLike | Iterable[str | os.PathLike]


def classify(
    inputs: Inputs, *, recursive: bool = True, extensions: Sequence[str] = IMAGE_EXTENSIONS, **options: Any
) -> Iterator[dict]:
    """Classify files, folders and glob patterns; yield one row (a dict) per file, in input order.
    `options` are those of `fmnist_batch.ClassifyOptions` (top_k, background, workers, engine, ...).

    >>> for row in classify("photos/"):
    ...     print(row["path"], row["label"], row["confidence"])
    """
    classifier = _classifier(inputs, options)
    yield from classifier.classify_folder(inputs, recursive=recursive, extensions=extensions)


def classify_dataframe(
    inputs: Inputs, *, recursive: bool = True, extensions: Sequence[str] = IMAGE_EXTENSIONS, **options: Any
):
    """Like `classify`, collected into a pandas DataFrame (one row per file, the output's columns)."""
    import pandas as pd

    classifier = _classifier(inputs, options)
    rows = classifier.classify_folder(inputs, recursive=recursive, extensions=extensions)
    return pd.DataFrame(list(rows), columns=classifier.columns)


def _classifier(inputs: Inputs, options: dict[str, Any]):  # -> Classifier
    from fmnist_batch.classifier import Classifier

    if not isinstance(inputs, str | os.PathLike) and not _is_iterable_of_paths(inputs):
        raise TypeError(
            f"classify() takes paths, folders or glob patterns, not a {type(inputs).__name__}; "
            "for an image in memory use fmnist_batch.Classifier()(image)"
        )
    return Classifier(**options)


def _is_iterable_of_paths(inputs: object) -> bool:
    return isinstance(inputs, list | tuple) and all(isinstance(i, str | os.PathLike) for i in inputs)
