"""The typed records a model card is built from (metrics, training, flip averaging, quantization,
provenance, the photo-model decision), and how paths are written into a card so that it holds no
machine's absolute paths. fmnist_batch.model.card reads, validates and writes the card itself.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePath
from typing import Any, TypeVar

#: an absolute path inside a string, alone or as the value of an --option=VALUE
_ABSOLUTE_TOKEN = re.compile(r"(?<!\S)(--[\w-]+=)?(/[^\s/]\S*)")


#: field metadata: leave the key out of the JSON while the value is None
OMIT_IF_NONE = {"omit_if_none": True}


def _plain(value: Any) -> Any:
    return value.to_dict() if isinstance(value, _Record) else value


R = TypeVar("R", bound="_Record")


class _Record:
    """A card section as a dataclass: the JSON keys are its field names, in field order. Fields with the
    metadata OMIT_IF_NONE are left out while None (keys later cards added: metrics, flip gates); the
    others are always written, as null when None."""

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any]) -> R:
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{key: value for key, value in data.items() if key in names})

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is not None or not f.metadata.get("omit_if_none"):
                out[f.name] = _plain(value)
        return out


@dataclass(frozen=True, kw_only=True)
class Metrics(_Record):
    """Figures measured on the validation split, the test set and held-out real photos."""

    validation_accuracy: float | None = field(default=None, metadata=OMIT_IF_NONE)
    validation_size: int | None = field(default=None, metadata=OMIT_IF_NONE)
    test_accuracy: float | None = field(default=None, metadata=OMIT_IF_NONE)
    test_size: int | None = field(default=None, metadata=OMIT_IF_NONE)
    test_ece_uncalibrated: float | None = field(default=None, metadata=OMIT_IF_NONE)
    test_ece: float | None = field(default=None, metadata=OMIT_IF_NONE)
    test_per_class: dict[str, dict[str, float]] | None = field(default=None, metadata=OMIT_IF_NONE)
    test_confusion_matrix: list[list[int]] | None = field(default=None, metadata=OMIT_IF_NONE)
    real_photo_validation_accuracy: float | None = field(default=None, metadata=OMIT_IF_NONE)
    real_photo_validation_balanced_accuracy: float | None = field(default=None, metadata=OMIT_IF_NONE)
    real_photo_validation_size: int | None = field(default=None, metadata=OMIT_IF_NONE)
    real_photo_validation_per_folder: dict[str, float] | None = field(default=None, metadata=OMIT_IF_NONE)
    tflite_test_accuracy: float | None = field(default=None, metadata=OMIT_IF_NONE)
    tflite_max_logit_difference: float | None = field(default=None, metadata=OMIT_IF_NONE)
    int8_test_accuracy: float | None = field(default=None, metadata=OMIT_IF_NONE)
    int8_test_ece: float | None = field(default=None, metadata=OMIT_IF_NONE)


@dataclass(frozen=True, kw_only=True)
class FlipRecord(_Record):
    """The validation accuracies that decided flip averaging (and its confidence gate)."""

    setting: str
    validation_accuracy_single: float
    validation_accuracy_flip: float
    validation_accuracy_gated: float | None = field(default=None, metadata=OMIT_IF_NONE)
    below: float | None = field(default=None, metadata=OMIT_IF_NONE)
    validation_mirrored_share: float | None = field(default=None, metadata=OMIT_IF_NONE)


@dataclass(frozen=True, kw_only=True)
class Quantization(_Record):
    """How the int8 file was made and the validation accuracies that decided whether LiteRT runs it."""

    setting: str
    method: str
    tolerance: float
    validation_accuracy_float: float
    validation_accuracy_int8: float


@dataclass(frozen=True, kw_only=True)
class Provenance(_Record):
    """The model a retrain started from (``--init-from``), with that model's own provenance."""

    path: str
    keras_sha256: str
    seed: int
    limit: int | None
    epochs_run: int
    command: str
    validation_accuracy: float | None
    init_from: Provenance | None = field(default=None, metadata=OMIT_IF_NONE)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        parent = data.get("init_from")
        return super().from_dict({**data, "init_from": cls.from_dict(parent) if parent else None})


