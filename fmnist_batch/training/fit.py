"""The CNN and fitting it: architecture, loss for photos that accept several classes, the learning-rate
schedule, early stopping, and the weights a fine-tuning pass starts from."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmnist_batch.labels import IMAGE_SIZE, NUM_CLASSES
from fmnist_batch.model import registry
from fmnist_batch.model.card import HISTORY_FILE, ModelCard, find_card
from fmnist_batch.training.config import TrainConfig, TrainSetupError
from fmnist_batch.training.prepare import PhotoMix, Splits, make_datasets


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


def partial_label_loss(accepted, logits):
    """-log of the probability the model gives the accepted classes together (`accepted` multi-hot): a
    photo from a "shoes" folder is right as Sandal, Sneaker or Ankle boot. For one-hot targets this is
    the cross-entropy."""
    from keras import ops

    logits = ops.convert_to_tensor(logits)
    accepted = ops.cast(accepted, logits.dtype)
    masked = ops.where(accepted > 0, logits, ops.full_like(logits, -1e9))
    return ops.logsumexp(logits, axis=-1) - ops.logsumexp(masked, axis=-1)


def accepted_class_accuracy(accepted, logits):
    """1.0 per example whose top class is one of its accepted classes (`accepted` multi-hot), else 0.0."""
    from keras import ops

    top = ops.expand_dims(ops.argmax(logits, axis=-1), -1)
    hit = ops.take_along_axis(ops.cast(accepted, "float32"), top, axis=-1)
    return ops.cast(ops.squeeze(hit, -1) > 0, "float32")


def start_model(config: TrainConfig, log: Callable[[str], None]) -> tuple[object, ModelCard | None]:
    """A fresh model, with the --init-from model's weights if named; and that model's card."""
    model = build_model(config.seed)
    if not config.init_from:
        return model, None
    source = load_initial_weights(model, Path(config.init_from))
    training = source.training
    if training is None or (training.seed, training.limit) != (config.seed, config.limit):
        seed, limit = (training.seed, training.limit) if training else ("?", "?")
        raise TrainSetupError(
            f"--init-from {config.init_from} was trained with --seed {seed} and --limit {limit}: continue "
            "with the same --seed and --limit, or its validation images would leak into training"
        )
    log(f"starting from the weights of {config.init_from}")
    return model, source


def load_initial_weights(model, folder: Path) -> ModelCard:
    """Copy the weights of a model folder's .keras file (checked against its card) into `model`;
    returns that folder's card."""
    import keras

    card = ModelCard.load(find_card(folder))
    keras_file = registry.verify(registry.network(card, "keras", "main"))
    source = keras.saving.load_model(keras_file, compile=False, safe_mode=True)
    model.set_weights(source.get_weights())
    return card


def _compile(model, config: TrainConfig, steps: int, mix: PhotoMix | None) -> int:
    """Compile with AdamW on a warm-up and cosine schedule over `steps`; returns the warm-up steps."""
    import keras

    # A warm-up also when fine-tuning: Adam's first steps from fresh moments move every weight by about
    # the full rate, which wrecks trained weights at any useful rate.
    warmup_steps = max(1, steps // 10)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, steps, alpha=0.01, warmup_target=config.learning_rate, warmup_steps=warmup_steps
    )
    if mix is None:
        loss, accuracy = keras.losses.SparseCategoricalCrossentropy(from_logits=True), "accuracy"
    else:
        loss = partial_label_loss
        accuracy = keras.metrics.MeanMetricWrapper(accepted_class_accuracy, name="accuracy")
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4),
        loss=loss,
        metrics=[accuracy],
        steps_per_execution=4,  # fewer Python round trips per epoch: they cost more than the math here
    )
    return warmup_steps


def _callbacks(model, config: TrainConfig, out: Path, start_epoch: int, mix, log) -> list:
    import keras

    callbacks = [
        # Patience counts from the end of the warm-up: while the rate climbs, validation loss says nothing,
        # and a fine-tuning pass, whose first epoch is still the source model, would otherwise be stopped
        # there and handed back that model.
        keras.callbacks.EarlyStopping(
            monitor="val_loss",
            patience=config.patience,
            restore_best_weights=True,
            start_from_epoch=start_epoch,
        ),
        keras.callbacks.ModelCheckpoint(out / "checkpoint.keras", monitor="val_loss", save_best_only=True),
        keras.callbacks.CSVLogger(str(out / HISTORY_FILE)),
        keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: log(
                f"epoch {epoch + 1}/{config.epochs}: "
                + " ".join(f"{k}={v:.4f}" for k, v in sorted(logs.items()) if k != "learning_rate")
            )
        ),
    ]
    if mix is not None and len(mix.x_photo_val):
        # first, so the later callbacks (CSV log, epoch line) see it
        callbacks.insert(0, _photo_accuracy_callback(model, mix))
    return callbacks


def _photo_accuracy_callback(model, mix: PhotoMix):
    """Adds the held-out real photos' accuracy to each epoch's logs."""
    import keras

    from fmnist_batch.training.choose import predict_logits
    from fmnist_batch.training.labelled_photos import accepted_accuracy

    def measure(epoch: int, logs: dict) -> None:
        logits = predict_logits(model, mix.x_photo_val)
        logs.update(real_photo_val_accuracy=accepted_accuracy(logits, mix.accepted_photo_val))

    return keras.callbacks.LambdaCallback(on_epoch_end=measure)


@dataclass
class Fitted:
    """What fitting did: Keras' history per epoch and the wall time."""

    history: dict[str, list[float]]
    seconds: float

    @property
    def epochs_run(self) -> int:
        return len(self.history["loss"])

    @property
    def best_epoch(self) -> int | None:
        """1-based epoch of the lowest validation loss (whose weights early stopping kept)."""
        return int(np.argmin(self.history["val_loss"])) + 1 if self.history["val_loss"] else None


def fit(model, splits: Splits, mix: PhotoMix | None, config: TrainConfig, out: Path, log) -> Fitted:
    """Fit `model` for config.epochs (early stopping on validation loss, the best weights kept)."""
    if mix is None:
        x_fit, y_fit, y_val = splits.x_train, splits.y_train, splits.y_val
    else:
        x_fit, y_fit, y_val = mix.x_fit, mix.y_fit, mix.y_val
    train_ds, val_ds = make_datasets(x_fit, y_fit, splits.x_val, y_val, config)
    steps = config.epochs * int(np.ceil(len(x_fit) / config.batch_size))
    warmup_steps = _compile(model, config, steps, mix)
    started = time.perf_counter()
    start_epoch = int(np.ceil(config.epochs * warmup_steps / steps))
    callbacks = _callbacks(model, config, out, start_epoch, mix, log)
    history = model.fit(
        train_ds, validation_data=val_ds, epochs=config.epochs, callbacks=callbacks, verbose=0
    ).history
    (out / "checkpoint.keras").unlink(missing_ok=True)
    return Fitted(history, time.perf_counter() - started)


def keep_source_history(source: Path, out: Path) -> Fitted:
    """--epochs 0 trains nothing: the folder gets the source model's training curves, which made these
    weights."""
    if (source / HISTORY_FILE).is_file():
        (out / HISTORY_FILE).write_bytes((source / HISTORY_FILE).read_bytes())
    return Fitted({"loss": [], "val_loss": []}, 0.0)


def save_keras(model, path: Path, seed: int) -> None:
    """Save the weights in a fresh, uncompiled copy: the optimizer state would triple the file."""
    clean = build_model(seed)
    clean.set_weights(model.get_weights())
    clean.save(path)
