"""The classify job from Python: rows as an iterator, or a pandas DataFrame."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence

from fmnist_batch.convert import PreprocessSettings
from fmnist_batch.discover import check_inputs, discover
from fmnist_batch.engines.local import Classifier, ClassifyOptions
from fmnist_batch.labels import IMAGE_EXTENSIONS


def classify(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    recursive: bool = True,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    model: str | os.PathLike | None = None,
    batch_size: int = 256,
    workers: int | None = None,
    top_k: int = 3,
    min_confidence: float = 0.0,
    invert: str = "auto",
    save_preprocessed: str | os.PathLike | None = None,
) -> Iterator[dict]:
    """Classify files, folders and glob patterns; yield one row (a dict) per file, in input order.

    >>> for row in classify("photos/"):
    ...     print(row["path"], row["label"], row["confidence"])
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    names = [os.fspath(i) for i in inputs]
    check_inputs(names)
    options = ClassifyOptions(
        model=model,
        batch_size=batch_size,
        workers=workers,
        top_k=top_k,
        min_confidence=min_confidence,
        preprocess=PreprocessSettings(invert=invert),
        save_preprocessed=save_preprocessed,
    )
    with Classifier(options) as classifier:
        yield from classifier.run(discover(names, recursive=recursive, extensions=extensions))


def classify_dataframe(inputs: str | os.PathLike | Iterable[str | os.PathLike], **kwargs):
    """Like `classify`, collected into a pandas DataFrame (one row per file)."""
    import pandas as pd

    from fmnist_batch.outputs.writer import row_fields

    return pd.DataFrame(list(classify(inputs, **kwargs)), columns=row_fields(kwargs.get("top_k", 3)))
