"""The model card: the JSON file beside a model's files that says how to run them and how they were made.

This is the only module that knows the card's keys. It reads a card (`ModelCard.load`, validated before
anything trusts it), builds one (`build_card`, from typed records), derives one from another (the
``with_*`` methods: cards are never edited in place) and writes one atomically (`ModelCard.write`).
Everything else uses the typed accessors (`metrics`, `training`, `conversion()`, ...).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path, PurePath
from typing import Any, TypeVar

from fmnist_batch.files import atomic_write
from fmnist_batch.labels import CLASS_NAMES, IMAGE_SIZE

CARD_FILE = "model_card.json"
#: the training curves retrain writes beside the model files (not needed for inference)
HISTORY_FILE = "history.csv"
#: what a card's "format" says; a reader refuses formats it does not list (a later, different layout)
CARD_FORMAT = "fmnist-batch model card v1"
SUPPORTED_FORMATS = (CARD_FORMAT,)
#: The photo model's files go into this subfolder of a paired model.
PHOTO_FOLDER = "photo"
#: the keys of the card's preprocessing block that are conversion settings, named as the fields of
#: fmnist_batch.convert.PreprocessSettings (which the options resolver builds from `conversion()`)
CONVERSION_KEYS = (
    "trim_tolerance",
    "invert",
    "sharpen",
    "resample",
    "draft_factor",
    "zero_background",
    "full_range",
    "background",
    "segment_size",
)
#: an absolute path inside a string, alone or as the value of an --option=VALUE
_ABSOLUTE_TOKEN = re.compile(r"(?<!\S)(--[\w-]+=)?(/[^\s/]\S*)")


class ModelError(Exception):
    """The model cannot be used: missing, truncated, tampered with, or its card is broken."""


# ---------------------------------------------------------------------------------------------- records


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


def _finite(value: Any, what: str) -> float:
    # bool is an int to Python, but `true` is no number to a card
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ModelError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _bare_name(value: Any, what: str) -> str:
    """A file or folder name inside the model folder: a card must not point the runtime elsewhere."""
    if not isinstance(value, str) or not value or value in (".", "..") or PurePath(value).name != value:
        raise ModelError(f"{what} must be a plain name inside the model folder, got {value!r}")
    return value


def _check_format(raw: Any) -> None:
    if not isinstance(raw, dict):
        raise ModelError("not a JSON object")
    if "format" not in raw:
        raise ModelError("no format key: not a card fmnist-batch wrote")
    if raw["format"] not in SUPPORTED_FORMATS:
        raise ModelError(
            f"unsupported format {raw['format']!r}; this fmnist-batch reads {', '.join(SUPPORTED_FORMATS)}"
        )
    missing = [key for key in ("class_names", "files", "preprocessing", "temperature") if key not in raw]
    if missing:
        raise ModelError(f"missing {', '.join(missing)}")
    if tuple(raw["class_names"]) != CLASS_NAMES:
        raise ModelError(f"lists other classes than Fashion-MNIST's: {raw['class_names']}")


def _check_files(files: Any) -> dict[str, dict[str, str]]:
    if not isinstance(files, dict) or not files:
        raise ModelError("files must name at least one model file")
    for kind, entry in files.items():
        if not isinstance(entry, dict):
            raise ModelError(f"the files entry {kind} is not an object")
        _bare_name(entry.get("name"), f"the {kind} file's name")
    return files


def _check_temperature(value: Any) -> float:
    temperature = _finite(value, "temperature")
    if temperature <= 0:
        raise ModelError(f"temperature must be positive, got {temperature}")
    return temperature


def _check_preprocessing(prep: Any, files: dict) -> dict[str, Any]:
    """The parsed inference settings of the preprocessing block."""
    if not isinstance(prep, dict):
        raise ModelError("preprocessing is not an object")
    scale = _finite(prep.get("input_scale"), "input_scale")
    if scale == 0:
        raise ModelError("input_scale must not be 0: every image would reach the model as the same input")
    below = prep.get("flip_average_below")
    litert_file = str(prep.get("litert_file", "tflite"))  # cards before int8 ran the float file
    if litert_file not in files:
        raise ModelError(f"preprocessing.litert_file names {litert_file!r}, which files does not list")
    return {
        "input_scale": scale,
        "input_offset": _finite(prep.get("input_offset", 0.0), "input_offset"),
        "flip_average": bool(prep.get("flip_average", False)),  # cards before the setting: no
        "flip_average_below": None if below is None else _finite(below, "flip_average_below"),
        "litert_file": litert_file,
    }


def _check_photo_model(entry: Any) -> dict[str, str] | None:
    if entry is None:
        return None
    if not isinstance(entry, dict) or not {"folder", "card_sha256"} <= set(entry):
        raise ModelError("photo_model needs a folder and a card_sha256")
    _bare_name(entry["folder"], "photo_model.folder")
    return entry


# ---------------------------------------------------------------------------------------------- the card


@dataclass(frozen=True)
class ModelCard:
    """A validated card. The parsed fields are what inference needs; `raw` is the whole card (read-only:
    reports and the web API show it; code reads it through the accessors below)."""

    path: Path
    class_names: tuple[str, ...]
    input_scale: float
    input_offset: float
    temperature: float
    files: dict[str, dict[str, str]]
    raw: dict[str, Any]
    #: logits are the mean of the image's and its mirror image's ...
    flip_average: bool = False
    #: ... for images whose own top softmax probability is below this; None: for every image
    flip_average_below: float | None = None
    #: a second model for photos the conversion segmented: {"folder": ..., "card_sha256": ...}
    photo_model: dict[str, str] | None = None
    #: the files entry LiteRT runs by default ("tflite" or "tflite_int8")
    litert_file: str = "tflite"

    @classmethod
    def load(cls, path: Path) -> ModelCard:
        try:
            raw = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ModelError(f"model card not found: {path}") from None
        except (OSError, ValueError) as e:
            raise ModelError(f"model card {path} is unreadable or incomplete ({e!r})") from None
        return cls.from_dict(raw, Path(path))

    @classmethod
    def from_dict(cls, raw: Any, path: Path) -> ModelCard:
        """Validate `raw` (a card's JSON) as the card at `path`."""
        try:
            _check_format(raw)
            files = _check_files(raw["files"])
            return cls(
                path=path,
                class_names=tuple(raw["class_names"]),
                temperature=_check_temperature(raw["temperature"]),
                files=files,
                raw=raw,
                photo_model=_check_photo_model(raw.get("photo_model")),
                **_check_preprocessing(raw["preprocessing"], files),
            )
        except ModelError as e:
            raise ModelError(f"model card {path}: {e}") from None
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"model card {path} is unreadable or incomplete ({e!r})") from None

    # ------------------------------------------------------------------ files

    def model_file(self, kind: str) -> Path:
        try:
            return self.path.parent / self.files[kind]["name"]
        except KeyError:
            raise ModelError(f"model card {self.path} names no {kind} file") from None

    def verify(self, kind: str) -> Path:
        """The model file of `kind`, after checking it exists and matches the card's sha256."""
        path = self.model_file(kind)
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        expected = self.files[kind].get("sha256")
        if not expected:
            raise ModelError(f"model card {self.path} has no sha256 for {path.name}; refusing to load it")
        digest = file_sha256(path)
        if digest != expected:
            raise ModelError(
                f"{path} does not match its model card (sha256 {digest[:12]}..., "
                f"card says {expected[:12]}...): the file is truncated, corrupted or was replaced; "
                "re-export it with `fmnist-batch retrain`"
            )
        return path

    def photo_card(self) -> Path:
        """The photo model's card, after checking it is the one this card was exported with."""
        if self.photo_model is None:
            raise ModelError(f"model card {self.path} names no photo model")
        path = self.path.parent / self.photo_model["folder"] / CARD_FILE
        if not path.is_file():
            raise ModelError(f"model card {self.path} names a photo model, but {path} is missing")
        if file_sha256(path) != self.photo_model["card_sha256"]:
            raise ModelError(
                f"{path} is not the photo model {self.path} was exported with (its sha256 differs)"
            )
        return path

    # ------------------------------------------------------------------ accessors

    def _section(self, record: type[R], key: str) -> R | None:
        data = self.raw.get(key)
        if not data:
            return None
        try:
            return record.from_dict(data)
        except TypeError as e:  # a required key is missing
            raise ModelError(f"model card {self.path}: its {key} record is incomplete ({e})") from None

    @property
    def metrics(self) -> Metrics:
        return self._section(Metrics, "metrics") or Metrics()

    @property
    def training(self) -> TrainingRecord | None:
        return self._section(TrainingRecord, "training")

    @property
    def flip_record(self) -> FlipRecord | None:
        """How flip averaging was decided (None: a card from before the setting)."""
        return self._section(FlipRecord, "flip_average")

    @property
    def quantization(self) -> Quantization | None:
        return self._section(Quantization, "quantization")

    @property
    def photo_model_decision(self) -> PhotoModelDecision | None:
        return self._section(PhotoModelDecision, "photo_model_decision")

    def test_accuracy(self, litert_file: str | None) -> float | None:
        """The test accuracy the card records for `litert_file` (None: the Keras model's, which is also
        the answer for a file the card has no figure of)."""
        metrics = self.metrics
        of_file = {"tflite": metrics.tflite_test_accuracy, "tflite_int8": metrics.int8_test_accuracy}
        value = of_file.get(litert_file or "")
        return metrics.test_accuracy if value is None else value

    def conversion(self) -> dict[str, Any]:
        """The conversion settings this model's images were made with, keyed as PreprocessSettings'
        fields: only those the card records (the options resolver fills in the rest)."""
        prep = self.raw["preprocessing"]
        return {key: prep[key] for key in CONVERSION_KEYS if key in prep}

    def provenance(self, path: str | os.PathLike) -> Provenance:
        """What a model trained from this one (found at `path`) records about where it started."""
        training = self.training
        if training is None:
            raise ModelError(f"model card {self.path} has no training record to continue from")
        return Provenance(
            path=os.fspath(path),
            keras_sha256=self.files.get("keras", {}).get("sha256", ""),
            seed=training.seed,
            limit=training.limit,
            epochs_run=training.epochs_run,
            command=training.command,
            validation_accuracy=self.metrics.validation_accuracy,
            init_from=training.init_from,  # the whole lineage, not only the last step
        )

    def to_dict(self) -> dict[str, Any]:
        """A copy of the whole card, as its JSON holds it."""
        return copy.deepcopy(self.raw)

    # ------------------------------------------------------------------ derived cards

    def _with(self, **changes: Any) -> ModelCard:
        """A new card: this one's JSON with top-level keys replaced (None removes one), validated again."""
        raw = self.to_dict()
        for key, value in changes.items():
            if value is None:
                raw.pop(key, None)
            else:
                raw[key] = _plain(value)
        return ModelCard.from_dict(raw, self.path)

    def with_files(self, **names: str) -> ModelCard:
        """This card also naming the files `kind=file name` in its folder, with their sha256 now."""
        files = {**self.files}
        for kind, name in names.items():
            files[kind] = {"name": name, "sha256": file_sha256(self.path.parent / name)}
        return self._with(files=files)

    def with_metrics(self, **values: Any) -> ModelCard:
        """This card with these metrics added (names of `Metrics` fields) or replaced."""
        return self._with(metrics={**self.raw.get("metrics", {}), **Metrics(**values).to_dict()})

    def with_quantization(self, record: Quantization, litert_file: str) -> ModelCard:
        """This card with the int8 decision and the file LiteRT runs by default."""
        preprocessing = {**self.raw["preprocessing"], "litert_file": litert_file}
        return self._with(preprocessing=preprocessing, quantization=record)

    def with_photo_model(self, decision: PhotoModelDecision, photo: ModelCard | None) -> ModelCard:
        """This card with the pairing decision and, when attached, `photo` (a card written into the folder
        PHOTO_FOLDER beside this one) as its photo model; any earlier photo model is dropped."""
        card = self._with(photo_model=None, photo_model_decision=decision)
        if photo is None:
            return card
        entry = {
            "folder": PHOTO_FOLDER,
            "card_sha256": file_sha256(photo.path),
            "used_for": "photos the conversion segments (not one plain background colour at the border)",
        }
        return card._with(photo_model=entry)

    def write(self, folder: str | os.PathLike | None = None) -> ModelCard:
        """Write the card (into `folder`, default its own) atomically, absolute paths made portable;
        returns the card as written."""
        path = Path(folder) / CARD_FILE if folder is not None else self.path
        written = ModelCard.from_dict(_portable(self.raw), path)
        with atomic_write(path) as f:
            f.write(json.dumps(written.raw, indent=2) + "\n")
        return written


