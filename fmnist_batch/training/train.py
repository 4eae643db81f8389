"""Training: the CNN, augmentation, early stopping, evaluation, calibration and export.

Imports TensorFlow/Keras lazily inside functions, so importing this module stays cheap and a missing
``[train]`` extra is reported by the CLI, not as an ImportError at start-up.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fmnist_batch import __version__
from fmnist_batch.labels import CLASS_NAMES, IMAGE_SIZE, NUM_CLASSES
from fmnist_batch.model.runtime import HISTORY_FILE, write_card
from fmnist_batch.training.data import Dataset, sha256_file
from fmnist_batch.training.metrics import (
    classification_report,
    confusion_matrix,
    expected_calibration_error,
    fit_temperature,
)

if TYPE_CHECKING:
    from fmnist_batch.training.labelled_photos import LabelledPhotos

KERAS_FILE = "model.keras"
TFLITE_FILE = "model.tflite"
INT8_FILE = "model.int8.tflite"
#: how much validation accuracy the int8 file may lose against the float one under --quantize auto
INT8_TOLERANCE = 0.001
#: training images (seeded) that calibrate the int8 activations' ranges
CALIBRATION_IMAGES = 1000

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
    #: images as the test set has them); "photo": "full" plus what converting real photos does to them
    #: (scale, contrast, gamma, blur; erasing to background); "none"
    augment: str = "full"
    #: start from this model folder's weights (same architecture, same seed: the same validation split)
    init_from: str | None = None
    val_size: int = 5000
    learning_rate: float = 3e-3
    # augmentation strengths (fractions as Keras' random layers take them)
    rotation: float = 0.015  # of a full turn: about +-5 degrees
    shift: float = 0.08  # about +-2 pixels
    erase_prob: float = 0.25
    # "photo" augmentation only
    zoom: float = 0.15  # garment scale within +-15% (zoom in crops it, as an over-eager trim does)
    photometric_prob: float = 0.5  # images whose garment gets a random contrast and gamma
    contrast: float = 0.3  # contrast about the garment's mean intensity, factor in 1 +- this
    gamma: float = 1.5  # intensity ** g, g log-uniform in [1 / gamma, gamma]
    blur_prob: float = 0.2  # images blurred by a Gaussian of blur_sigma, blended in at a random strength
    blur_sigma: float = 1.0
    #: labelled real photos mixed into training (a folder laid out as for evaluate) and its mapping CSV
    extra_data: str | None = None
    extra_mapping: str | None = None
    #: the real photos' share of each epoch (they are repeated to reach it; at least once)
    extra_share: float = 0.15
    #: per folder, this part of the real photos (seeded) is held out to measure accuracy on real photos
    extra_val_fraction: float = 0.2
    #: an .npz keeping the converted real photos for the next run
    extra_cache: str | None = None
    workers: int | None = None  # processes converting the real photos (default: one per CPU)
    #: average the logits of an image and its mirror image at inference: "on" for the images below the
    #: confidence gate chosen on validation, "all" for every image, "auto" "on" when mirroring is more
    #: accurate on the validation split, "off" never
    flip_average: str = "auto"
    #: also export an int8-quantized .tflite: "auto" makes LiteRT run it when its validation accuracy
    #: through the runtime is within INT8_TOLERANCE of the float file's, "on" always, "off" never exports it
    quantize: str = "auto"
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
    """A batch-wise augmentation: flips, shifts and small rotations, then random erasing; "photo" adds
    scale, contrast, gamma and blur and erases to background instead of noise."""
    import keras
    import tensorflow as tf
    from keras import layers

    photo = config.augment == "photo"
    full = config.augment == "full" or photo
    # fill with 0: the dataset's background after negation is black
    steps = [
        layers.RandomFlip("horizontal", seed=config.seed),
    ]
    if photo:
        # about the centre, where the conversion puts the garment
        steps.append(
            layers.RandomZoom((-config.zoom, config.zoom), fill_mode="constant", seed=config.seed + 3)
        )
    steps += [
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
        # "photo": a converted photo's background is exactly 0, so noise there is never seen; a blanked
        # part of the garment is (light prints and highlights fall below the background threshold).
        fill = tf.zeros_like(images) if photo else tf.random.uniform(tf.shape(images))
        return tf.where(mask[..., None], fill, images)

    def contrast_and_gamma(images):
        # Only the garment's pixels change: 0 ** g is 0, and contrast is applied inside the garment mask.
        n = tf.shape(images)[0]
        apply = tf.random.uniform([n, 1, 1, 1]) < config.photometric_prob
        garment = images > 0
        area = tf.reduce_sum(tf.cast(garment, tf.float32), axis=[1, 2, 3], keepdims=True)
        mean = tf.reduce_sum(images, axis=[1, 2, 3], keepdims=True) / tf.maximum(area, 1.0)
        factor = tf.random.uniform([n, 1, 1, 1], 1 - config.contrast, 1 + config.contrast)
        contrasted = tf.where(garment, tf.clip_by_value(mean + factor * (images - mean), 0.0, 1.0), 0.0)
        log_gamma = np.log(config.gamma)
        gamma = tf.exp(tf.random.uniform([n, 1, 1, 1], -log_gamma, log_gamma))
        return tf.where(apply, tf.pow(contrasted, gamma), images)

    bell = np.exp(-(np.arange(-2, 3) ** 2) / (2 * config.blur_sigma**2))
    bell = (bell / bell.sum()).astype(np.float32)

    def blur_along(images, axis: int):
        # a separable Gaussian as shifted sums: conv2d with one channel is ten times slower on CPU;
        # zero padding, as the background around the frame is 0 too
        padding = [[0, 0]] * 4
        padding[axis] = [2, 2]
        padded = tf.pad(images, padding)
        window = [slice(None)] * 4
        total = 0.0
        for shift, weight in enumerate(bell):
            window[axis] = slice(shift, shift + IMAGE_SIZE)
            total += weight * padded[tuple(window)]
        return total

    def blur(images):
        # the blurred image blended in at a random strength
        n = tf.shape(images)[0]
        blurred = blur_along(blur_along(images, 1), 2)
        strength = tf.random.uniform([n, 1, 1, 1])
        strength *= tf.cast(tf.random.uniform([n, 1, 1, 1]) < config.blur_prob, tf.float32)
        return tf.clip_by_value(images + strength * (blurred - images), 0.0, 1.0)

    def augment(images, labels):
        images = geometric(images, training=True)
        if photo:
            images = blur(contrast_and_gamma(images))
        return (random_erasing(images) if full else images), labels

    return augment


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


def extra_repeat(fmnist_images: int, photos: int, share: float) -> int:
    """How often the real photos are repeated so that they are about `share` of an epoch (at least once)."""
    return max(1, round(share * fmnist_images / ((1 - share) * max(photos, 1))))


@dataclass
class PhotoMix:
    """Real photos mixed into the training split (never into validation or test), and the ones held out
    to measure accuracy on real photos."""

    x_fit: np.ndarray  # the dataset's training images, then the training photos `repeat` times
    y_fit: np.ndarray  # float32 multi-hot accepted classes (one-hot for the dataset's images)
    y_val: np.ndarray  # the dataset's validation labels, one-hot, for the same loss
    x_photo_val: np.ndarray
    accepted_photo_val: np.ndarray  # bool (N, NUM_CLASSES)
    folder_photo_val: np.ndarray  # index into the photos' folder_names
    record: dict  # what the card's training.extra_data records


def mix_in_photos(
    photos: LabelledPhotos, x_train: np.ndarray, y_train: np.ndarray, y_val: np.ndarray, config: TrainConfig
) -> PhotoMix:
    """The dataset's training split with `photos` mixed in, minus a held-out part of them."""
    from dataclasses import asdict

    from fmnist_batch.training.labelled_photos import split_by_folder

    photo_train, photo_val = split_by_folder(photos.folder_index, config.extra_val_fraction, config.seed)
    repeat = extra_repeat(len(x_train), len(photo_train), config.extra_share)
    accepted = photos.accepted
    one_hot = np.eye(NUM_CLASSES, dtype=np.float32)
    x_photos = to_model_input(photos.images[photo_train])
    counts = photos.folder_counts()
    for row, name in enumerate(photos.folder_names):
        counts[name]["train"] = int(np.sum(photos.folder_index[photo_train] == row))
        counts[name]["validation"] = int(np.sum(photos.folder_index[photo_val] == row))
    return PhotoMix(
        x_fit=np.concatenate([x_train, *[x_photos] * repeat]),
        y_fit=np.concatenate([one_hot[y_train], *[accepted[photo_train].astype(np.float32)] * repeat]),
        y_val=one_hot[y_val],
        x_photo_val=to_model_input(photos.images[photo_val]),
        accepted_photo_val=accepted[photo_val],
        folder_photo_val=photos.folder_index[photo_val],
        record={
            "folder": str(photos.root),
            "mapping": photos.mapping,
            "files_sha256": photos.files_sha256,
            "files_sha256_of": "the lines '<sha256 of the file>  <path under folder>', sorted by path, of "
            "every photo in the used folders",
            "conversion": asdict(photos.settings),
            "folders": counts,
            "skipped_folders": photos.skipped,
            "train_photos": len(photo_train),
            "validation_photos": len(photo_val),
            "validation_fraction": config.extra_val_fraction,
            "repeat": repeat,
            "share_of_epoch": round(
                repeat * len(photo_train) / (len(x_train) + repeat * len(photo_train)), 4
            ),
            "loss": "partial-label: -log(sum of the softmax over the accepted classes)",
        },
    )


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


