"""Accuracy on a folder of labelled photos (one subfolder per class), through classify's own pipeline.

Folder names are Fashion-MNIST class names (compared loosely: ``t-shirt-top`` is ``T-shirt/top``), or a
mapping CSV (``folder,fmnist_labels`` with ``|`` between several classes that count as right, empty for
folders no class fits) says which predictions count as right for each folder.

A folder named ``other`` (or another name given as `other_folder`) holds photos that show none of the
10 classes, in subfolders of any depth (watches/, far/rings/, ...): the share of them answered "other" is
reported per subfolder, an in-scope photo answered "other" counts as wrong, and the AUROC of in_scope
says how well the scope judge's probability alone tells the two apart.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fmnist_batch.discover import InputFile, discover
from fmnist_batch.labels import CLASS_NAMES, NUM_CLASSES, OTHER_FOLDER
from fmnist_batch.options import ClassifyOptions
from fmnist_batch.outputs.rows import OTHER


class EvaluationError(Exception):
    """The labelled folder or the mapping cannot be used; the message says why."""


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_CLASS_BY_KEY = {_key(name): i for i, name in enumerate(CLASS_NAMES)}


def read_mapping(path: str | os.PathLike) -> dict[str, frozenset[int]]:
    """folder name -> the class indices that count as right (empty: the folder is left out)."""
    mapping: dict[str, frozenset[int]] = {}
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise EvaluationError(f"cannot read the mapping {path}: {e.strerror}") from None
    if not rows or not {"folder", "fmnist_labels"} <= set(rows[0]):
        raise EvaluationError(f"{path}: expected a CSV with the columns folder,fmnist_labels")
    for row in rows:
        labels = [label.strip() for label in (row["fmnist_labels"] or "").split("|") if label.strip()]
        unknown = [label for label in labels if _key(label) not in _CLASS_BY_KEY]
        if unknown:
            raise EvaluationError(f"{path}: unknown class {unknown[0]!r} for folder {row['folder']!r}")
        mapping[row["folder"].strip()] = frozenset(_CLASS_BY_KEY[_key(label)] for label in labels)
    return mapping


def folder_classes(
    root: Path, mapping: dict[str, frozenset[int]] | None, other_folder: str | None = None
) -> dict[str, frozenset[int]]:
    """Each subfolder of `root` with the classes that count as right for it (`other_folder` aside)."""
    if not root.is_dir():
        raise EvaluationError(f"not a folder: {root}")
    folders = sorted(
        p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name != other_folder
    )
    if not folders and not (other_folder and (root / other_folder).is_dir()):
        raise EvaluationError(f"{root} has no subfolders; expected one subfolder of photos per class")
    if mapping is not None:
        missing = [name for name in folders if name not in mapping]
        if missing:
            raise EvaluationError(f"the mapping has no row for the folder(s): {', '.join(missing)}")
        return {name: mapping[name] for name in folders}
    unknown = [name for name in folders if _key(name) not in _CLASS_BY_KEY]
    if unknown:
        raise EvaluationError(
            f"folder(s) not named after a Fashion-MNIST class: {', '.join(unknown)}; "
            "pass --mapping CSV to say which classes count as right"
        )
    return {name: frozenset([_CLASS_BY_KEY[_key(name)]]) for name in folders}


@dataclass
class FolderResult:
    name: str
    accepted: frozenset[int]
    predicted: np.ndarray = field(default_factory=lambda: np.zeros(NUM_CLASSES, np.int64))
    #: answered "other" (none of the 10 classes): wrong for a folder of one of them
    other: int = 0
    errors: int = 0

    @property
    def files(self) -> int:
        return int(self.predicted.sum()) + self.other + self.errors

    @property
    def correct(self) -> int:
        return int(sum(self.predicted[i] for i in self.accepted))

    @property
    def accuracy(self) -> float:
        return self.correct / self.files if self.files else float("nan")


@dataclass
class OutOfScope:
    """The photos of the out-of-scope folder: per subfolder (every level: far, far/rings), how many were
    read and how many answered other; and in_scope for them and for the in-scope photos (AUROC; None for
    an image already in the dataset's 28x28 format, which has none)."""

    folder: str
    files: dict[str, int] = field(default_factory=dict)
    answered_other: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    #: in_scope of the out-of-scope photos, by their first subfolder ("" for photos directly in it)
    in_scope_out: dict[str, list[float | None]] = field(default_factory=dict)
    in_scope_in: list[float | None] = field(default_factory=list)

    def add(self, subfolder: str, row: dict) -> None:
        if row["status"] == "error":
            self.errors += 1
            return
        parts = Path(subfolder).parts
        for depth in range(len(parts) + 1):
            key = "/".join(parts[:depth]) or "all"
            self.files[key] = self.files.get(key, 0) + 1
            self.answered_other[key] = self.answered_other.get(key, 0) + (row["status"] == OTHER)
        if "in_scope" in row:
            self.in_scope_out.setdefault(parts[0] if parts else "", []).append(row_in_scope(row))

    def share_other(self, key: str = "all") -> float:
        files = self.files.get(key, 0)
        return self.answered_other.get(key, 0) / files if files else float("nan")

    def auroc(self) -> float | None:
        """How often an in-scope photo's in_scope exceeds an out-of-scope one's (ties count half), an image
        without one ranked as surely in scope (as the tool answers it); None without a judge's in_scope
        on both sides."""
        out = [v for values in self.in_scope_out.values() for v in values]
        return ranked_auroc(self.in_scope_in, out)

    def auroc_of(self, subfolder: str) -> float | None:
        """The AUROC against the photos of one first-level subfolder alone (far/, near/, ...)."""
        return ranked_auroc(self.in_scope_in, self.in_scope_out.get(subfolder, []))

    def to_dict(self) -> dict:
        return {
            "folder": self.folder,
            "files": self.files.get("all", 0),
            "errors": self.errors,
            "share_answered_other": self.share_other(),
            "auroc_in_scope": self.auroc(),
            "subfolders": {
                key: {
                    "files": n,
                    "answered_other": self.answered_other[key],
                    "share": self.share_other(key),
                }
                for key, n in sorted(self.files.items())
                if key != "all"
            },
            "auroc_in_scope_by_subfolder": {key: self.auroc_of(key) for key in sorted(self.in_scope_out)},
        }


def row_in_scope(row: dict) -> float | None:
    """A converted row's in_scope, None for an image already in the dataset's format (it has none)."""
    return None if row.get("in_scope") is None else float(row["in_scope"])


def ranked_auroc(positive: list[float | None], negative: list[float | None]) -> float | None:
    """The AUROC of in_scope values, None (a 28x28 dataset image) ranked as 1, surely in scope, as the
    tool answers such an image."""
    return auroc([1.0 if v is None else v for v in positive], [1.0 if v is None else v for v in negative])


def auroc(positive: list[float], negative: list[float]) -> float | None:
    """P(a positive scores above a negative), ties half: the Mann-Whitney statistic over all pairs."""
    if not positive or not negative:
        return None
    scores = np.concatenate([positive, negative])
    ranks = np.empty(len(scores))
    order = np.argsort(scores, kind="stable")
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores):  # tied scores share their mean rank
        tied = scores == value
        ranks[tied] = ranks[tied].mean()
    n_pos, n_neg = len(positive), len(negative)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@dataclass