def build_card(
    folder: str | os.PathLike,
    *,
    files: Mapping[str, str],
    input_scale: float,
    input_offset: float,
    temperature: float,
    flip: FlipRecord,
    flip_below: float | None,
    flip_on: bool,
    conversion: Mapping[str, Any],
    metrics: Metrics,
    training: TrainingRecord,
    versions: Mapping[str, str],
    dataset_source: str | os.PathLike,
    dataset_sha256: Mapping[str, str],
) -> ModelCard:
    """A new card for the model files `files` (kind -> file name) in `folder` (not written yet)."""
    folder = Path(folder)
    unknown = set(conversion) - set(CONVERSION_KEYS)
    if unknown:
        raise ValueError(f"not conversion settings: {', '.join(sorted(unknown))}")
    raw = {
        "format": CARD_FORMAT,
        "class_names": list(CLASS_NAMES),
        "files": {kind: {"name": name, "sha256": file_sha256(folder / name)} for kind, name in files.items()},
        "preprocessing": {
            "image_size": IMAGE_SIZE,
            "input": "float32 (N, 28, 28, 1): uint8 pixel * input_scale + input_offset",
            "input_scale": input_scale,
            "input_offset": input_offset,
            "foreground": "bright garment on black background (Fashion-MNIST polarity)",
            "output": "logits; probabilities = softmax(logits / temperature)",
            "flip_average": flip_on,
            "flip_average_below": flip_below,
            **conversion,
        },
        "temperature": temperature,
        "flip_average": flip.to_dict(),
        "metrics": metrics.to_dict(),
        "training": training.to_dict(),
        "versions": dict(versions),
        "dataset": {"source": os.fspath(dataset_source), "sha256": dict(dataset_sha256)},
    }
    return ModelCard.from_dict(raw, folder / CARD_FILE)


def find_card(model: str | os.PathLike | None) -> Path:
    """The card for a model given as a folder, a model file (card beside it), a card, or None (bundled)."""
    path = Path(model) if model is not None else bundled_model_dir()
    if path.is_dir():
        return path / CARD_FILE
    if path.suffix == ".json":
        return path
    if not path.exists():
        raise ModelError(f"model not found: {path}")
    return path.parent / CARD_FILE


def bundled_model_dir() -> Path:
    """The model shipped with the package (``models/`` in the repo, ``fmnist_batch/models`` installed)."""
    package = Path(__file__).resolve().parent.parent
    installed = package / "models"
    if (installed / CARD_FILE).is_file():
        return installed
    return package.parent / "models"
