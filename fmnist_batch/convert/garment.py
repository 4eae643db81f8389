"""The colour pictures the colour models read: a worn garment's for the garment reader (models/garment),
and the whole photo's, squared on white, for the scope judge (models/scope).

The 28x28 grey image keeps a garment's outline, which is what Fashion-MNIST's classes are told apart by
on a flat product shot. Worn, the outline is the wearer's: a zipped sweatshirt, a jacket and a shirt
share it, and what tells them apart is texture, buttons, a collar, a zip, colour. So the worn path also
keeps the garment in colour, cut out on white, squared and sized for the reader's input.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

#: the garment reader's input side when its card says none (EfficientNet-Lite0's own resolution); the
#: conversion is told the card's (ConversionSettings.garment_side)
GARMENT_INPUT = 224
WHITE = (255, 255, 255)


def mask_box(mask: np.ndarray) -> tuple[slice, slice]:
    """The bounding box of a non-empty 2-D bool mask, as slices."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def square_on_white(rgb: np.ndarray, mask: np.ndarray, side: int = GARMENT_INPUT) -> np.ndarray:
    """The masked pixels of an H x W x 3 uint8 photo on white, cropped to the mask, centred on a white
    square and resized to `side`: a side x side x 3 uint8 array."""
    box = mask_box(mask)
    cut = np.where(mask[box][..., None], rgb[box], np.uint8(255)).astype(np.uint8)
    return on_white_square(Image.fromarray(cut), side)


def on_white_square(img: Image.Image, side: int) -> np.ndarray:
    """An RGB image centred on a white square and resized to `side` (bilinear): a side x side x 3 uint8
    array. The scope judge reads the whole photo so (its picture has no mask to cut by)."""
    width, height = img.size
    square = max(height, width)
    canvas = Image.new("RGB", (square, square), WHITE)
    canvas.paste(img, ((square - width) // 2, (square - height) // 2))
    return np.asarray(canvas.resize((side, side), Image.Resampling.BILINEAR))