class Evaluation:
    folders: list[FolderResult]
    skipped: dict[str, int]  # folders no class fits: files left out
    #: the photos predicted as a class that does not count as right, or not read: path, folder, label,
    #: confidence, error
    mistakes: list[dict] = field(default_factory=list)
    #: the out-of-scope folder's results, when the labelled folder has one
    out_of_scope: OutOfScope | None = None

    @property
    def files(self) -> int:
        return sum(f.files for f in self.folders)

    @property
    def accuracy(self) -> float:
        """Share of all evaluated photos predicted as a class that counts as right (errors count wrong)."""
        return sum(f.correct for f in self.folders) / self.files if self.files else float("nan")

    @property
    def balanced_accuracy(self) -> float:
        """Mean of the per-folder accuracies, so big folders do not drown small ones."""
        values = [f.accuracy for f in self.folders if f.files]
        return float(np.mean(values)) if values else float("nan")

    def confusion(self) -> np.ndarray:
        """Rows: folders; columns: predicted classes, then other, then read errors."""
        return np.array([[*f.predicted, f.other, f.errors] for f in self.folders], dtype=np.int64)

    def to_dict(self) -> dict:
        return {
            "files": self.files,
            "accuracy": self.accuracy,
            "balanced_accuracy": self.balanced_accuracy,
            "folders": {
                f.name: {
                    "accepted": [CLASS_NAMES[i] for i in sorted(f.accepted)],
                    "files": f.files,
                    "accuracy": f.accuracy,
                    "predicted": dict(zip(CLASS_NAMES, map(int, f.predicted), strict=True)),
                    "answered_other": f.other,
                    "errors": f.errors,
                }
                for f in self.folders
            },
            "skipped_folders": self.skipped,
            "out_of_scope": self.out_of_scope.to_dict() if self.out_of_scope is not None else None,
            "misclassified": self.mistakes,
        }


