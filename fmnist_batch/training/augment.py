"""Batch-wise augmentation for retrain, and the description of it the model card records.

TensorFlow and Keras are imported inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fmnist_batch.labels import IMAGE_SIZE
from fmnist_batch.training.config import TrainConfig


def _uses_full(config: TrainConfig) -> bool:
    """Rotation and random erasing: "full" and "photo"."""
    return config.augment in ("full", "photo")


def augmentation_record(config: TrainConfig) -> dict[str, Any]:
    """What the card records about the augmentation `config` trains with."""
    on, full = config.augment != "none", _uses_full(config)
    record: dict[str, Any] = {
        "level": config.augment,
        "horizontal_flip": on,
        "shift_fraction": config.shift if on else 0.0,
        "rotation_fraction": config.rotation if full else 0.0,
        "random_erasing_prob": config.erase_prob if full else 0.0,
    }
    if config.augment == "photo":
        record.update(
            zoom_range=[-config.zoom, config.zoom],
            contrast_and_gamma_prob=config.photometric_prob,
            contrast_factor_range=[1 - config.contrast, 1 + config.contrast],
            gamma_range=[round(1 / config.gamma, 4), config.gamma],
            blur_prob=config.blur_prob,
            blur_sigma=config.blur_sigma,
            blur_strength="uniform 0-1 blend of the blurred image",
            random_erasing_fill="background (0)",
        )
    return record


def _geometric(config: TrainConfig):
    """Flips, ("photo") zoom, shifts and ("full", "photo") rotations, filling with 0: the dataset's
    background after negation is black."""
    import keras
    from keras import layers

    steps = [layers.RandomFlip("horizontal", seed=config.seed)]
    if config.augment == "photo":
        # about the centre, where the conversion puts the garment
        steps.append(
            layers.RandomZoom((-config.zoom, config.zoom), fill_mode="constant", seed=config.seed + 3)
        )
    # nearest: whole-pixel shifts keep the images as sharp as the test images (bilinear blurs them)
    steps.append(
        layers.RandomTranslation(
            config.shift, config.shift, fill_mode="constant", interpolation="nearest", seed=config.seed + 2
        )
    )
    if _uses_full(config):
        steps.append(layers.RandomRotation(config.rotation, fill_mode="constant", seed=config.seed + 1))
    return keras.Sequential(steps, name="augment")


def random_erasing(images, probability: float, to_background: bool):
    """Zhong et al. 2017: blank a random rectangle (2-20% of the area) in a fraction of the images, with
    noise, or (`to_background`) with 0: a converted photo's background is exactly 0, so noise there is
    never seen; a blanked part of the garment is (light prints and highlights fall below the threshold)."""
    import tensorflow as tf

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
    apply = tf.random.uniform([n]) < probability
    mask = rows[:, :, None] & cols[:, None, :] & apply[:, None, None]
    fill = tf.zeros_like(images) if to_background else tf.random.uniform(tf.shape(images))
    return tf.where(mask[..., None], fill, images)


def contrast_and_gamma(images, config: TrainConfig):
    """A random contrast (about the garment's mean) and gamma for a fraction of the images. Only the
    garment's pixels change: 0 ** g is 0, and contrast is applied inside the garment mask."""
    import tensorflow as tf

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


def _gaussian_weights(sigma: float) -> np.ndarray:
    """A 5-tap Gaussian kernel, normalised."""
    bell = np.exp(-(np.arange(-2, 3) ** 2) / (2 * sigma**2))
    return (bell / bell.sum()).astype(np.float32)


def _blur_along(images, axis: int, weights: np.ndarray):
    """A 1-D Gaussian along `axis` as shifted sums: conv2d with one channel is ten times slower on CPU;
    zero padding, as the background around the frame is 0 too."""
    import tensorflow as tf

    padding = [[0, 0]] * 4
    padding[axis] = [2, 2]
    padded = tf.pad(images, padding)
    window = [slice(None)] * 4
    total = 0.0
    for shift, weight in enumerate(weights):
        window[axis] = slice(shift, shift + IMAGE_SIZE)
        total += weight * padded[tuple(window)]
    return total


def blur(images, config: TrainConfig):
    """For a fraction of the images, the Gaussian-blurred image blended in at a random strength."""
    import tensorflow as tf

    weights = _gaussian_weights(config.blur_sigma)
    n = tf.shape(images)[0]
    blurred = _blur_along(_blur_along(images, 1, weights), 2, weights)
    strength = tf.random.uniform([n, 1, 1, 1])
    strength *= tf.cast(tf.random.uniform([n, 1, 1, 1]) < config.blur_prob, tf.float32)
    return tf.clip_by_value(images + strength * (blurred - images), 0.0, 1.0)


def make_augment(config: TrainConfig) -> Callable:
    """A batch-wise augmentation `(images, labels) -> (images, labels)` for tf.data: flips, shifts and
    small rotations, then random erasing; "photo" adds scale, contrast, gamma and blur and erases to
    background instead of noise."""
    geometric = _geometric(config)
    photo, full = config.augment == "photo", _uses_full(config)

    def augment(images, labels):
        images = geometric(images, training=True)
        if photo:
            images = blur(contrast_and_gamma(images, config), config)
        if full:
            images = random_erasing(images, config.erase_prob, to_background=photo)
        return images, labels

    return augment
