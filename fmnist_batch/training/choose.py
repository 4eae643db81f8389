"""What retrain decides on the validation split, never on the test set: flip averaging and its gate, the
softmax temperature, and whether LiteRT runs the int8 file."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fmnist_batch.model.card import FlipRecord
from fmnist_batch.model.logits import FLIP_GATES, flip_averaged, top_probability
from fmnist_batch.training.config import INT8_TOLERANCE
from fmnist_batch.training.metrics import fit_temperature


@dataclass(frozen=True)
class FlipAverage:
    """How inference combines an image with its mirror image (the card's preprocessing.flip_average and
    flip_average_below)."""

    on: bool = False
    below: float | None = None  # mirror only images less sure than this; None: every image

    def describe(self) -> str:
        if not self.on:
            return "off"
        return "on, every image" if self.below is None else f"on, images below {self.below:g} confidence"


def predict_logits(
    model, x: np.ndarray, batch_size: int = 1024, flip: FlipAverage = FlipAverage()
) -> np.ndarray:
    """Keras logits of (N, 28, 28, 1) inputs, flip-averaged as the runtime does for a card that says so."""
    logits = np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float64)
    if not flip.on:
        return logits

    def mirrored(todo: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(x[todo][:, :, ::-1], batch_size=batch_size, verbose=0), np.float64)

    return flip_averaged(logits, mirrored, flip.below)


def choose_flip_average(
    setting: str, model, x_val: np.ndarray, y_val: np.ndarray
) -> tuple[FlipAverage, FlipRecord, np.ndarray]:
    """How inference uses the mirror image, the validation accuracies that decided it, and the validation
    logits as inference will compute them. The dataset's garments face either way (training flips them
    too), so the mirror image is a second look at the same garment; it is needed only where the first look
    is unsure, so "on" and "auto" mirror only images below the first gate of FLIP_GATES that is as accurate
    on validation as mirroring all ("all" mirrors every image)."""
    single = predict_logits(model, x_val)
    mirror = predict_logits(model, x_val[:, :, ::-1])

    def accuracy(logits: np.ndarray) -> float:
        return float(np.mean(logits.argmax(1) == y_val))

    averaged = (single + mirror) / 2
    record = FlipRecord(
        setting=setting,
        validation_accuracy_single=accuracy(single),
        validation_accuracy_flip=accuracy(averaged),
    )
    if setting == "auto":
        on = record.validation_accuracy_flip > record.validation_accuracy_single
    else:
        on = setting != "off"
    if not on:
        return FlipAverage(), record, single
    if setting == "all":
        return FlipAverage(True), record, averaged
    for gate in FLIP_GATES:
        gated = flip_averaged(single, lambda todo: mirror[todo], gate)
        if accuracy(gated) >= record.validation_accuracy_flip:
            record = dataclasses.replace(
                record,
                validation_accuracy_gated=accuracy(gated),
                below=gate,
                validation_mirrored_share=float(np.mean(top_probability(single) < gate)),
            )
            return FlipAverage(True, gate), record, gated
    return FlipAverage(True), record, averaged


@dataclass
class Choice:
    """Everything chosen on validation, and the validation logits as inference computes them."""

    flip: FlipAverage
    flip_record: FlipRecord
    temperature: float
    val_logits: np.ndarray

    def validation_accuracy(self, y_val: np.ndarray) -> float:
        return float(np.mean(self.val_logits.argmax(1) == y_val))


def choose_on_validation(
    model, setting: str, x_val: np.ndarray, y_val: np.ndarray, log: Callable[[str], None]
) -> Choice:
    """Flip averaging, then the temperature of the logits inference will compute."""
    flip, record, val_logits = choose_flip_average(setting, model, x_val, y_val)
    choice = Choice(flip, record, fit_temperature(val_logits, y_val), val_logits)
    log(
        f"validation accuracy {choice.validation_accuracy(y_val):.4f} "
        f"(single view {record.validation_accuracy_single:.4f}, averaged with the mirror image "
        f"{record.validation_accuracy_flip:.4f}: flip averaging {flip.describe()}); "
        f"temperature {choice.temperature:.3f}"
    )
    return choice


def int8_is_chosen(setting: str, accuracy_float: float, accuracy_int8: float) -> bool:
    """Whether LiteRT runs the int8 file: always with "on"; with "auto" when its validation accuracy
    through the runtime is within INT8_TOLERANCE of the float file's."""
    return setting == "on" or accuracy_int8 >= accuracy_float - INT8_TOLERANCE


#: the confidences uncertain_below tries: a coarse grid, so a few hundred labelled photos choose it
UNCERTAIN_GRID = tuple(round(0.05 * i, 2) for i in range(1, 20))


def uncertain_below(confidence: np.ndarray, correct: np.ndarray) -> tuple[float, float, float]:
    """The default --min-confidence: the largest confidence on UNCERTAIN_GRID below which the answers
    are, together, right less often than wrong (0 when none is); with their accuracy and share."""
    confidence, correct = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=bool)
    chosen, accuracy, share = 0.0, float("nan"), 0.0
    for value in UNCERTAIN_GRID:
        below = confidence < value
        if below.any() and correct[below].mean() < 0.5:
            chosen, accuracy, share = value, float(correct[below].mean()), float(below.mean())
    return chosen, accuracy, share
