"""Loading the exported model and predicting batches of 28x28 images.

LiteRT (``ai-edge-litert``) runs the ``.tflite`` file without importing TensorFlow; the Keras model is the
fallback when LiteRT is not installed. Every model file is checked against the sha256 in its card first.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fmnist_batch.labels import CLASS_NAMES, IMAGE_SIZE
from fmnist_batch.model import litert, registry, run_settings
from fmnist_batch.model.card import (
    ModelCard,
    ModelError,
    find_card,
)
from fmnist_batch.model.garment_reader import GarmentReader
from fmnist_batch.model.logits import flip_averaged, softmax
from fmnist_batch.model.person_models import PersonFiles

if TYPE_CHECKING:
    from fmnist_batch.convert.settings import ConversionSettings as ConversionSettings
    from fmnist_batch.options import ClassifyOptions

BACKENDS = ("auto", "litert", "keras")
#: Which .tflite file LiteRT runs: the card's choice, the float one (the Keras model's exact twin) or the
#: int8-quantized one (about 4x faster on a CPU).
PRECISIONS = ("auto", "float", "int8")
_LITERT_FILES = {"float": "tflite", "int8": "tflite_int8"}
_PRECISION_OF_FILE = {file: precision for precision, file in _LITERT_FILES.items()}


def litert_available() -> bool:
    return importlib.util.find_spec("ai_edge_litert") is not None


def _import_keras():
    """Keras, or a ModelError saying what is wrong with it: a broken install (a TensorFlow that does not
    match, a half-upgraded package) raises anything at import, and a traceback tells a user nothing."""
    try:
        import keras
    except ImportError as e:
        raise ModelError(
            f"the keras backend needs Keras, which cannot be imported ({e}): "
            "pip install 'fmnist-batch[train]', or use --backend litert"
        ) from None
    except Exception as e:
        raise ModelError(
            f"Keras is installed but broken: importing it raised {type(e).__name__}: {e}; reinstall it "
            "(pip install --force-reinstall 'fmnist-batch[train]') or use --backend litert"
        ) from None
    return keras


def _litert_file(card: ModelCard, precision: str) -> str:
    """The card's files entry LiteRT runs at `precision`."""
    return card.litert_file if precision == "auto" else _LITERT_FILES[precision]


def _photo_precision(precision: str) -> str:
    # a photo model without an int8 file runs in float whatever the main model runs
    return precision if precision != "int8" else "auto"


