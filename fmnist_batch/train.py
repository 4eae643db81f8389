"""Training: the CNN, augmentation, early stopping, evaluation, calibration and export.

Imports TensorFlow/Keras lazily inside functions, so importing this module stays cheap and a missing
``[train]`` extra is reported by the CLI, not as an ImportError at start-up.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .data import Dataset, sha256_file
from .labels import CLASS_NAMES, IMAGE_SIZE, NUM_CLASSES
from .metrics import classification_report, confusion_matrix, expected_calibration_error, fit_temperature

KERAS_FILE = "model.keras"
TFLITE_FILE = "model.tflite"
CARD_FILE = "model_card.json"
HISTORY_FILE = "history.csv"

#: How inference must turn a 28x28 uint8 image (garment bright on black) into the model's input.
INPUT_SCALE = 1.0 / 255.0
INPUT_OFFSET = 0.0


class TrainSetupError(Exception):
    """Training settings that cannot work together, found before any training."""


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 256
    patience: int = 5
    seed: int = 42
    limit: int | None = None
    #: "full": every augmentation below; "light": flips and shifts only (a fine-tuning pass closer to the
    #: images as the test set has them); "none"
    augment: str = "full"
    #: start from this model folder's weights (same architecture, same seed: the same validation split)
    init_from: str | None = None
    val_size: int = 5000
    learning_rate: float = 3e-3
    # augmentation strengths (fractions as Keras' random layers take them)
    rotation: float = 0.015  # of a full turn: about +-5 degrees
    shift: float = 0.08  # about +-2 pixels
    erase_prob: float = 0.25
    command: list[str] = field(default_factory=lambda: list(sys.argv))


def stratified_split(labels: np.ndarray, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): val holds val_size images with every class in its dataset proportion."""
    rng = np.random.default_rng(seed)
    val_parts = []
    for cls in range(NUM_CLASSES):
        idx = np.flatnonzero(labels == cls)
        take = round(val_size * len(idx) / len(labels))
        val_parts.append(rng.choice(idx, size=take, replace=False))
    val = np.sort(np.concatenate(val_parts))
    train = np.setdiff1d(np.arange(len(labels)), val)
    return rng.permutation(train), val


def subset(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """A stratified random subset of `limit` indices, for quick runs."""
    _, idx = stratified_split(labels, min(limit, len(labels)), seed)
    return idx


def to_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) scaled as the model card says."""
    return (images.astype(np.float32) * INPUT_SCALE + INPUT_OFFSET)[..., None]


def build_model(seed: int = 42):
    """A 3-block VGG-style CNN with batch normalization and dropout; outputs logits."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)

    def conv(x, filters):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x)

    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name="image")
    # One convolution at full resolution: a second one there would double the training cost on CPU,
    # where a second one at 7x7 costs a sixth of an epoch and lifts accuracy about as much.
    x = conv(inputs, 32)
    x = layers.MaxPooling2D()(x)
    x = layers.Dropout(0.1)(x)
    x = conv(x, 64)
    x = conv(x, 64)
    x = layers.MaxPooling2D()(x)
    x = layers.Dropout(0.2)(x)
    x = conv(x, 128)
    x = conv(x, 128)
    x = layers.MaxPooling2D()(x)
    x = layers.Dropout(0.3)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(256, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.Dropout(0.4)(x)
    logits = layers.Dense(NUM_CLASSES, name="logits")(x)
    return keras.Model(inputs, logits, name="fmnist_cnn")


def make_augment(config: TrainConfig) -> Callable:
    """A batch-wise augmentation: flips, shifts and small rotations, then random erasing."""
    import keras
    import tensorflow as tf
    from keras import layers

    full = config.augment == "full"
    # fill with 0: the dataset's background after negation is black
    steps = [
        layers.RandomFlip("horizontal", seed=config.seed),
        # nearest: whole-pixel shifts keep the images as sharp as the test images (bilinear blurs them)
        layers.RandomTranslation(
            config.shift, config.shift, fill_mode="constant", interpolation="nearest", seed=config.seed + 2
        ),
    ]
    if full:
        steps.append(layers.RandomRotation(config.rotation, fill_mode="constant", seed=config.seed + 1))
    geometric = keras.Sequential(steps, name="augment")

    def random_erasing(images):
        # Zhong et al. 2017: blank a random rectangle (2-20% of the area) in a fraction of the images.
        n = tf.shape(images)[0]
        area = tf.random.uniform([n], 0.02, 0.2) * IMAGE_SIZE * IMAGE_SIZE
        ratio = tf.exp(tf.random.uniform([n], np.log(0.3), np.log(3.3)))
        h = tf.clip_by_value(tf.sqrt(area * ratio), 1.0, IMAGE_SIZE)
        w = tf.clip_by_value(tf.sqrt(area / ratio), 1.0, IMAGE_SIZE)
        y0 = tf.random.uniform([n]) * (IMAGE_SIZE - h)
        x0 = tf.random.uniform([n]) * (IMAGE_SIZE - w)
        grid = tf.range(IMAGE_SIZE, dtype=tf.float32)
        rows = (grid[None, :] >= y0[:, None]) & (grid[None, :] < (y0 + h)[:, None])
        cols = (grid[None, :] >= x0[:, None]) & (grid[None, :] < (x0 + w)[:, None])
        apply = tf.random.uniform([n]) < config.erase_prob
        mask = rows[:, :, None] & cols[:, None, :] & apply[:, None, None]
        noise = tf.random.uniform(tf.shape(images))
        return tf.where(mask[..., None], noise, images)

    def augment(images, labels):
        images = geometric(images, training=True)
        return (random_erasing(images) if full else images), labels

    return augment


def _datasets(x_train, y_train, x_val, y_val, config: TrainConfig):
    import tensorflow as tf

    train = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=config.seed, reshuffle_each_iteration=True)
        .batch(config.batch_size)
    )
    if config.augment != "none":
        train = train.map(make_augment(config), num_parallel_calls=tf.data.AUTOTUNE)
    train = train.prefetch(tf.data.AUTOTUNE)
    val = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(512)
    return train, val


