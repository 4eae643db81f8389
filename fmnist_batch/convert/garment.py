"""The colour pictures the colour models read: a worn garment's for the garment reader (models/garment),
and the photo's, squared on white, for the scope judge (models/scope).

The 28x28 grey image keeps a garment's outline, which is what Fashion-MNIST's classes are told apart by
on a flat product shot. Worn, the outline is the wearer's: a zipped sweatshirt, a jacket and a shirt
share it, and what tells them apart is texture, buttons, a collar, a zip, colour. So the worn path also
keeps the garment in colour, cut out on white, squared and sized for the reader's input.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from fmnist_batch.convert.segment import has_plain_background
from fmnist_batch.convert.steps import background_colour, trim_background

#: the garment reader's input side when its card says none (EfficientNet-Lite0's own resolution); the
#: conversion is told the card's (ConversionSettings.garment_side)
GARMENT_INPUT = 224
WHITE = (255, 255, 255)
#: A product on a plain background reaches the scope judge cut to its box with this much of its
#: background around it (a share of its longest side): at 128 px a small product (a ring, a cufflink)
#: otherwise fills a few pixels of the picture, and with no margin at all the judge loses the blurred
#: outlines of catalog renders. Chosen on licensed photos: scripts/choose_scope_margin.py.
SUBJECT_MARGIN = 0.1
#: trim_background's tolerance for the judge's picture: the dataset conversion's default
SUBJECT_TOLERANCE = 0.05


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
    array."""
    width, height = img.size
    square = max(height, width)
    canvas = Image.new("RGB", (square, square), WHITE)
    canvas.paste(img, ((square - width) // 2, (square - height) // 2))
    return np.asarray(canvas.resize((side, side), Image.Resampling.BILINEAR))


def judge_picture(rgb: Image.Image, side: int, margin: float = SUBJECT_MARGIN) -> np.ndarray:
    """What the scope judge reads of an RGB photo: its judge_subject centred on a white square and resized
    to `side` (side x side x 3 uint8)."""
    return on_white_square(judge_subject(rgb, margin), side)


def judge_subject(rgb: Image.Image, margin: float = SUBJECT_MARGIN) -> Image.Image:
    """The part of an RGB photo the scope judge reads, at any side: a product on a plain background (a
    catalog shot, a model on a studio wall) cut to its box with `margin` of its background around it, any
    other photo whole."""
    if not has_plain_background(rgb):
        return rgb
    background = background_colour(rgb)
    subject = trim_background(rgb, SUBJECT_TOLERANCE, background)
    width, height = subject.size
    pad = round(margin * max(width, height))
    framed = Image.new("RGB", (width + 2 * pad, height + 2 * pad), background)
    framed.paste(subject, (pad, pad))
    return framed