class Model:
    """A loaded model: `predict_proba(uint8 (N, 28, 28)) -> float32 (N, 10)` calibrated probabilities.

    A card may name a photo model for the views of photos it reads better (`photo_views`: the segmented
    ones, and the worn ones when its pairing found so); its card and the file it would run are checked at
    load, so a tampered one fails before any photo is read, but it is loaded the first time predict_proba
    is given a row for it, so catalog folders never pay for it. `use_photo_model=False` ignores it.
    """

    def __init__(
        self,
        card: ModelCard,
        backend: str,
        num_threads: int | None = None,
        use_photo_model: bool = True,
        precision: str = "auto",
        use_garment_reader: bool = True,
        with_person: bool = True,
        use_scope_judge: bool = True,
    ):
        self.card = card
        self.backend = backend
        self._num_threads = num_threads
        self._precision = precision
        self._use_photo_model = use_photo_model and card.photo_model is not None
        self._photo_model: Model | None = None
        self._batch_size = 0
        if precision not in PRECISIONS:
            raise ModelError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
        if backend not in BACKENDS[1:]:
            raise ModelError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
        #: the card's files entry LiteRT runs; None with the Keras backend (always the float model)
        self.litert_file = _litert_file(card, precision) if backend == "litert" else None
        #: every model file this run may read, as the card declares it (registry.py); all checked here,
        #: before the first photo is read, and their sha256 recorded with the run's settings
        self._use_scope_judge = use_scope_judge and card.scope_judge is not None
        self._photo_card: ModelCard | None = None  # read (once, verified) by _declared
        self.declared = self._declared(use_garment_reader, with_person)
        for declared in self.declared:
            if declared.name != "photo card":  # _declared verified it before reading it
                registry.verify(declared)
        with_reader = use_garment_reader and card.garment_reader is not None
        self._garment_file = self.declared_path("garment reader") if with_reader else None
        self._garment_reader: GarmentReader | None = None
        if backend == "litert":
            self._init_litert(self.declared_path("main"), num_threads)
        else:
            self._init_keras(self.declared_path("main"))
        #: the precision that loads this same file again from the card (another process, a Ray actor)
        self.precision = _PRECISION_OF_FILE.get(self.litert_file or "", precision)

    def _declared(self, use_garment_reader: bool, with_person: bool) -> list[registry.DeclaredModel]:
        card = self.card
        declared = [registry.network(card, self.litert_file or "keras", "main")]
        if self._use_photo_model:
            photo = registry.photo_card(card)
            self._photo_card = photo_card = ModelCard.load(registry.verify(photo))
            kind = (
                _litert_file(photo_card, _photo_precision(self._precision)) if self.litert_file else "keras"
            )
            declared += [photo, registry.network(photo_card, kind, "photo")]
        if use_garment_reader and card.garment_reader is not None:
            declared.append(registry.garment_reader(card))
        if with_person:
            declared += registry.person_models(card)
        if self._use_scope_judge:
            declared += registry.scope_models(card)
        return declared

    def declared_path(self, name: str) -> Path:
        """Where the declared model `name` (registry.DeclaredModel.name) is, verified at load."""
        return next(d.path for d in self.declared if d.name == name)

    @property
    def model_hashes(self) -> dict[str, str]:
        """Each model file this run may read -> its sha256 (what --resume compares)."""
        return {d.name: d.sha256 for d in self.declared}

    def conversion_settings(self, options: ClassifyOptions) -> ConversionSettings:
        """How photos are converted for this model (model/run_settings.py)."""
        return run_settings.conversion_settings(self, options)

    @property
    def person_files(self) -> PersonFiles | None:
        """The person detectors' files, verified (None when this model runs without the person path)."""
        paths = {d.name: str(d.path) for d in self.declared if d.name.startswith("person ")}
        if not paths:
            return None
        return PersonFiles(face=paths["person face"], segment=paths["person segment"])

    @property
    def test_accuracy(self) -> float | None:
        """The Fashion-MNIST test accuracy the card records for the file this model runs (the Keras
        model's when the card has none for that file)."""
        return self.card.test_accuracy(self.litert_file)

    def _init_litert(self, path: Path, num_threads: int | None) -> None:
        try:
            self._interpreter = litert.interpreter(path, num_threads)
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"cannot load {path}: {e}") from None
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]

    def _init_keras(self, path: Path) -> None:
        keras = _import_keras()
        try:
            # safe_mode refuses models that would run arbitrary code (lambda layers) when loaded
            self._keras = keras.saving.load_model(path, compile=False, safe_mode=True)
        except Exception as e:  # Keras raises many types for a bad file
            raise ModelError(f"cannot load {path}: {e}") from None

    def to_input(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            raise ValueError(f"expected images of shape (N, {IMAGE_SIZE}, {IMAGE_SIZE}), got {images.shape}")
        x = images.astype(np.float32) * np.float32(self.card.input_scale) + np.float32(self.card.input_offset)
        return x[..., None]

    def predict_logits(self, images: np.ndarray) -> np.ndarray:
        x = self.to_input(images)
        if len(x) == 0:
            return np.zeros((0, len(CLASS_NAMES)), np.float32)
        logits = self._run(x)
        if not self.card.flip_average:
            return logits
        return flip_averaged(
            logits, lambda todo: self._run(x[todo][:, :, ::-1]), self.card.flip_average_below
        )

    def _run(self, x: np.ndarray) -> np.ndarray:
        if self.backend == "keras":
            return np.asarray(self._keras(x, training=False), dtype=np.float32)
        interpreter = self._interpreter
        if len(x) != self._batch_size:
            interpreter.resize_tensor_input(self._input, x.shape)
            with litert.native_stderr_silenced():  # the delegate is (re)built here
                interpreter.allocate_tensors()
            self._batch_size = len(x)
        interpreter.set_tensor(self._input, x)
        interpreter.invoke()
        return interpreter.get_tensor(self._output).copy()

    @property
    def photo_views(self) -> tuple[str, ...]:
        """The views (convert.VIEWS) whose rows go to the photo model; () when there is none in use."""
        return self.card.photo_views if self._use_photo_model else ()

    @property
    def photo_model(self) -> Model | None:
        """The card's model for segmented photos (loaded on first use), or None."""
        if not self._use_photo_model:
            return None
        if self._photo_model is None:
            assert self._photo_card is not None
            self._photo_model = Model(
                self._photo_card,
                self.backend,
                self._num_threads,
                use_photo_model=False,
                precision=_photo_precision(self._precision),
                use_garment_reader=False,
                with_person=False,
                use_scope_judge=False,
            )
        return self._photo_model

    @property
    def garment_reader(self) -> GarmentReader | None:
        """The card's colour reader of worn garments (loaded on first use; LiteRT whatever the backend),
        or None."""
        if self._garment_file is None:
            return None
        if self._garment_reader is None:
            classes = tuple(self.card.garment_reader["classes"])
            try:
                self._garment_reader = GarmentReader(self._garment_file, classes, self._num_threads)
            except (ValueError, RuntimeError) as e:
                raise ModelError(f"cannot load {self._garment_file}: {e}") from None
        return self._garment_reader

    @property
    def scope_judge_file(self) -> str | None:
        """The scope judge's file, verified (None when the card has none or it is not in use). The
        conversion runs the judge, in whichever process converts a photo (convert/scope.py)."""
        return str(self.declared_path("scope judge")) if self._use_scope_judge else None

    @property
    def scope_side(self) -> int:
        """The side of the picture the scope judge reads; 0 when no judge is in use."""
        return int(self.card.scope_judge["side"]) if self._use_scope_judge else 0

    def min_confidence(self, options: ClassifyOptions) -> float:
        """The confidence below which a row is "uncertain": the option, else the card's (chosen on
        labelled real photos: model_card.json's min_confidence), else 0."""
        if options.min_confidence is not None:
            return options.min_confidence
        record = self.card.uncertain_below
        return record.value if record is not None else 0.0

    def other_below(self, options: ClassifyOptions) -> float | None:
        """The in_scope below which a photo is answered "other": the option, else the card's operating
        point; None when no judge is in use (every photo gets one of the 10 classes)."""
        if not self._use_scope_judge:
            return None
        if options.other_threshold is not None:
            return options.other_threshold
        return float(self.card.scope_judge["threshold"])

    @property
    def has_garment_reader(self) -> bool:
        """Whether worn rows are also read by a garment reader (the card names one, and it is in use)."""
        return self._garment_file is not None

    @property
    def garment_weight(self) -> float:
        """How much the garment reader's answer counts in a worn row's (0: not at all, 1: alone)."""
        return float(self.card.garment_reader["weight"]) if self.card.garment_reader else 0.0

    def predict_proba(
        self,
        images: np.ndarray,
        to_photo_model: np.ndarray | None = None,
        logits: Sequence[np.ndarray | None] | None = None,
    ) -> np.ndarray:
        """Calibrated probabilities; rows where `to_photo_model` is set (see photo_views) go to the photo
        model, if there is one. `logits`: per image, this model's logits when already computed (the
        conversion's dataset reference runs this network's LiteRT file, convert/scope.py) or None."""
        images = np.asarray(images)
        if to_photo_model is None or not self._use_photo_model or not np.any(to_photo_model):
            return self._calibrated(images, logits)
        chosen = np.asarray(to_photo_model, dtype=bool)
        if chosen.shape != (len(images),):
            raise ValueError(f"to_photo_model must have one flag per image, got shape {chosen.shape}")
        out = np.empty((len(images), len(CLASS_NAMES)), np.float32)
        out[chosen] = self.photo_model._calibrated(images[chosen])
        if not chosen.all():
            main_rows = None if logits is None else [k for k, c in zip(logits, chosen, strict=True) if not c]
            out[~chosen] = self._calibrated(images[~chosen], main_rows)
        return out

    def _calibrated(self, images: np.ndarray, known: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
        return softmax(self._logits_reusing(images, known), self.card.temperature).astype(np.float32)

    def _logits_reusing(self, images: np.ndarray, known: Sequence[np.ndarray | None] | None) -> np.ndarray:
        """predict_logits, taking the rows `known` has from it: only under LiteRT, the runtime the
        conversion computed them with (Keras's float sums differ in the last bits)."""
        have = np.array([k is not None for k in known or ()], dtype=bool)
        if self.backend != "litert" or not have.any():
            return self.predict_logits(images)
        logits = np.empty((len(images), len(CLASS_NAMES)), np.float32)
        logits[have] = np.stack([k for k in known if k is not None])
        if not have.all():
            logits[~have] = self.predict_logits(images[~have])
        return logits


def load_model(
    model: str | os.PathLike | None = None,
    backend: str = "auto",
    num_threads: int | None = None,
    use_photo_model: bool = True,
    precision: str = "auto",
    use_garment_reader: bool = True,
    use_scope_judge: bool = True,
) -> Model:
    """Load a model (folder, file or card; default the bundled one) with LiteRT, or Keras as a fallback;
    `use_photo_model=False` classifies segmented photos with it too, ignoring the card's photo model;
    `precision` picks LiteRT's file (auto: the card's; the Keras fallback is always float);
    `use_garment_reader=False` reads worn garments without the card's garment reader;
    `use_scope_judge=False` gives every photo one of the 10 classes, without the card's scope judge."""
    card = ModelCard.load(find_card(model))
    if precision == "auto" and model is not None and Path(model).suffix == ".tflite":
        # a .tflite file named outright is the one to run
        named = {entry.get("name"): kind for kind, entry in card.files.items()}.get(Path(model).name)
        precision = _PRECISION_OF_FILE.get(named, "auto")
    if backend == "auto":
        if litert_available():
            backend = "litert"
        elif importlib.util.find_spec("keras") is not None:
            backend = "keras"
        else:
            raise ModelError(
                "no model runtime installed: pip install ai-edge-litert (or 'fmnist-batch[train]')"
            )
    return Model(
        card,
        backend,
        num_threads,
        use_photo_model,
        precision,
        use_garment_reader,
        use_scope_judge=use_scope_judge,
    )


def load_job_model(options: ClassifyOptions) -> Model:
    """The model the options name, every file its card names verified before a photo is read."""
    return load_model(
        options.model,
        options.backend,
        num_threads=1,
        use_photo_model=options.photo_model,
        use_garment_reader=options.garment_reader,
        precision=options.precision,
        use_scope_judge=options.other,
    )
