"""The dataset's own steps (fmnist_batch/convert/steps.py), each on a generated image: trimming, fitting
to 28, sharpening, centring, negating, the full range, the lookup tables."""

from __future__ import annotations

import numpy as np
import pytest
from photos import CATALOG_GREY, WHITE, photo_with_box
from PIL import Image, ImageDraw

from fmnist_batch.convert import (
    background_colour,
    centre_on_canvas,
    fit_longest_edge,
    is_dark_background,
    negate,
    sharpen,
    stretch_to_full_range,
    to_grayscale,
    trim_background,
)
from fmnist_batch.convert.steps import far_channel_table, map_through, zero_background_level

# --- trimming -------------------------------------------------------------------------------------


def test_trim_removes_a_plain_border_exactly():
    img = photo_with_box(box=(10, 20, 40, 60))
    trimmed = trim_background(img, 0.05)
    assert trimmed.size == (30, 40)
    assert np.array_equal(np.asarray(trimmed), np.asarray(img.crop((10, 20, 40, 60))))


@pytest.mark.parametrize(
    ("colour", "kept"),
    [
        ((212, 212, 212), False),  # RMS difference 12 <= 12.75 (5% of 255): background
        ((214, 214, 214), True),  # RMS 14: garment
        ((222, 200, 200), False),  # one channel off by 22: RMS 12.7, still within 5%
        ((223, 200, 200), True),  # RMS 12.9: beyond
    ],
)
def test_trim_tolerance_is_rms_colour_distance(colour, kept):
    img = photo_with_box(size=(60, 60), box=(5, 5, 55, 55), background=(200, 200, 200), colour=(20, 20, 20))
    ImageDraw.Draw(img).rectangle((0, 28, 2, 30), fill=colour)  # a patch left of the garment
    assert trim_background(img, 0.05).size == ((55, 50) if kept else (50, 50))


def test_trim_finds_a_colourful_garment_of_background_brightness():
    grey = (128, 128, 128)
    img = photo_with_box(size=(80, 80), box=(20, 10, 50, 70), background=grey, colour=(200, 92, 92))
    assert abs(to_grayscale(img).getpixel((30, 30)) - 128) < 0.05 * 255  # invisible in greyscale
    assert trim_background(img, 0.05).size == (30, 60)


def test_trim_of_a_blank_image_returns_it_unchanged():
    img = Image.new("RGB", (50, 40), CATALOG_GREY)
    assert trim_background(img, 0.05).size == (50, 40)


def test_background_colour_ignores_a_garment_in_one_corner():
    img = photo_with_box(size=(60, 60), box=(0, 30, 30, 60), background=CATALOG_GREY)
    assert background_colour(img) == CATALOG_GREY


# --- geometry -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((300, 100), (28, 9)),
        ((100, 300), (9, 28)),
        ((1000, 2), (28, 1)),
        ((10, 5), (28, 14)),
        ((28, 28), (28, 28)),
    ],
)
def test_fit_longest_edge_keeps_aspect_ratio(size, expected):
    assert fit_longest_edge(Image.new("L", size, 0), 28).size == expected


def test_fit_longest_edge_does_not_alias_fine_stripes():
    stripes = np.zeros((600, 600), dtype=np.uint8)
    stripes[:, ::2] = 255  # 1-px stripes: subsampling would give solid black or white
    fitted = np.asarray(fit_longest_edge(Image.fromarray(stripes), 28))
    assert np.abs(fitted.astype(int) - 128).max() <= 8  # subsampled: 0 or 255


def test_centre_on_canvas_centres_with_the_datasets_rounding():
    canvas = np.asarray(centre_on_canvas(Image.new("L", (28, 10), 255), 28, 7))
    assert (canvas[9:19] == 255).all() and (canvas[:9] == 7).all() and (canvas[19:] == 7).all()
    odd = np.asarray(centre_on_canvas(Image.new("L", (9, 28), 255), 28, 0))
    columns = np.flatnonzero(odd.any(axis=0))
    assert (columns[0], 27 - columns[-1]) == (10, 9)  # the extra margin pixel goes left, like the dataset


def test_sharpen_increases_contrast_only_at_outlines():
    step = np.full((28, 28), 100, dtype=np.uint8)
    step[:, 14:] = 150
    sharpened = np.asarray(sharpen(Image.fromarray(step))).astype(int)
    assert sharpened[:, 13].max() < 100 and sharpened[:, 14].min() > 150
    assert (sharpened[:, :10] == 100).all() and (sharpened[:, 18:] == 150).all()


# --- intensities ----------------------------------------------------------------------------------


def test_negate():
    values = np.array([[0, 1, 128, 255]], dtype=np.uint8)
    assert np.asarray(negate(Image.fromarray(values))).tolist() == [[255, 254, 127, 0]]


@pytest.mark.parametrize(
    ("colour", "dark"),
    [
        ((0, 0, 0), True),
        ((127, 127, 127), True),
        ((128, 128, 128), False),
        (WHITE, False),
        ((200, 30, 30), True),
    ],
)
def test_is_dark_background(colour, dark):
    assert is_dark_background(colour) is dark


def test_stretch_to_full_range_brings_the_brightest_pixel_to_255_and_keeps_black():
    pixels = np.array([[0, 50], [100, 200]], dtype=np.uint8)
    stretched = stretch_to_full_range(pixels)
    assert stretched.dtype == np.uint8
    np.testing.assert_array_equal(stretched, [[0, 64], [128, 255]])
    assert stretch_to_full_range(np.zeros((4, 4), np.uint8)).max() == 0
    full = np.array([[0, 255]], dtype=np.uint8)
    assert stretch_to_full_range(full) is full


# --- lookup tables ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_map_through_gives_pillows_point_pixels(mode):
    rng = np.random.default_rng(0)
    shape = (37, 53) if mode == "L" else (37, 53, 3)
    img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
    tables = [tuple(int(v) for v in rng.integers(0, 256, 256 * len(mode)))]
    if mode == "RGB":
        tables.append(far_channel_table((200, 10, 128), 12))
    for table in tables:
        mapped = map_through(img, table)
        assert mapped.mode == mode and mapped.size == img.size
        assert np.array_equal(np.asarray(mapped), np.asarray(img.point(list(table))))


def test_zero_background_level_maps_the_level_to_0_and_keeps_255():
    grey = Image.fromarray(np.array([[0, 40, 41, 100, 255]], dtype=np.uint8))
    levelled = np.asarray(zero_background_level(grey, 40)).tolist()[0]
    assert levelled == [0, 0, round(255 / 215), round(60 * 255 / 215), 255]
    assert zero_background_level(grey, 0) is grey
