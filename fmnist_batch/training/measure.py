"""The figures a model card records: validation and the test set (read once, after everything was chosen),
the held-out real photos, and the exported files measured through the runtime classify uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fmnist_batch.model.card import Metrics
from fmnist_batch.training.choose import Choice, FlipAverage, predict_logits
from fmnist_batch.training.metrics import classification_report, confusion_matrix, expected_calibration_error
from fmnist_batch.training.prepare import PhotoMix

#: images per runtime call when measuring an exported file
_CHUNK = 1000


def keras_metrics(
    choice: Choice, y_val: np.ndarray, test_logits: np.ndarray, y_test: np.ndarray, photos: Metrics
) -> Metrics:
    """The card's metrics of the Keras model: validation, test (with and without the temperature), and
    those of the held-out real photos (`photos`)."""
    test_pred = test_logits.argmax(1)
    return Metrics(
        validation_accuracy=choice.validation_accuracy(y_val),
        validation_size=len(y_val),
        test_accuracy=float(np.mean(test_pred == y_test)),
        test_size=len(y_test),
        test_ece_uncalibrated=expected_calibration_error(test_logits, y_test, 1.0),
        test_ece=expected_calibration_error(test_logits, y_test, choice.temperature),
        test_per_class=classification_report(y_test, test_pred),
        test_confusion_matrix=confusion_matrix(y_test, test_pred).tolist(),
        real_photo_validation_accuracy=photos.real_photo_validation_accuracy,
        real_photo_validation_balanced_accuracy=photos.real_photo_validation_balanced_accuracy,
        real_photo_validation_size=photos.real_photo_validation_size,
        real_photo_validation_per_folder=photos.real_photo_validation_per_folder,
    )


def photo_metrics(model, mix: PhotoMix | None, flip: FlipAverage) -> Metrics:
    """The metrics of the held-out real photos: overall, mean over folders, per folder (none without)."""
    if mix is None or not len(mix.x_photo_val):
        return Metrics()
    from fmnist_batch.training.labelled_photos import accepted_accuracy

    logits = predict_logits(model, mix.x_photo_val, flip=flip)
    per_folder = {
        name: accepted_accuracy(
            logits[mix.folder_photo_val == row], mix.accepted_photo_val[mix.folder_photo_val == row]
        )
        for row, name in enumerate(mix.folder_names)
        if np.any(mix.folder_photo_val == row)
    }
    return Metrics(
        real_photo_validation_accuracy=accepted_accuracy(logits, mix.accepted_photo_val),
        real_photo_validation_balanced_accuracy=float(np.mean(list(per_folder.values()))),
        real_photo_validation_size=len(logits),
        real_photo_validation_per_folder=per_folder,
    )


def runtime_logits(folder: Path, images: np.ndarray, precision: str) -> np.ndarray:
    """Logits of uint8 images through LiteRT as classify runs the folder's file of `precision` (the card's
    flip averaging included; its photo model, if any, left out)."""
    from fmnist_batch.model.runtime import load_model

    runtime = load_model(folder, backend="litert", precision=precision, use_photo_model=False)
    return np.concatenate(
        [runtime.predict_logits(images[i : i + _CHUNK]) for i in range(0, len(images), _CHUNK)]
    )


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(logits.argmax(1) == labels))