def add_int8_file(
    out: Path,
    card: dict,
    model,
    calibration: np.ndarray,
    validation: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    setting: str,
    log: Callable[[str], None],
) -> None:
    """Export the int8 file beside the float one, measure both through the runtime (uint8 images, the
    card's flip averaging and temperature) on validation, and let the card choose which LiteRT runs; the
    test set is then measured for the record only."""
    from fmnist_batch.model.runtime import load_model

    export_tflite_int8(model, out / INT8_FILE, calibration)
    card["files"]["tflite_int8"] = {"name": INT8_FILE, "sha256": sha256_file(out / INT8_FILE)}
    write_card(out, card)

    def logits(precision: str, images: np.ndarray) -> np.ndarray:
        runtime = load_model(out, backend="litert", precision=precision, use_photo_model=False)
        return np.concatenate(
            [runtime.predict_logits(images[i : i + 1000]) for i in range(0, len(images), 1000)]
        )

    (x_val, y_val), (x_test, y_test) = validation, test
    record: dict = {
        "setting": setting,
        "method": "int8 weights and activations, float input and output (TFLite converter, "
        f"Optimize.DEFAULT), calibrated on {len(calibration)} training images",
        "tolerance": INT8_TOLERANCE,
    }
    for precision in ("float", "int8"):
        record[f"validation_accuracy_{precision}"] = float(
            np.mean(logits(precision, x_val).argmax(1) == y_val)
        )
    use = setting == "on" or (
        record["validation_accuracy_int8"] >= record["validation_accuracy_float"] - INT8_TOLERANCE
    )
    card["preprocessing"]["litert_file"] = "tflite_int8" if use else "tflite"
    card["quantization"] = record
    test_logits = logits("int8", x_test)
    card["metrics"]["int8_test_accuracy"] = float(np.mean(test_logits.argmax(1) == y_test))
    card["metrics"]["int8_test_ece"] = expected_calibration_error(test_logits, y_test, card["temperature"])
    log(
        f"int8 file: validation accuracy {record['validation_accuracy_int8']:.4f} against "
        f"{record['validation_accuracy_float']:.4f} in float: LiteRT runs the {'int8' if use else 'float'} "
        f"file (test accuracy of the int8 file {card['metrics']['int8_test_accuracy']:.4f})"
    )
    write_card(out, card)


