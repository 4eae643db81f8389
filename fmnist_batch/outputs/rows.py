"""The row schema: one row per input file, the same for every format, engine and caller."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fmnist_batch.labels import CLASS_NAMES

#: a row's status: classified with at least --min-confidence, classified below it, none of the 10 classes
#: (the scope judge's in_scope below the operating point), or not classified
STATUSES = ("ok", "uncertain", "other", "error")
#: the label of a photo that shows none of the 10 classes
OTHER = "other"


def row_fields(top_k: int, in_scope: bool = False) -> list[str]:
    """The output columns for top_k predictions per file, and the scope judge's in_scope when it runs
    (--no-other leaves the column out, so its rows are those of a run without a judge)."""
    fields = ["path", "label", "confidence", *(["in_scope"] if in_scope else [])]
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
    scope: Scope | None = None,
    blank: bool = False,
) -> dict[str, Any]:
    """One output row; `probabilities` is None for a file that could not be converted (`error` says why).
    `view` is the view of the garment its image was made from (convert.VIEWS), for users to filter on,
    and `region` the part of a person a worn one was read from (convert.REGIONS). With a `scope` (the
    judge runs), a photo whose in_scope is below its operating point is labelled OTHER, with confidence
    1 - in_scope; its top-k still ranks the 10 classes. A `blank` photo (one flat colour: nothing to
    classify) is never a confident class: uncertain, or other where a judge runs."""
    row: dict[str, Any] = dict.fromkeys(row_fields(top_k, scope is not None))
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
    row["status"] = "ok" if confidence >= min_confidence and not blank else "uncertain"
    row["error"] = ""
    if scope is not None and scope.in_scope is not None:
        row["in_scope"] = scope.in_scope
        if scope.in_scope < scope.below:
            row["label"], row["confidence"], row["status"] = OTHER, 1.0 - scope.in_scope, OTHER
    return row


@dataclass(frozen=True)
class Scope:
    """What the scope judge said of one photo: in_scope, the calibrated probability that it shows one of
    the 10 classes (None: the judge did not read it: an image already in the dataset's own 28x28 grey
    format, or a catalog shot whose 28x28 image reads as one), and the operating point below which it is
    answered OTHER."""

    in_scope: float | None
    below: float
