"""Accuracy on a folder of labelled photos (one subfolder per class), through classify's own pipeline.

Folder names are Fashion-MNIST class names (compared loosely: ``t-shirt-top`` is ``T-shirt/top``), or a
mapping CSV (``folder,fmnist_labels`` with ``|`` between several classes that count as right, empty for
folders no class fits) says which predictions count as right for each folder.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fmnist_batch.discover import InputFile, discover
from fmnist_batch.labels import CLASS_NAMES, NUM_CLASSES
from fmnist_batch.options import ClassifyOptions

if TYPE_CHECKING:
    from rich.table import Table


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


def folder_classes(root: Path, mapping: dict[str, frozenset[int]] | None) -> dict[str, frozenset[int]]:
    """Each subfolder of `root` with the classes that count as right for it."""
    if not root.is_dir():
        raise EvaluationError(f"not a folder: {root}")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
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
    errors: int = 0

    @property
    def files(self) -> int:
        return int(self.predicted.sum()) + self.errors

    @property
    def correct(self) -> int:
        return int(sum(self.predicted[i] for i in self.accepted))

    @property
    def accuracy(self) -> float:
        return self.correct / self.files if self.files else float("nan")


@dataclass
class Evaluation:
    folders: list[FolderResult]
    skipped: dict[str, int]  # folders no class fits: files left out
    #: the photos predicted as a class that does not count as right, or not read: path, folder, label,
    #: confidence, error
    mistakes: list[dict] = field(default_factory=list)

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
        """Rows: folders; columns: predicted classes, then read errors."""
        return np.array([[*f.predicted, f.errors] for f in self.folders], dtype=np.int64)

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
                    "errors": f.errors,
                }
                for f in self.folders
            },
            "skipped_folders": self.skipped,
            "misclassified": self.mistakes,
        }


def _photos(root: Path, name: str) -> Iterator[InputFile]:
    return discover([str(root / name)])


def evaluate(
    root: str | os.PathLike,
    *,
    mapping: str | os.PathLike | None = None,
    options: ClassifyOptions | None = None,
) -> Evaluation:
    """Classify every photo under `root` and score it against its folder's accepted classes."""
    root = Path(root)
    accepted = folder_classes(root, read_mapping(mapping) if mapping is not None else None)
    results = {name: FolderResult(name, classes) for name, classes in accepted.items() if classes}
    skipped = {name: sum(1 for _ in _photos(root, name)) for name, classes in accepted.items() if not classes}
    index = {label: i for i, label in enumerate(CLASS_NAMES)}
    labelled = [str(root / name) for name in results]
    mistakes: list[dict] = []
    if labelled:
        from fmnist_batch.classifier import Classifier

        for row in Classifier(**asdict(options or ClassifyOptions())).classify_folder(labelled):
            # the display path is <root>/<folder>/..., so the row names its folder
            result = results[Path(row["path"]).relative_to(root).parts[0]]
            if row["status"] == "error":
                result.errors += 1
            else:
                result.predicted[index[row["label"]]] += 1
            if row["status"] == "error" or index[row["label"]] not in result.accepted:
                mistakes.append(_mistake(row, result.name))
    return Evaluation(list(results.values()), skipped, mistakes)


def _mistake(row: dict, folder: str) -> dict:
    keys = ("path", "label", "confidence", "error")
    return {"folder": folder, **{key: row[key] or None for key in keys}}


def evaluation_tables(evaluation: Evaluation) -> list[Table]:
    """Per-folder accuracy, then the confusion of folders against predicted classes (rich tables)."""
    from rich.table import Table

    from fmnist_batch.outputs.summary import SHORT_NAMES

    per_folder = Table(title="accuracy per folder", title_justify="left")
    for name, justify in (
        ("folder", "left"),
        ("counts as right", "left"),
        ("files", "right"),
        ("accuracy", "right"),
    ):
        per_folder.add_column(name, justify=justify)
    for f in evaluation.folders:
        right = ", ".join(CLASS_NAMES[i] for i in sorted(f.accepted))
        per_folder.add_row(f.name, right, f"{f.files:,}", f"{f.accuracy:.3f}")
    per_folder.add_section()
    per_folder.add_row("all", "", f"{evaluation.files:,}", f"{evaluation.accuracy:.3f}")
    per_folder.add_row("mean of folders", "", "", f"{evaluation.balanced_accuracy:.3f}")
    for name, count in evaluation.skipped.items():
        per_folder.add_row(name, "(no class fits: skipped)", f"{count:,}", "")

    confusion = Table(title="confusion: folder (rows) x predicted class (columns)", title_justify="left")
    confusion.add_column("folder")
    for name in [*SHORT_NAMES, "error"]:
        confusion.add_column(name, justify="right")
    for f, row in zip(evaluation.folders, evaluation.confusion(), strict=True):
        cells = [
            f"[bold]{n}[/bold]" if i in f.accepted and n else (str(n) if n else "·")
            for i, n in enumerate(row)
        ]
        confusion.add_row(f.name, *cells)
    return [per_folder, confusion]