def save_keras(model, path: Path, seed: int) -> None:
    """Save the weights in a fresh, uncompiled copy: the optimizer state would triple the file."""
    clean = build_model(seed)
    clean.set_weights(model.get_weights())
    clean.save(path)


@dataclass(frozen=True)
class FlipAverage:
    """How inference combines an image with its mirror image (the card's preprocessing.flip_average and
    flip_average_below)."""

    on: bool = False
    below: float | None = None  # mirror only images less sure than this; None: every image


def predict_logits(
    model, x: np.ndarray, batch_size: int = 1024, flip: FlipAverage = FlipAverage()
) -> np.ndarray:
    """Keras logits of (N, 28, 28, 1) inputs, flip-averaged as the runtime does for a card that says so."""
    from fmnist_batch.model.runtime import flip_averaged

    logits = np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float64)
    if not flip.on:
        return logits

    def mirrored(todo: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(x[todo][:, :, ::-1], batch_size=batch_size, verbose=0), np.float64)

    return flip_averaged(logits, mirrored, flip.below)


def choose_flip_average(
    setting: str, model, x_val: np.ndarray, y_val: np.ndarray
) -> tuple[FlipAverage, dict, np.ndarray]:
    """How inference uses the mirror image, the validation accuracies that decided it, and the validation
    logits as inference will compute them. The dataset's garments face either way (training flips them
    too), so the mirror image is a second look at the same garment; it is needed only where the first look
    is unsure, so "on" and "auto" mirror only images below the first gate of FLIP_GATES that is as accurate
    on validation as mirroring all ("all" mirrors every image)."""
    from fmnist_batch.model.runtime import FLIP_GATES, flip_averaged, top_probability

    single = predict_logits(model, x_val)
    mirror = predict_logits(model, x_val[:, :, ::-1])

    def accuracy(logits: np.ndarray) -> float:
        return float(np.mean(logits.argmax(1) == y_val))

    averaged = (single + mirror) / 2
    record = {
        "setting": setting,
        "validation_accuracy_single": accuracy(single),
        "validation_accuracy_flip": accuracy(averaged),
    }
    on = (
        record["validation_accuracy_flip"] > record["validation_accuracy_single"]
        if setting == "auto"
        else setting != "off"
    )
    if not on:
        return FlipAverage(), record, single
    if setting == "all":
        return FlipAverage(True), record, averaged
    for gate in FLIP_GATES:
        gated = flip_averaged(single, lambda todo: mirror[todo], gate)
        gated_accuracy = accuracy(gated)
        if gated_accuracy >= record["validation_accuracy_flip"]:
            record["validation_accuracy_gated"] = gated_accuracy
            record["below"] = gate
            record["validation_mirrored_share"] = float(np.mean(top_probability(single) < gate))
            return FlipAverage(True, gate), record, gated
    return FlipAverage(True), record, averaged


