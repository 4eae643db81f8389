"""Exporting a trained model: the .keras and .tflite files (and the int8 one), the card that names them
and records how they were made and how well they do, built through fmnist_batch.model.card."""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmnist_batch import __version__
from fmnist_batch.model.card import Metrics, ModelCard, Quantization, TrainingRecord
from fmnist_batch.model.card_build import build_card
from fmnist_batch.training.augment import augmentation_record
from fmnist_batch.training.choose import Choice, int8_is_chosen, predict_logits
from fmnist_batch.training.config import (
    CALIBRATION_IMAGES,
    DATASET_CONVERSION,
    INPUT_OFFSET,
    INPUT_SCALE,
    INT8_FILE,
    INT8_TOLERANCE,
    KERAS_FILE,
    TFLITE_FILE,
    TrainConfig,
)
from fmnist_batch.training.data import Dataset
from fmnist_batch.training.fit import Fitted, save_keras
from fmnist_batch.training.measure import accuracy, keras_metrics, runtime_logits
from fmnist_batch.training.metrics import expected_calibration_error
from fmnist_batch.training.prepare import PhotoMix, Splits, to_model_input


@dataclass
class Trained:
    """A fitted model and what retrain knows about it when it exports it."""

    model: object
    config: TrainConfig
    splits: Splits
    fitted: Fitted
    choice: Choice
    source: ModelCard | None  # the --init-from model's card
    mix: PhotoMix | None
    photo_metrics: Metrics


def export_tflite(model, path: Path) -> None:
    """Convert with TensorFlow's converter (float32, no quantization: accuracy must match Keras)."""
    import tensorflow as tf

    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())


