"""The row schema: one row per input file, the same for every format, engine and caller."""

from __future__ import annotations

from typing import Any

import numpy as np

from fmnist_batch.labels import CLASS_NAMES

#: a row's status: classified with at least --min-confidence, classified below it, or not classified
STATUSES = ("ok", "uncertain", "error")


def row_fields(top_k: int) -> list[str]:
    """The output columns for top_k predictions per file."""
    fields = ["path", "label", "confidence"]
    for k in range(1, top_k + 1):
        fields += [f"top{k}_label", f"top{k}_prob"]
    return [*fields, "view", "region", "status", "error"]


def make_row(
    display: str,
    probabilities: np.ndarray | None,
    error: str | None,
    *,
    top_k: int,
    min_confidence: float = 0.0,
    view: str = "",
    region: str = "",
) -> dict[str, Any]:
    """One output row; `probabilities` is None for a file that could not be converted (`error` says why).
    `view` is the view of the garment its image was made from (convert.VIEWS), for users to filter on,
    and `region` the part of a person a worn one was read from (convert.REGIONS)."""
    row: dict[str, Any] = dict.fromkeys(row_fields(top_k))
    row["path"], row["view"], row["region"] = display, view or None, region or None
    if probabilities is None:
        row["status"], row["error"] = "error", error
        return row
    order = np.argsort(-probabilities, kind="stable")[:top_k]
    confidence = float(probabilities[order[0]])
    row["label"], row["confidence"] = CLASS_NAMES[order[0]], confidence
    for rank, index in enumerate(order, start=1):
        row[f"top{rank}_label"] = CLASS_NAMES[index]
        row[f"top{rank}_prob"] = float(probabilities[index])
    row["status"] = "ok" if confidence >= min_confidence else "uncertain"
    row["error"] = ""
    return row