def _describe(flip: FlipAverage) -> str:
    if not flip.on:
        return "off"
    return "on, every image" if flip.below is None else f"on, images below {flip.below:g} confidence"


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

    from fmnist_batch.model.runtime import ModelCard, find_card

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
        "init_from": card.raw["training"].get("init_from"),  # the whole lineage, not only the last step
    }


def _load_extra_photos(config: TrainConfig, log: Callable[[str], None]) -> LabelledPhotos:
    """The --extra-data photos, converted as classify converts."""
    from fmnist_batch.training.labelled_photos import load_labelled_photos

    if not 0.0 <= config.extra_share < 1.0:
        raise TrainSetupError(f"--extra-share must be at least 0 and below 1, got {config.extra_share}")
    photos = load_labelled_photos(
        config.extra_data, config.extra_mapping, workers=config.workers, cache=config.extra_cache, log=log
    )
    if not len(photos.files):
        raise TrainSetupError(f"--extra-data {config.extra_data}: no photo in a folder with a class to learn")
    return photos


def _photo_validation(model, mix: PhotoMix, folder_names: list[str], flip: FlipAverage) -> dict:
    """The card's metrics on the held-out real photos: overall, mean over folders, per folder."""
    if not len(mix.x_photo_val):
        return {}
    from fmnist_batch.training.labelled_photos import accepted_accuracy

    logits = predict_logits(model, mix.x_photo_val, flip=flip)
    per_folder = {
        name: accepted_accuracy(
            logits[mix.folder_photo_val == row], mix.accepted_photo_val[mix.folder_photo_val == row]
        )
        for row, name in enumerate(folder_names)
        if np.any(mix.folder_photo_val == row)
    }
    return {
        "real_photo_validation_accuracy": accepted_accuracy(logits, mix.accepted_photo_val),
        "real_photo_validation_balanced_accuracy": float(np.mean(list(per_folder.values()))),
        "real_photo_validation_size": len(logits),
        "real_photo_validation_per_folder": per_folder,
    }


