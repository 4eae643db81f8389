"""Retrain's settings and the constants every training step shares."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

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
#: The conversion the dataset's images went through (the paper's, section 2), keyed as ConversionSettings'
#: fields: what the card tells classify to do to a photo so it looks like the images the model learnt.
DATASET_CONVERSION = {"trim_tolerance": 0.05, "sharpen": True, "invert": "auto"}


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
    workers: int | None = None  # processes converting the real photos (default: one per usable CPU)
    #: average the logits of an image and its mirror image at inference: "on" for the images below the
    #: confidence gate chosen on validation, "all" for every image, "auto" "on" when mirroring is more
    #: accurate on the validation split, "off" never
    flip_average: str = "auto"
    #: also export an int8-quantized .tflite: "auto" makes LiteRT run it when its validation accuracy
    #: through the runtime is within INT8_TOLERANCE of the float file's, "on" always, "off" never exports it
    quantize: str = "auto"
    command: list[str] = field(default_factory=lambda: list(sys.argv))


def check_config(config: TrainConfig) -> None:
    """Refuse settings that cannot work together, before any file is read or written."""
    if config.epochs == 0 and not config.init_from:
        raise TrainSetupError("--epochs 0 evaluates and exports a trained model: name it with --init-from")
    if config.extra_data and not 0.0 <= config.extra_share < 1.0:
        raise TrainSetupError(f"--extra-share must be at least 0 and below 1, got {config.extra_share}")
