"""The dataset's own conversion steps, one small function each, on Pillow images.

The Fashion-MNIST paper (arXiv:1708.07747, section 2) converted catalog photos on a light background by:
trimming the edges within 5% of the corner colour (trim_background, around background_colour),
resizing the longest edge to 28 (fit_longest_edge), sharpening (sharpen), extending the shorter edge to
28 with the image centred (centre_on_canvas), negating (negate), and converting to 8-bit grayscale
(to_grayscale). What arbitrary photos need besides: photos already on a dark background are not negated
(is_dark_background, on the grey level luminance gives), and a grey background is stretched to exactly
0 like the dataset's (zero_background_level), the brightest pixel to 255 (stretch_to_full_range).
conversion.convert_image runs them in order.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageChops, ImageFilter

# The paper sharpens at 28x28 with "a Gaussian operator of the radius and sigma 1.0", i.e. ImageMagick's
# -sharpen 1x1, which works out to unsharp masking with amount ~0.83 over a 3x3 Gaussian; on all pixels.
SHARPEN_RADIUS = 1.0
SHARPEN_PERCENT = 80
SHARPEN_THRESHOLD = 0

# Pillow's resize first box-reduces by an integer factor to within this many times the target, then
# resamples with the real filter: much faster than filtering the whole image, same round-trip fidelity.
REDUCING_GAP = 2.0


def to_grayscale(img: Image.Image) -> Image.Image:
    """RGB -> 8-bit greyscale (ITU-R 601 luma, Pillow's L)."""
    return img.convert("L")


def background_colour(img: Image.Image) -> tuple[int, int, int]:
    """The background colour of an RGB image: per-channel median of its four corners (a garment that
    reaches one corner does not change it)."""
    right, bottom = img.width - 1, img.height - 1
    corners = [img.getpixel(xy) for xy in ((0, 0), (right, 0), (0, bottom), (right, bottom))]
    per_channel = (sorted(channel) for channel in zip(*corners, strict=True))
    return tuple(round((c[1] + c[2]) / 2) for c in per_channel)


def map_through(img: Image.Image, table: Sequence[int]) -> Image.Image:
    """``img.point(table)`` for a table of ints (256 entries per band): the same pixels, but Pillow's point()
    rounds every entry of the table in Python on each call (0.1 ms for an RGB table), and every photo
    goes through several such tables; these are ints already, so they go straight to Pillow's core."""
    img.load()
    return img._new(img.im.point(table, None))


@functools.lru_cache(maxsize=64)
def far_channel_table(colour: tuple[int, int, int], limit: int) -> tuple[int, ...]:
    """Per-channel lookup table: 255 where a value is more than ``limit`` away from the colour."""
    return tuple(0 if abs(v - c) <= limit else 255 for c in colour for v in range(256))


def trim_background(
    img: Image.Image, tolerance: float, background: tuple[int, int, int] | None = None
) -> Image.Image:
    """Crop an RGB image to the box of pixels that differ from the background colour by more than
    ``tolerance``, a fraction of full intensity.

    Distance is the root-mean-square of the R, G, B differences (ImageMagick's -fuzz), i.e. Euclidean
    distance in RGB compared with ``tolerance * 255 * sqrt(3)``. It is decided in colour so a garment of
    a different hue but similar brightness to the background is still found. When nothing differs the
    image is returned unchanged.
    """
    colour = background or background_colour(img)
    # A pixel whose every channel is within tolerance*255 of the background cannot be beyond the limit,
    # so a native lookup table + getbbox gives a box that surely holds the answer, without numpy...
    channel_limit = int(tolerance * 255)
    box = map_through(img, far_channel_table(colour, channel_limit)).getbbox()
    if box is None:
        return img
    # ...then its edges move inwards until they meet a pixel that is really far (usually at once).
    pixels = np.asarray(img.crop(box))
    reference = np.array(colour, dtype=np.int32)
    squared_limit = 3 * (tolerance * 255) ** 2

    def has_far_pixel(strip: np.ndarray) -> bool:
        difference = strip.astype(np.int32) - reference
        return bool(((difference * difference).sum(axis=-1) > squared_limit).any())

    top, bottom, left, right = 0, pixels.shape[0], 0, pixels.shape[1]
    while top < bottom and not has_far_pixel(pixels[top]):
        top += 1
    if top == bottom:
        return img
    while not has_far_pixel(pixels[bottom - 1]):
        bottom -= 1
    while not has_far_pixel(pixels[top:bottom, left]):
        left += 1
    while not has_far_pixel(pixels[top:bottom, right - 1]):
        right -= 1
    return img.crop((box[0] + left, box[1] + top, box[0] + right, box[1] + bottom))


def fit_longest_edge(img: Image.Image, size: int, resample: str = "lanczos") -> Image.Image:
    """Resize so the longest edge is ``size``, keeping the aspect ratio (the short edge is >= 1 px).

    A real filter, not subsampling: aliasing from large photos would add texture the dataset lacks.
    """
    scale = size / max(img.size)
    new_size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    if new_size == img.size:
        return img
    return img.resize(new_size, Image.Resampling[resample.upper()], reducing_gap=REDUCING_GAP)


def sharpen(img: Image.Image) -> Image.Image:
    """Unsharp mask with a radius-1 Gaussian, as the dataset's images were sharpened after resizing."""
    return img.filter(ImageFilter.UnsharpMask(SHARPEN_RADIUS, SHARPEN_PERCENT, SHARPEN_THRESHOLD))


def centre_on_canvas(img: Image.Image, size: int, fill: int | tuple[int, ...]) -> Image.Image:
    """Paste ``img`` centred on a size x size canvas of colour ``fill`` (extends the shorter edge).

    An odd margin puts its extra pixel left/top, as in the dataset (measured on its test set).
    """
    if img.size == (size, size):
        return img
    canvas = Image.new(img.mode, (size, size), fill)
    canvas.paste(img, ((size - img.width + 1) // 2, (size - img.height + 1) // 2))
    return canvas


def luminance(colour: int | tuple[int, ...]) -> int:
    """Grey level of a colour exactly as to_grayscale computes it (so canvas and image match)."""
    if isinstance(colour, int):
        return colour
    return Image.new("RGB", (1, 1), tuple(colour[:3])).convert("L").getpixel((0, 0))


def is_dark_background(colour: int | tuple[int, ...]) -> bool:
    """A background darker than mid-grey: the photo is already light-on-dark, like the dataset."""
    return luminance(colour) < 128


def negate(img: Image.Image) -> Image.Image:
    """255 - v for every channel (native; ImageOps.invert builds a Python lookup table each call)."""
    return ImageChops.invert(img)


def zero_background_level(img: Image.Image, level: int) -> Image.Image:
    """Map grey ``level`` (the background after negation) to 0 and keep 255, stretching linearly between;
    darker values clip to 0. ``level`` is below 255; white-background photos (level 0) are unchanged."""
    if level <= 0:
        return img
    return map_through(img, _zero_level_table(level))


@functools.lru_cache(maxsize=256)
def _zero_level_table(level: int) -> tuple[int, ...]:
    gain = 255 / (255 - level)
    return (0,) * level + tuple(round((v - level) * gain) for v in range(level, 256))


@functools.lru_cache(maxsize=256)
def _full_range_table(brightest: int) -> np.ndarray:
    return np.array([min(255, round(v * 255 / brightest)) for v in range(256)], dtype=np.uint8)


def stretch_to_full_range(pixels: np.ndarray) -> np.ndarray:
    """Scale a uint8 image's intensities so its brightest pixel becomes 255 (0 stays 0); a blank image
    is unchanged. On the 28x28 array, where a lookup costs microseconds."""
    brightest = int(pixels.max(initial=0))
    if brightest in (0, 255):
        return pixels
    return _full_range_table(brightest)[pixels]