def _photo_augmentation(config: TrainConfig) -> dict:
    """What the card records about the "photo" level's additions."""
    return {
        "zoom_range": [-config.zoom, config.zoom],
        "contrast_and_gamma_prob": config.photometric_prob,
        "contrast_factor_range": [1 - config.contrast, 1 + config.contrast],
        "gamma_range": [round(1 / config.gamma, 4), config.gamma],
        "blur_prob": config.blur_prob,
        "blur_sigma": config.blur_sigma,
        "blur_strength": "uniform 0-1 blend of the blurred image",
        "random_erasing_fill": "background (0)",
    }


def train(
    dataset: Dataset,
    out_dir: str | os.PathLike,
    config: TrainConfig,
    log: Callable[[str], None] = print,
) -> dict:
    """Train, evaluate once on the test set, calibrate on validation, export; returns the model card."""
    # Real photos first: a wrong folder fails before any work, and the conversion's worker processes
    # fork before TensorFlow starts its threads.
    if config.epochs == 0 and not config.init_from:
        raise TrainSetupError("--epochs 0 evaluates and exports a trained model: name it with --init-from")
    photos = _load_extra_photos(config, log) if config.extra_data else None
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
    mix = mix_in_photos(photos, x_train, y_train, y_val, config) if photos is not None else None
    if mix is None:
        train_ds, val_ds = _datasets(x_train, y_train, x_val, y_val, config)
        loss, accuracy = keras.losses.SparseCategoricalCrossentropy(from_logits=True), "accuracy"
        steps = config.epochs * int(np.ceil(len(x_train) / config.batch_size))
    else:
        record = mix.record
        log(
            f"mixing in {record['train_photos']} real photos x {record['repeat']} "
            f"({record['share_of_epoch']:.0%} of each epoch); {record['validation_photos']} held out to "
            "validate on real photos"
        )
        from fmnist_batch.training.labelled_photos import accepted_accuracy

        train_ds, val_ds = _datasets(mix.x_fit, mix.y_fit, x_val, mix.y_val, config)
        loss = partial_label_loss
        accuracy = keras.metrics.MeanMetricWrapper(accepted_class_accuracy, name="accuracy")
        steps = config.epochs * int(np.ceil(len(mix.x_fit) / config.batch_size))
    # A warm-up also when fine-tuning: Adam's first steps from fresh moments move every weight by about
    # the full rate, which wrecks trained weights at any useful rate.
    steps = max(1, steps)  # --epochs 0 compiles too, and a schedule needs a step
    warmup_steps = max(1, steps // 10)
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, steps, alpha=0.01, warmup_target=config.learning_rate, warmup_steps=warmup_steps
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=1e-4),
        loss=loss,
        metrics=[accuracy],
        steps_per_execution=4,  # fewer Python round trips per epoch: they cost more than the math here
    )
    checkpoint = out / "checkpoint.keras"
    callbacks = [
        # Patience counts from the end of the warm-up: while the rate climbs, validation loss says nothing,
        # and a fine-tuning pass, whose first epoch is still the source model, would otherwise be stopped
        # there and handed back that model.
        keras.callbacks.EarlyStopping(
            monitor="val_loss",
            patience=config.patience,
            restore_best_weights=True,
            start_from_epoch=int(np.ceil(config.epochs * warmup_steps / steps)),
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
    if mix is not None and len(mix.x_photo_val):
        # first, so the later callbacks (CSV log, epoch line) see it
        callbacks.insert(
            0,
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: logs.update(
                    real_photo_val_accuracy=accepted_accuracy(
                        predict_logits(model, mix.x_photo_val), mix.accepted_photo_val
                    )
                )
            ),
        )
    started = time.perf_counter()
    if config.epochs:
        history = model.fit(
            train_ds, validation_data=val_ds, epochs=config.epochs, callbacks=callbacks, verbose=0
        ).history
    else:  # --epochs 0: the --init-from model as it is, evaluated and exported with today's settings
        history = {"loss": [], "val_loss": []}
        source_history = Path(config.init_from, HISTORY_FILE)
        if source_history.is_file():
            (out / HISTORY_FILE).write_bytes(source_history.read_bytes())
    train_seconds = time.perf_counter() - started
    epochs_run = len(history["loss"])
    checkpoint.unlink(missing_ok=True)

    # Everything chosen (weights, flip averaging, temperature) is chosen on validation; the test set is
    # read once, below.
    flip, flip_record, val_logits = choose_flip_average(config.flip_average, model, x_val, y_val)
    temperature = fit_temperature(val_logits, y_val)
    val_pred = val_logits.argmax(1)
    log(
        f"validation accuracy {np.mean(val_pred == y_val):.4f} "
        f"(single view {flip_record['validation_accuracy_single']:.4f}, averaged with the mirror image "
        f"{flip_record['validation_accuracy_flip']:.4f}: flip averaging {_describe(flip)}); "
        f"temperature {temperature:.3f}"
    )
    photo_metrics = _photo_validation(model, mix, photos.folder_names, flip) if mix is not None else {}
    if photo_metrics:
        log(
            f"real-photo validation accuracy {photo_metrics['real_photo_validation_accuracy']:.4f} "
            f"({photo_metrics['real_photo_validation_size']} photos)"
        )

    keras_path, tflite_path = out / KERAS_FILE, out / TFLITE_FILE
    save_keras(model, keras_path, config.seed)
    export_tflite(model, tflite_path)

    x_test, y_test = to_model_input(dataset.test.images), dataset.test.labels.astype(np.int32)
    test_logits = predict_logits(model, x_test, flip=flip)
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
            "flip_average": flip.on,
            "flip_average_below": flip.below,
            "trim_tolerance": 0.05,
            "sharpen": True,
            "invert": "auto",
        },
        "temperature": temperature,
        "flip_average": flip_record,
        "metrics": {
            "validation_accuracy": float(np.mean(val_pred == y_val)),
            "validation_size": len(y_val),
            "test_accuracy": test_accuracy,
            "test_size": len(y_test),
            "test_ece_uncalibrated": expected_calibration_error(test_logits, y_test, 1.0),
            "test_ece": expected_calibration_error(test_logits, y_test, temperature),
            "test_per_class": classification_report(y_test, test_pred),
            "test_confusion_matrix": confusion_matrix(y_test, test_pred).tolist(),
            **photo_metrics,
        },
        "training": {
            "epochs_requested": config.epochs,
            "epochs_run": epochs_run,
            "best_epoch": int(np.argmin(history["val_loss"])) + 1 if history["val_loss"] else None,
            "train_seconds": round(train_seconds, 1),
            "train_images": len(x_train),
            "seed": config.seed,
            "batch_size": config.batch_size,
            "learning_rate": config.learning_rate,
            "augmentation": {
                "level": config.augment,
                "horizontal_flip": config.augment != "none",
                "shift_fraction": config.shift if config.augment != "none" else 0.0,
                "rotation_fraction": config.rotation if config.augment in ("full", "photo") else 0.0,
                "random_erasing_prob": config.erase_prob if config.augment in ("full", "photo") else 0.0,
                **(_photo_augmentation(config) if config.augment == "photo" else {}),
            },
            "parameters": int(model.count_params()),
            "command": " ".join(config.command),
            "limit": config.limit,
            "init_from": init_card,
            "extra_data": mix.record if mix is not None else None,
        },
        "versions": library_versions(),
        "dataset": {"source": str(dataset.source), "sha256": dataset.file_hashes()},
    }
    write_card(out, card)

    # The exported file is what classify runs: measure it too, through the same runtime.
    from fmnist_batch.model.runtime import litert_available, load_model

    if litert_available():
        litert = load_model(out, backend="litert")
        tflite_logits = np.concatenate(
            [litert.predict_logits(dataset.test.images[i : i + 1000]) for i in range(0, len(y_test), 1000)]
        )
        card["metrics"]["tflite_test_accuracy"] = float(np.mean(tflite_logits.argmax(1) == y_test))
        card["metrics"]["tflite_max_logit_difference"] = float(np.abs(tflite_logits - test_logits).max())
        log(f"exported model.tflite: test accuracy {card['metrics']['tflite_test_accuracy']:.4f}")
        write_card(out, card)
        if config.quantize != "off":
            calibration = np.random.default_rng(config.seed).choice(
                len(x_train), min(CALIBRATION_IMAGES, len(x_train)), replace=False
            )
            add_int8_file(
                out,
                card,
                model,
                x_train[np.sort(calibration)],
                (train_images[val_idx], y_val),
                (dataset.test.images, y_test),
                config.quantize,
                log,
            )
    return card