def export_tflite(model, path: Path) -> None:
    """Convert with TensorFlow's converter (float32, no quantization: accuracy must match Keras)."""
    import tensorflow as tf

    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())


def save_keras(model, path: Path, seed: int) -> None:
    """Save the weights in a fresh, uncompiled copy: the optimizer state would triple the file."""
    clean = build_model(seed)
    clean.set_weights(model.get_weights())
    clean.save(path)


def predict_logits(model, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float64)


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


def _load_initial_weights(model, folder: Path) -> dict:
    """Copy the weights of a model folder's .keras file (checked against its card) into `model`;
    returns what the new card records about where they came from."""
    import keras

    from .runtime import ModelCard, find_card

    card = ModelCard.load(find_card(folder))
    source = keras.saving.load_model(card.verify("keras"), compile=False, safe_mode=True)
    model.set_weights(source.get_weights())
    return {
        "path": str(folder),
        "keras_sha256": card.files["keras"]["sha256"],
        "seed": card.raw["training"]["seed"],
        "limit": card.raw["training"]["limit"],
        "epochs_run": card.raw["training"]["epochs_run"],
        "command": card.raw["training"]["command"],
        "validation_accuracy": card.raw["metrics"]["validation_accuracy"],
    }


def train(
    dataset: Dataset,
    out_dir: str | os.PathLike,
    config: TrainConfig,
    log: Callable[[str], None] = print,
) -> dict:
    """Train, evaluate once on the test set, calibrate on validation, export; returns the model card."""
    import keras

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    train_images, train_labels = dataset.train.images, dataset.train.labels
    if config.limit:
        keep = subset(train_labels, config.limit, config.seed)
        train_images, train_labels = train_images[keep], train_labels[keep]
    val_size = min(config.val_size, max(NUM_CLASSES * 10, len(train_labels) // 12))
    train_idx, val_idx = stratified_split(train_labels, val_size, config.seed)
    x_train, y_train = to_model_input(train_images[train_idx]), train_labels[train_idx].astype(np.int32)
    x_val, y_val = to_model_input(train_images[val_idx]), train_labels[val_idx].astype(np.int32)
    log(f"training on {len(x_train)} images, validating on {len(x_val)} (stratified, seed {config.seed})")

    model = build_model(config.seed)
    init_card = None
    if config.init_from:
        init_card = _load_initial_weights(model, Path(config.init_from))
        if (init_card["seed"], init_card["limit"]) != (config.seed, config.limit):
            raise TrainSetupError(
                f"--init-from {config.init_from} was trained with --seed {init_card['seed']} and --limit "
                f"{init_card['limit']}: continue with the same --seed and --limit, or its validation images "
                "would leak into training"
            )
        log(f"starting from the weights of {config.init_from}")
    train_ds, val_ds = _datasets(x_train, y_train, x_val, y_val, config)
    steps = config.epochs * int(np.ceil(len(x_train) / config.batch_size))
    # A warm-up also when fine-tuning: Adam's first steps from fresh moments move every weight by about
    # the full rate, which wrecks trained weights at any useful rate.
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, steps, alpha=0.01, warmup_target=config.learning_rate, warmup_steps=max(1, steps // 10)
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=4,  # fewer Python round trips per epoch: they cost more than the math here
    )
    checkpoint = out / "checkpoint.keras"
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=config.patience, restore_best_weights=True
        ),
        keras.callbacks.ModelCheckpoint(checkpoint, monitor="val_loss", save_best_only=True),
        keras.callbacks.CSVLogger(str(out / HISTORY_FILE)),
        keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: log(
                f"epoch {epoch + 1}/{config.epochs}: "
                + " ".join(f"{k}={v:.4f}" for k, v in sorted(logs.items()) if k != "learning_rate")
            )
        ),
    ]
    started = time.perf_counter()
    history = model.fit(
        train_ds, validation_data=val_ds, epochs=config.epochs, callbacks=callbacks, verbose=0
    )
    train_seconds = time.perf_counter() - started
    epochs_run = len(history.history["loss"])
    checkpoint.unlink(missing_ok=True)

    # Everything chosen (weights, temperature) is chosen on validation; the test set is read once, below.
    val_logits = predict_logits(model, x_val)
    temperature = fit_temperature(val_logits, y_val)
    val_pred = val_logits.argmax(1)
    log(f"validation accuracy {np.mean(val_pred == y_val):.4f}; temperature {temperature:.3f}")

    keras_path, tflite_path = out / KERAS_FILE, out / TFLITE_FILE
    save_keras(model, keras_path, config.seed)
    export_tflite(model, tflite_path)

    x_test, y_test = to_model_input(dataset.test.images), dataset.test.labels.astype(np.int32)
    test_logits = predict_logits(model, x_test)
    test_pred = test_logits.argmax(1)
    test_accuracy = float(np.mean(test_pred == y_test))
    log(f"test accuracy {test_accuracy:.4f}")

    card = {
        "format": "fmnist-batch model card v1",
        "class_names": list(CLASS_NAMES),
        "files": {
            "tflite": {"name": TFLITE_FILE, "sha256": sha256_file(tflite_path)},
            "keras": {"name": KERAS_FILE, "sha256": sha256_file(keras_path)},
        },
        "preprocessing": {
            "image_size": IMAGE_SIZE,
            "input": "float32 (N, 28, 28, 1): uint8 pixel * input_scale + input_offset",
            "input_scale": INPUT_SCALE,
            "input_offset": INPUT_OFFSET,
            "foreground": "bright garment on black background (Fashion-MNIST polarity)",
            "output": "logits; probabilities = softmax(logits / temperature)",
            "trim_tolerance": 0.05,
            "sharpen": True,
            "invert": "auto",
        },
        "temperature": temperature,
        "metrics": {
            "validation_accuracy": float(np.mean(val_pred == y_val)),
            "validation_size": len(y_val),
            "test_accuracy": test_accuracy,
            "test_size": len(y_test),
            "test_ece_uncalibrated": expected_calibration_error(test_logits, y_test, 1.0),
            "test_ece": expected_calibration_error(test_logits, y_test, temperature),
            "test_per_class": classification_report(y_test, test_pred),
            "test_confusion_matrix": confusion_matrix(y_test, test_pred).tolist(),
        },
        "training": {
            "epochs_requested": config.epochs,
            "epochs_run": epochs_run,
            "best_epoch": int(np.argmin(history.history["val_loss"])) + 1,
            "train_seconds": round(train_seconds, 1),
            "train_images": len(x_train),
            "seed": config.seed,
            "batch_size": config.batch_size,
            "learning_rate": config.learning_rate,
            "augmentation": {
                "level": config.augment,
                "horizontal_flip": config.augment != "none",
                "shift_fraction": config.shift if config.augment != "none" else 0.0,
                "rotation_fraction": config.rotation if config.augment == "full" else 0.0,
                "random_erasing_prob": config.erase_prob if config.augment == "full" else 0.0,
            },
            "parameters": int(model.count_params()),
            "command": " ".join(config.command),
            "limit": config.limit,
            "init_from": init_card,
        },
        "versions": library_versions(),
        "dataset": {"source": str(dataset.source), "sha256": dataset.file_hashes()},
    }
    (out / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")

    # The exported file is what classify runs: measure it too, through the same runtime.
    from .runtime import litert_available, load_model

    if litert_available():
        litert = load_model(out, backend="litert")
        tflite_logits = np.concatenate(
            [litert.predict_logits(dataset.test.images[i : i + 1000]) for i in range(0, len(y_test), 1000)]
        )
        card["metrics"]["tflite_test_accuracy"] = float(np.mean(tflite_logits.argmax(1) == y_test))
        card["metrics"]["tflite_max_logit_difference"] = float(np.abs(tflite_logits - test_logits).max())
        log(f"exported model.tflite: test accuracy {card['metrics']['tflite_test_accuracy']:.4f}")
        (out / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    return card
