"""The model card: the JSON file beside a model's files that says how to run them and how they were made.

Only this module and its two companions know the card's keys: card_checks.py validates a card before
anything trusts it, card_build.py makes a new one from typed records. Here a card is read
(`ModelCard.load`), derived from another (the ``with_*`` methods: cards are never edited in place) and
written atomically (`ModelCard.write`); everything else uses the typed accessors (`metrics`, `training`,
`conversion_settings()`, the declared models' files, ...).
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fmnist_batch.files import atomic_write
from fmnist_batch.model.card_checks import (  # noqa: F401 (the card's constants are part of its face)
    CARD_FORMAT,
    PERSON_MODELS,
    PHOTO_VIEW_USES,
    PHOTO_VIEWS,
    SEGMENTED_ONLY,
    SUPPORTED_FORMATS,
    ModelError,
    check_dataset_reference,
    check_files,
    check_format,
    check_garment_reader,
    check_person_models,
    check_photo_model,
    check_preprocessing,
    check_scope_judge,
    check_temperature,
    verified_file,
)
from fmnist_batch.model.card_records import (  # the records are part of the card's face
    FlipRecord,
    Metrics,
    PhotoModelDecision,
    Provenance,
    Quantization,
    R,
    TrainingRecord,
    UncertainBelow,
    WornDecision,
    _plain,
    _portable,
    file_sha256,
)

CARD_FILE = "model_card.json"
#: the training curves retrain writes beside the model files (not needed for inference)
HISTORY_FILE = "history.csv"
#: The photo model's files go into this subfolder of a paired model.
PHOTO_FOLDER = "photo"
#: the bundled model's folder of person detectors, which a card may name instead of bringing its own
PERSON_FOLDER = "person"
#: the keys of the card's preprocessing block that are conversion settings, named as the fields of
#: fmnist_batch.convert.ConversionSettings (which the options resolver builds from `conversion()`)
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
    #: a second model for the views of photos it reads best: {"folder", "card_sha256", "views"}
    photo_model: dict[str, Any] | None = None
    #: a colour model that joins the answer for worn garments: {"folder", "file", "sha256", "classes",
    #: "weight"} (model/garment_reader.py)
    garment_reader: dict[str, Any] | None = None
    #: the person path's detectors: their folder (or the bundled ones) and each file's sha256
    person_models: dict[str, Any] | None = None
    #: the judge of whether a photo shows one of the 10 classes at all: {"folder", "file", "sha256",
    #: "side", "threshold", ...} (model/scope_judge.py)
    scope_judge: dict[str, Any] | None = None
    #: the main network's logits for its training images, by which a catalog shot that reads as a dataset
    #: image is not judged, its in_scope from its distance: {"folder", "file", "sha256", "radius",
    #: "network_sha256", ...} (model/dataset_reference.py)
    dataset_reference: dict[str, Any] | None = None
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
            check_format(raw)
            files = check_files(raw["files"])
            return cls(
                path=path,
                class_names=tuple(raw["class_names"]),
                temperature=check_temperature(raw["temperature"]),
                files=files,
                raw=raw,
                photo_model=check_photo_model(raw.get("photo_model")),
                garment_reader=check_garment_reader(raw.get("garment_reader")),
                person_models=check_person_models(raw.get("person_models")),
                scope_judge=check_scope_judge(raw.get("scope_judge")),
                dataset_reference=check_dataset_reference(raw.get("dataset_reference")),
                **check_preprocessing(raw["preprocessing"], files),
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

    def person_file(self, name: str) -> Path:
        """Where the person detector `name` (PERSON_MODELS) is: in the card's folder of them, or the
        bundled model's when the card says it uses those, or when it says nothing (a card from before the
        entry: the bundled card's entry then holds the sha256 to check)."""
        entry = self.person_models
        if entry is None:
            return ModelCard.load(bundled_model_dir() / CARD_FILE).person_file(name)
        folder = (
            bundled_model_dir() / PERSON_FOLDER
            if entry.get("bundled")
            else self.path.parent / entry["folder"]
        )
        return folder / entry[name]["file"]

    def person_sha256(self, name: str) -> str:
        """The sha256 the person detector `name` must have."""
        if self.person_models is None:
            return ModelCard.load(bundled_model_dir() / CARD_FILE).person_sha256(name)
        return self.person_models[name]["sha256"]

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
    def licence(self) -> str:
        """The licence of the networks this card describes (a card without one: the project's)."""
        return str(self.raw.get("licence", "MIT (trained on Fashion-MNIST, MIT)"))

    @property
    def input_description(self) -> str:
        """What the networks take, in words (the preprocessing block's input)."""
        return str(self.raw["preprocessing"].get("input", ""))

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

    @property
    def worn_decision(self) -> WornDecision | None:
        return self._section(WornDecision, "worn_decision")

    @property
    def uncertain_below(self) -> UncertainBelow | None:
        """How the default --min-confidence was chosen (None: a card without one: 0)."""
        return self._section(UncertainBelow, "min_confidence")

    def with_uncertain_below(self, record: UncertainBelow) -> ModelCard:
        """This card with `record` as its default --min-confidence."""
        return self._with(min_confidence=record)

    @property
    def photo_views(self) -> tuple[str, ...]:
        """The views (convert.VIEWS) of the photos the photo model reads; () without one. A card from
        before the key gives it the segmented photos only."""
        if self.photo_model is None:
            return ()
        return tuple(self.photo_model.get("views", SEGMENTED_ONLY))

    def test_accuracy(self, litert_file: str | None) -> float | None:
        """The test accuracy the card records for `litert_file` (None: the Keras model's, which is also
        the answer for a file the card has no figure of)."""
        metrics = self.metrics
        of_file = {"tflite": metrics.tflite_test_accuracy, "tflite_int8": metrics.int8_test_accuracy}
        value = of_file.get(litert_file or "")
        return metrics.test_accuracy if value is None else value

    def conversion_settings(self) -> dict[str, Any]:
        """The conversion settings this model's images were made with, keyed as ConversionSettings'
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

    def with_photo_model(
        self, decision: PhotoModelDecision, photo: ModelCard | None, worn: WornDecision | None = None
    ) -> ModelCard:
        """This card with the pairing decisions and, when attached, `photo` (a card written into the folder
        PHOTO_FOLDER beside this one) as its photo model for the segmented photos, and for the worn ones
        when `worn` says it reads them better; any earlier photo model is dropped."""
        card = self._with(photo_model=None, photo_model_decision=decision, worn_decision=worn)
        if photo is None:
            return card
        views = list(PHOTO_VIEWS if worn is not None and worn.read_by == "photo" else SEGMENTED_ONLY)
        entry = {
            "folder": PHOTO_FOLDER,
            "card_sha256": file_sha256(photo.path),
            "views": views,
            "used_for": " and ".join(PHOTO_VIEW_USES[view] for view in views),
        }
        return card._with(photo_model=entry)

    def with_garment_reader(self, folder: str, file: str, **entry: Any) -> ModelCard:
        """This card naming `folder/file` (beside the card) as its garment reader, with its sha256 now;
        `entry` holds the rest of the entry (classes, weight, where it comes from)."""
        sha256 = file_sha256(self.path.parent / folder / file)
        return self._with(garment_reader={"folder": folder, "file": file, "sha256": sha256, **entry})

    def write(self, folder: str | os.PathLike | None = None) -> ModelCard:
        """Write the card (into `folder`, default its own) atomically, absolute paths made portable;
        returns the card as written."""
        path = Path(folder) / CARD_FILE if folder is not None else self.path
        written = ModelCard.from_dict(_portable(self.raw), path)
        with atomic_write(path) as f:
            f.write(json.dumps(written.raw, indent=2) + "\n")
        return written


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
    """The models shipped with the package (``models/`` in the repo, ``fmnist_batch/bundled`` installed)."""
    package = Path(__file__).resolve().parent.parent
    installed = package / "bundled"
    if (installed / CARD_FILE).is_file():
        return installed
    return package.parent / "models"