def _photos(root: Path, name: str) -> Iterator[InputFile]:
    return discover([str(root / name)])


def evaluate(
    root: str | os.PathLike,
    *,
    mapping: str | os.PathLike | None = None,
    options: ClassifyOptions | None = None,
    other_folder: str = OTHER_FOLDER,
) -> Evaluation:
    """Classify every photo under `root` and score it against its folder's accepted classes; the photos
    of `root/other_folder`, if there is one, against answering other."""
    root = Path(root)
    accepted = folder_classes(root, read_mapping(mapping) if mapping is not None else None, other_folder)
    results = {name: FolderResult(name, classes) for name, classes in accepted.items() if classes}
    skipped = {name: sum(1 for _ in _photos(root, name)) for name, classes in accepted.items() if not classes}
    out = OutOfScope(other_folder) if (root / other_folder).is_dir() else None
    folders = [*results, *([other_folder] if out is not None else [])]
    mistakes: list[dict] = []
    if folders:
        from fmnist_batch.classifier import Classifier

        classifier = Classifier(**asdict(options or ClassifyOptions()))
        for row in classifier.classify_folder([str(root / name) for name in folders]):
            # the display path is <root>/<folder>/..., so the row names its folder
            parts = Path(row["path"]).relative_to(root).parts
            if out is not None and parts[0] == other_folder:
                out.add("/".join(parts[1:-1]), row)
                continue
            _score(row, results[parts[0]], out, mistakes)
    return Evaluation(list(results.values()), skipped, mistakes, out)


def _score(row: dict, result: FolderResult, out: OutOfScope | None, mistakes: list[dict]) -> None:
    """Count an in-scope photo's row in its folder's result (and its in_scope for the AUROC)."""
    status = row["status"]
    if status == "error":
        result.errors += 1
    elif status == OTHER:
        result.other += 1
    else:
        result.predicted[CLASS_NAMES.index(row["label"])] += 1
    if out is not None and "in_scope" in row and status != "error":
        out.in_scope_in.append(row_in_scope(row))
    if status in ("error", OTHER) or CLASS_NAMES.index(row["label"]) not in result.accepted:
        mistakes.append(_mistake(row, result.name))


def _mistake(row: dict, folder: str) -> dict:
    keys = ("path", "label", "confidence", "error")
    return {"folder": folder, **{key: row[key] or None for key in keys}}