@dataclass(frozen=True, kw_only=True)
class ExtraData(_Record):
    """The labelled real photos mixed into training (``--extra-data``) and the part held out of them."""

    folder: str
    mapping: str | None
    files_sha256: str
    files_sha256_of: str
    conversion: dict[str, Any]
    folders: dict[str, dict[str, Any]]
    skipped_folders: dict[str, int]
    train_photos: int
    validation_photos: int
    validation_fraction: float
    repeat: int
    share_of_epoch: float
    loss: str


@dataclass(frozen=True, kw_only=True)
class TrainingRecord(_Record):
    """How the weights were trained; `augmentation` is the augmentation's own description."""

    epochs_requested: int
    epochs_run: int
    best_epoch: int | None = None  # None: no epoch run (a re-export), or a card from before the key
    train_seconds: float
    train_images: int
    seed: int
    batch_size: int
    learning_rate: float
    augmentation: dict[str, Any]
    parameters: int
    command: str
    limit: int | None
    init_from: Provenance | None
    extra_data: ExtraData | None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingRecord:
        source, extra = data.get("init_from"), data.get("extra_data")
        return super().from_dict(
            {
                **data,
                "init_from": Provenance.from_dict(source) if source else None,
                "extra_data": ExtraData.from_dict(extra) if extra else None,
            }
        )


@dataclass(frozen=True, kw_only=True)
class PhotoModelDecision(_Record):
    """Whether pair-photo-model attached a photo model, and the held-out real photos that decided it."""

    photo_model_command: str | None
    judged_on: str = "the real photos the photo model's retrain held out that the conversion segments"
    held_out_photos: int
    segmented_photos: int
    segmented_accuracy_main: float
    segmented_accuracy_photo: float
    not_segmented_photos: int
    not_segmented_accuracy_main: float
    not_segmented_accuracy_photo: float
    attached: bool


@dataclass(frozen=True, kw_only=True)
class WornDecision(_Record):
    """Which model reads the garments the person path cuts out of photos of a person (the worn view), and
    the labelled on-model photos that decided it: the model with the higher balanced accuracy on their
    worn crops (the mean of each folder's accuracy), so no kind of garment is given up for the others."""

    judged_on: str  # the folder of labelled photos, as the card keeps paths (portable_path)
    worn_photos: int
    accuracy_main: float
    accuracy_photo: float
    balanced_accuracy_main: float
    balanced_accuracy_photo: float
    read_by: str  # "main" or "photo"


@dataclass(frozen=True, kw_only=True)
class UncertainBelow(_Record):
    """The default --min-confidence: the confidence below which answers are wrong more often than right,
    measured on labelled photos of a licence the project may use (never the Fashion-MNIST test set)."""

    value: float
    rule: str
    chosen_on: str  # the folder of labelled photos, as the card keeps paths (portable_path)
    photos: int
    accuracy_below: float  # of the answers below value
    share_below: float  # of all answers


# ---------------------------------------------------------------------------------------------- paths


def portable_path(path: str | os.PathLike) -> str:
    """`path` as a card may hold it: relative paths as they are, absolute ones relative to the working
    directory when under it, otherwise their last two components. A card travels to other machines,
    where the path to this machine's home or data folder says nothing and leaks who made it."""
    text = os.fspath(path)
    if not os.path.isabs(text):
        return text
    pure = PurePath(text)
    try:
        return str(pure.relative_to(Path.cwd()))
    except ValueError:
        return str(PurePath(*pure.parts[1:][-2:]))


def _portable_text(text: str) -> str:
    if os.path.isabs(text) and "\n" not in text:
        return portable_path(text)  # a path of its own, spaces and all
    return _ABSOLUTE_TOKEN.sub(lambda m: (m.group(1) or "") + portable_path(m.group(2)), text)


def _portable(value: Any) -> Any:
    """`value` with every absolute path in its strings made portable (commands, folders, sources)."""
    if isinstance(value, str):
        return _portable_text(value)
    if isinstance(value, dict):
        return {key: _portable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_portable(item) for item in value]
    return value


# ---------------------------------------------------------------------------------------------- validation


def file_sha256(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