def export_tflite_int8(model, path: Path, calibration: np.ndarray) -> None:
    """Convert with int8 weights and activations (float input and output, so the runtime feeds it the same
    arrays); `calibration` (N, 28, 28, 1) float inputs set each activation's range."""
    import tensorflow as tf

    def representative():
        for start in range(0, len(calibration), 50):
            yield [calibration[start : start + 50]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    path.write_bytes(converter.convert())


def library_versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    versions = {
        "python": platform.python_version(),
        "fmnist_batch": __version__,
        "numpy": np.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    try:
        from importlib.metadata import version

        versions["ai_edge_litert"] = version("ai-edge-litert")
    except Exception:  # not installed: the card just lacks it
        pass
    return versions


def training_record(trained: Trained) -> TrainingRecord:
    """The card's training record. A re-export (--epochs 0) trained nothing: the settings that made its
    weights (augmentation, learning rate, batch size, real photos) are the source card's, carried on."""
    config, fitted = trained.config, trained.fitted
    source = trained.source.training if trained.source is not None else None
    inherited = source if source is not None and config.epochs == 0 else None
    extra = trained.mix.record if trained.mix is not None else None
    return TrainingRecord(
        epochs_requested=config.epochs,
        epochs_run=fitted.epochs_run,
        best_epoch=fitted.best_epoch,
        train_seconds=round(fitted.seconds, 1),
        train_images=len(trained.splits.x_train),
        seed=config.seed,
        batch_size=inherited.batch_size if inherited else config.batch_size,
        learning_rate=inherited.learning_rate if inherited else config.learning_rate,
        augmentation=inherited.augmentation if inherited else augmentation_record(config),
        parameters=int(trained.model.count_params()),
        command=" ".join(config.command),
        limit=config.limit,
        init_from=trained.source.provenance(config.init_from or "") if trained.source is not None else None,
        extra_data=extra if extra is not None or inherited is None else inherited.extra_data,
    )


def export(trained: Trained, dataset: Dataset, out: Path, log: Callable[[str], None]) -> ModelCard:
    """Write the model files and their card into `out`; the test set is read here, once."""
    model, choice = trained.model, trained.choice
    save_keras(model, out / KERAS_FILE, trained.config.seed)
    export_tflite(model, out / TFLITE_FILE)
    y_test = dataset.test.labels.astype(np.int32)
    test_logits = predict_logits(model, to_model_input(dataset.test.images), flip=choice.flip)
    metrics = keras_metrics(choice, trained.splits.y_val, test_logits, y_test, trained.photo_metrics)
    log(f"test accuracy {metrics.test_accuracy:.4f}")
    card = build_card(
        out,
        files={"tflite": TFLITE_FILE, "keras": KERAS_FILE},
        input_scale=INPUT_SCALE,
        input_offset=INPUT_OFFSET,
        temperature=choice.temperature,
        flip_on=choice.flip.on,
        flip_below=choice.flip.below,
        flip=choice.flip_record,
        conversion=DATASET_CONVERSION,
        metrics=metrics,
        training=training_record(trained),
        versions=library_versions(),
        dataset_source=dataset.source,
        dataset_sha256=dataset.file_hashes(),
    ).write()
    from fmnist_batch.model.runtime import litert_available

    if not litert_available():
        return card
    # The exported file is what classify runs: measure it too, through the same runtime.
    card = _measure_float_file(card, dataset, test_logits, log)
    if trained.config.quantize != "off":
        card = add_int8_file(card, trained, dataset, log)
    return card


def _measure_float_file(
    card: ModelCard, dataset: Dataset, keras_logits: np.ndarray, log: Callable[[str], None]
) -> ModelCard:
    tflite_logits = runtime_logits(card.path.parent, dataset.test.images, "float")
    card = card.with_metrics(
        tflite_test_accuracy=accuracy(tflite_logits, dataset.test.labels),
        tflite_max_logit_difference=float(np.abs(tflite_logits - keras_logits).max()),
    ).write()
    log(f"exported model.tflite: test accuracy {card.metrics.tflite_test_accuracy:.4f}")
    return card


def _calibration_images(x_train: np.ndarray, seed: int) -> np.ndarray:
    """A seeded sample of the training inputs, in their order, that sets the int8 activations' ranges."""
    chosen = np.random.default_rng(seed).choice(
        len(x_train), min(CALIBRATION_IMAGES, len(x_train)), replace=False
    )
    return x_train[np.sort(chosen)]


def add_int8_file(
    card: ModelCard, trained: Trained, dataset: Dataset, log: Callable[[str], None]
) -> ModelCard:
    """Export the int8 file beside the float one, measure both through the runtime (uint8 images, the
    card's flip averaging and temperature) on validation, and let the card choose which LiteRT runs; the
    test set is then measured for the record only."""
    out, splits, setting = card.path.parent, trained.splits, trained.config.quantize
    calibration = _calibration_images(splits.x_train, trained.config.seed)
    export_tflite_int8(trained.model, out / INT8_FILE, calibration)
    card = card.with_files(tflite_int8=INT8_FILE).write()  # the runtime loads the file through the card
    validation = {
        p: accuracy(runtime_logits(out, splits.val_images, p), splits.y_val) for p in ("float", "int8")
    }
    record = Quantization(
        setting=setting,
        method="int8 weights and activations, float input and output (TFLite converter, "
        f"Optimize.DEFAULT), calibrated on {len(calibration)} training images",
        tolerance=INT8_TOLERANCE,
        validation_accuracy_float=validation["float"],
        validation_accuracy_int8=validation["int8"],
    )
    use = int8_is_chosen(setting, validation["float"], validation["int8"])
    test_logits = runtime_logits(out, dataset.test.images, "int8")
    y_test = dataset.test.labels
    card = (
        card.with_quantization(record, "tflite_int8" if use else "tflite")
        .with_metrics(
            int8_test_accuracy=accuracy(test_logits, y_test),
            int8_test_ece=expected_calibration_error(test_logits, y_test, card.temperature),
        )
        .write()
    )
    log(
        f"int8 file: validation accuracy {validation['int8']:.4f} against {validation['float']:.4f} in "
        f"float: LiteRT runs the {'int8' if use else 'float'} file (test accuracy of the int8 file "
        f"{card.metrics.int8_test_accuracy:.4f})"
    )
    return card
