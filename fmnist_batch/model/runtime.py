"""Loading the exported model and predicting batches of 28x28 images.

LiteRT (``ai-edge-litert``) runs the ``.tflite`` file without importing TensorFlow; the Keras model is the
fallback when LiteRT is not installed. Every model file is checked against the sha256 in its card first.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fmnist_batch.labels import CLASS_NAMES, IMAGE_SIZE

CARD_FILE = "model_card.json"
#: the training curves retrain writes beside the model files (not needed for inference)
HISTORY_FILE = "history.csv"
BACKENDS = ("auto", "litert", "keras")
#: Which .tflite file LiteRT runs: the card's choice, the float one (the Keras model's exact twin) or the
#: int8-quantized one (about 4x faster on a CPU).
PRECISIONS = ("auto", "float", "int8")
_LITERT_FILES = {"float": "tflite", "int8": "tflite_int8"}
_PRECISION_OF_FILE = {file: precision for precision, file in _LITERT_FILES.items()}
#: where the card records each LiteRT file's test accuracy (the Keras model's is "test_accuracy")
_TEST_ACCURACY_KEYS = {"tflite": "tflite_test_accuracy", "tflite_int8": "int8_test_accuracy"}
#: Confidence gates tried for flip averaging, in order (retrain takes the first that is as accurate on
#: validation as mirroring every image): the mirror image is classified only when the image alone is less
#: sure than this, which the dataset's easy majority never is.
FLIP_GATES = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


def write_card(folder: Path, card: dict) -> None:
    """Write a model card into its model folder, as retrain and pair-photo-model do."""
    (folder / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")


class ModelError(Exception):
    """The model cannot be used: missing, truncated, tampered with, or its card is broken."""


def bundled_model_dir() -> Path:
    """The model shipped with the package (``models/`` in the repo, ``fmnist_batch/models`` installed)."""
    package = Path(__file__).resolve().parent.parent
    installed = package / "models"
    if (installed / CARD_FILE).is_file():
        return installed
    return package.parent / "models"


@dataclass(frozen=True)
class ModelCard:
    """What inference needs from a model card; `raw` keeps the whole card for reports and the API."""

    path: Path
    class_names: tuple[str, ...]
    input_scale: float
    input_offset: float
    temperature: float
    files: dict[str, dict[str, str]]
    raw: dict[str, Any]
    #: logits are the mean of the image's and its mirror image's (cards before this setting: no) ...
    flip_average: bool = False
    #: ... for images whose own top softmax probability is below this; None: for every image
    flip_average_below: float | None = None
    #: a second model for photos the conversion segmented: {"folder": ..., "card_sha256": ...}
    photo_model: dict[str, str] | None = None
    #: the files entry LiteRT runs by default ("tflite" or "tflite_int8"; cards before int8: "tflite")
    litert_file: str = "tflite"

    @classmethod
    def load(cls, path: Path) -> ModelCard:
        try:
            raw = json.loads(path.read_text())
            prep = raw["preprocessing"]
            card = cls(
                path=path,
                class_names=tuple(raw["class_names"]),
                input_scale=float(prep["input_scale"]),
                input_offset=float(prep["input_offset"]),
                temperature=float(raw.get("temperature", 1.0)),
                files=raw["files"],
                raw=raw,
                flip_average=bool(prep.get("flip_average", False)),
                flip_average_below=(
                    float(prep["flip_average_below"]) if prep.get("flip_average_below") is not None else None
                ),
                photo_model=raw.get("photo_model"),
                litert_file=str(prep.get("litert_file", "tflite")),
            )
        except FileNotFoundError:
            raise ModelError(f"model card not found: {path}") from None
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ModelError(f"model card {path} is unreadable or incomplete ({e!r})") from None
        if card.class_names != CLASS_NAMES:
            raise ModelError(
                f"model card {path} lists other classes than Fashion-MNIST's: {card.class_names}"
            )
        if card.temperature <= 0:
            raise ModelError(f"model card {path}: temperature must be positive, got {card.temperature}")
        if card.photo_model is not None and not {"folder", "card_sha256"} <= set(card.photo_model):
            raise ModelError(f"model card {path}: photo_model needs a folder and a card_sha256")
        return card

    def photo_card(self) -> Path:
        """The photo model's card, after checking it is the one this card was exported with."""
        assert self.photo_model is not None
        path = self.path.parent / self.photo_model["folder"] / CARD_FILE
        if not path.is_file():
            raise ModelError(f"model card {self.path} names a photo model, but {path} is missing")
        if hashlib.sha256(path.read_bytes()).hexdigest() != self.photo_model["card_sha256"]:
            raise ModelError(
                f"{path} is not the photo model {self.path} was exported with (its sha256 differs)"
            )
        return path

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
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != expected:
            raise ModelError(
                f"{path} does not match its model card (sha256 {digest[:12]}..., "
                f"card says {expected[:12]}...): the file is truncated, corrupted or was replaced; "
                "re-export it with `fmnist-batch retrain`"
            )
        return path


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


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """LiteRT's C++ code logs "Created TensorFlow Lite XNNPACK delegate" straight to file descriptor 2;
    a quiet run from cron must not mail that. Python-level errors still reach the caller as exceptions."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def litert_available() -> bool:
    return importlib.util.find_spec("ai_edge_litert") is not None


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Probabilities (float64) of rows of logits divided by `temperature` (the card's calibration)."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def top_probability(logits: np.ndarray) -> np.ndarray:
    """The largest softmax probability of each row of logits (temperature 1)."""
    return softmax(logits).max(axis=-1)


def flip_averaged(
    logits: np.ndarray, mirrored: Callable[[np.ndarray], np.ndarray], below: float | None
) -> np.ndarray:
    """`logits` of single views, with each image whose top probability is below `below` (every image when
    None) replaced by the mean of its logits and its mirror image's; `mirrored(indices)` returns those.
    Retrain and the runtime both compute flip averaging here, so the card's figures are the runtime's."""
    todo = np.arange(len(logits)) if below is None else np.flatnonzero(top_probability(logits) < below)
    out = logits.copy()
    if len(todo):
        out[todo] = (logits[todo] + mirrored(todo)) / 2
    return out


class Model:
    """A loaded model: `predict_proba(uint8 (N, 28, 28)) -> float32 (N, 10)` calibrated probabilities.

    A card may name a photo model for the photos the conversion segmented; it is loaded the first time
    predict_proba is told of one, so catalog folders never pay for it. `use_photo_model=False` ignores it.
    """

    def __init__(
        self,
        card: ModelCard,
        backend: str,
        num_threads: int | None = None,
        use_photo_model: bool = True,
        precision: str = "auto",
    ):
        self.card = card
        self.backend = backend
        self._num_threads = num_threads
        self._precision = precision
        self._use_photo_model = use_photo_model and card.photo_model is not None
        self._photo_model: Model | None = None
        self._photo_card = card.photo_card() if self._use_photo_model else None  # a wrong one fails now
        self._batch_size = 0
        if precision not in PRECISIONS:
            raise ModelError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
        #: the card's files entry LiteRT runs; None with the Keras backend (always the float model)
        self.litert_file: str | None = None
        if backend == "litert":
            self.litert_file = card.litert_file if precision == "auto" else _LITERT_FILES[precision]
            self._init_litert(card.verify(self.litert_file), num_threads)
        elif backend == "keras":
            self._init_keras(card.verify("keras"))
        else:
            raise ModelError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
        #: the precision that loads this same file again from the card (another process, a Ray actor)
        self.precision = _PRECISION_OF_FILE.get(self.litert_file or "", precision)

    @property
    def test_accuracy(self) -> float | None:
        """The Fashion-MNIST test accuracy the card records for the file this model runs (the Keras
        model's when the card has none for that file)."""
        metrics = self.card.raw.get("metrics") or {}
        key = _TEST_ACCURACY_KEYS.get(self.litert_file or "", "test_accuracy")
        value = metrics.get(key, metrics.get("test_accuracy"))
        return None if value is None else float(value)

    def _init_litert(self, path: Path, num_threads: int | None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        try:
            with _native_stderr_silenced():
                self._interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"cannot load {path}: {e}") from None
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]

    def _init_keras(self, path: Path) -> None:
        import keras

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
            with _native_stderr_silenced():  # the delegate is (re)built here
                interpreter.allocate_tensors()
            self._batch_size = len(x)
        interpreter.set_tensor(self._input, x)
        interpreter.invoke()
        return interpreter.get_tensor(self._output).copy()

    @property
    def photo_model(self) -> Model | None:
        """The card's model for segmented photos (loaded on first use), or None."""
        if not self._use_photo_model:
            return None
        if self._photo_model is None:
            card = ModelCard.load(self._photo_card)
            self._photo_model = Model(
                card,
                self.backend,
                self._num_threads,
                use_photo_model=False,
                precision=self._photo_precision(),
            )
        return self._photo_model

    def _photo_precision(self) -> str:
        # a photo model without an int8 file runs in float whatever the main model runs
        return self._precision if self._precision != "int8" else "auto"

    def predict_proba(self, images: np.ndarray, segmented: np.ndarray | None = None) -> np.ndarray:
        """Calibrated probabilities; rows where `segmented` is set go to the photo model, if there is one."""
        if segmented is None or not self._use_photo_model or not np.any(segmented):
            return self._calibrated(images)
        images, segmented = np.asarray(images), np.asarray(segmented, dtype=bool)
        if segmented.shape != (len(images),):
            raise ValueError(f"segmented must have one flag per image, got shape {segmented.shape}")
        out = np.empty((len(images), len(CLASS_NAMES)), np.float32)
        out[segmented] = self.photo_model._calibrated(images[segmented])
        if not segmented.all():
            out[~segmented] = self._calibrated(images[~segmented])
        return out

    def _calibrated(self, images: np.ndarray) -> np.ndarray:
        return softmax(self.predict_logits(images), self.card.temperature).astype(np.float32)


def load_model(
    model: str | os.PathLike | None = None,
    backend: str = "auto",
    num_threads: int | None = None,
    use_photo_model: bool = True,
    precision: str = "auto",
) -> Model:
    """Load a model (folder, file or card; default the bundled one) with LiteRT, or Keras as a fallback;
    `use_photo_model=False` classifies segmented photos with it too, ignoring the card's photo model;
    `precision` picks LiteRT's file (auto: the card's; the Keras fallback is always float)."""
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
    return Model(card, backend, num_threads, use_photo_model, precision)
