"""Path or PIL image -> the 28x28 uint8 array the model sees, the way Fashion-MNIST itself was made.

The paper (arXiv:1708.07747, section 2) converted catalog photos on a light background by: trimming the
edges within 5% of the corner colour, resizing the longest edge to 28, sharpening, extending the shorter
edge to 28 with the image centred, negating, and converting to 8-bit grayscale. ``preprocess_image``
runs those steps in that order, one small function each, plus what arbitrary files need: EXIF
orientation, alpha composited onto white, unusual modes, photos already on a dark background, a grey
background stretched to exactly 0 like the dataset's, and JPEG decoding at reduced scale. Grayscale
conversion happens right after trimming (trimming needs colour, nothing after it does) so the later
steps work on one channel.

Photos that are not catalog shots (a garment on a floor, a bed, a hanger) first go through
``segment_garment``: GrabCut finds the garment, which is pasted, evenly contrasted, onto the catalog
background, and the dataset's steps then run unchanged. Under ``background="auto"`` only photos whose
border is not one plain colour take that path, so catalog photos get exactly the plain conversion.

Only PIL and numpy are imported up front (OpenCV only when a photo is segmented) and every step is a
module-level function, so worker processes can import and pickle this cheaply.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import struct
import warnings
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageChops, ImageFilter, ImageOps, UnidentifiedImageError

from fmnist_batch.convert import png
from fmnist_batch.labels import DEFAULT_MAX_PIXELS, IMAGE_SIZE

INVERT_CHOICES = ("auto", "always", "never")
BACKGROUND_CHOICES = ("auto", "plain", "segment")
RESAMPLE_CHOICES = ("lanczos", "bicubic", "bilinear", "box", "hamming", "nearest")
WHITE = (255, 255, 255)

# The paper sharpens at 28x28 with "a Gaussian operator of the radius and sigma 1.0", i.e. ImageMagick's
# -sharpen 1x1, which works out to unsharp masking with amount ~0.83 over a 3x3 Gaussian; on all pixels.
SHARPEN_RADIUS = 1.0
SHARPEN_PERCENT = 80
SHARPEN_THRESHOLD = 0

# Pillow's resize first box-reduces by an integer factor to within this many times the target, then
# resamples with the real filter: much faster than filtering the whole image, same round-trip fidelity.
REDUCING_GAP = 2.0

# What Pillow raises for undecodable data besides UnidentifiedImageError: plugins are not consistent.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, struct.error)


class ImageError(Exception):
    """A file could not be turned into a model input; str(e) is a one-line reason for the user."""


@dataclass(frozen=True)
class PreprocessSettings:
    size: int = IMAGE_SIZE
    #: Trim edges whose colour is within this fraction of full intensity of the corner colour
    #: (root-mean-square over R, G, B, like ImageMagick's -fuzz).
    trim_tolerance: float = 0.05
    #: "auto" negates unless the background is dark (such photos already look like the dataset).
    invert: str = "auto"
    sharpen: bool = True
    #: Refuse images with more pixels than this before decoding them.
    max_pixels: int = DEFAULT_MAX_PIXELS
    #: Filter for the resize to ``size`` (one of RESAMPLE_CHOICES).
    resample: str = "lanczos"
    #: Images are decoded (JPEG: Pillow's draft mode) or box-reduced (other formats) by an integer factor as
    #: long as the short side stays >= draft_factor * size. 4 keeps the round trip to the dataset's images
    #: as close as 8 did (mean correlation 0.94 on 300 rendered catalog photos) at half the pixels.
    draft_factor: int = 4
    #: Stretch intensities so the background becomes exactly 0 (the dataset's background) even when the
    #: photo's background is grey rather than white.
    zero_background: bool = True
    #: Stretch a catalog shot's intensities so its brightest pixel is 255, as in the dataset (every one of
    #: its 60,000 training images reaches at least 250): a navy or grey garment otherwise reaches the
    #: model dimmer than the dataset ever shows one. Segmented photos keep their own contrast levels,
    #: which the photo model was trained on.
    full_range: bool = True
    #: "plain" runs the dataset's conversion as it is; "segment" first cuts the garment out of its
    #: surroundings and pastes it onto the catalog background; "auto" segments only photos whose border
    #: is not one plain colour, so catalog photos keep the fast path and exactly its result.
    background: str = "auto"
    #: Longest edge, in pixels, at which a garment is segmented (GrabCut's time grows with the area).
    segment_size: int = 160

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"size must be >= 1, got {self.size}")
        if not 0 <= self.trim_tolerance < 1:
            raise ValueError(f"trim_tolerance must be in [0, 1), got {self.trim_tolerance}")
        if self.invert not in INVERT_CHOICES:
            raise ValueError(f"invert must be one of {', '.join(INVERT_CHOICES)}, got {self.invert!r}")
        if self.resample not in RESAMPLE_CHOICES:
            raise ValueError(f"resample must be one of {', '.join(RESAMPLE_CHOICES)}, got {self.resample!r}")
        if self.max_pixels < 1:
            raise ValueError(f"max_pixels must be >= 1, got {self.max_pixels}")
        if self.draft_factor < 1:
            raise ValueError(f"draft_factor must be >= 1, got {self.draft_factor}")
        if self.background not in BACKGROUND_CHOICES:
            choices = ", ".join(BACKGROUND_CHOICES)
            raise ValueError(f"background must be one of {choices}, got {self.background!r}")
        if self.segment_size < 32:
            raise ValueError(f"segment_size must be >= 32, got {self.segment_size}")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _bomb_message(width: int, height: int, limit: int) -> str:
    return f"image too large: {width}x{height} = {width * height:,} pixels exceeds the limit of {limit:,}"


def _pillow_bomb_message(error: Image.DecompressionBombError, limit: int) -> str:
    # Pillow refuses beyond twice its MAX_IMAGE_PIXELS before we see the size; its message has the count.
    found = re.search(r"\((\d+) pixels\)", str(error))
    if found is None:
        return f"image too large: {_one_line(error)}"
    limit = min(limit, 2 * (Image.MAX_IMAGE_PIXELS or limit))
    return f"image too large: {int(found.group(1)):,} pixels exceeds the limit of {limit:,}"


def _open_error(error: OSError) -> ImageError:
    if isinstance(error, FileNotFoundError):
        return ImageError("file not found")
    if isinstance(error, PermissionError):
        return ImageError("permission denied")
    if isinstance(error, IsADirectoryError):
        return ImageError("is a directory")
    return ImageError(f"cannot open file: {error.strerror or _one_line(error)}")


def load_image(path: str | os.PathLike, settings: PreprocessSettings = PreprocessSettings()) -> Image.Image:
    """Open and decode the first frame of an image file, upright (EXIF orientation applied).

    The pixel count is checked from the header before anything is decoded. JPEGs decode at reduced scale
    (Pillow's draft mode) and other formats are box-reduced after decoding (see reduce_to), which is most
    of the speed of the whole pipeline; common PNGs inflate with ISA-L (see png.py), to the same pixels.
    Every failure is an ImageError with a short reason.
    """
    try:
        with open(path, "rb") as file:
            return _decode(file, settings)
    except OSError as e:  # only from opening or closing: _decode reports its own failures as ImageError
        raise _open_error(e) from None


def load_image_bytes(
    data: bytes | bytearray, settings: PreprocessSettings = PreprocessSettings()
) -> Image.Image:
    """load_image for a file already in memory (an upload): the same checks and ImageError messages, and
    nothing is written to disk."""
    return _decode(io.BytesIO(data), settings)


def _size(file: BinaryIO) -> int:
    if isinstance(file, io.BytesIO):
        return file.getbuffer().nbytes
    return os.fstat(file.fileno()).st_size


def _decode(file: BinaryIO, settings: PreprocessSettings) -> Image.Image:
    with warnings.catch_warnings():
        # Per-file quirks (corrupt EXIF, Pillow's 89M-pixel bomb warning, below our own max_pixels) are not
        # actionable and would flood stderr from every worker; real failures become ImageError below.
        warnings.simplefilter("ignore")
        size = _size(file)
        if size == 0:
            raise ImageError("empty file")
        target = settings.draft_factor * settings.size
        if size <= png.MAX_INFLATED_BYTES and png.available() and file.read(8) == png.SIGNATURE:
            file.seek(0)
            fast = png.decode_png(file.read(), settings.max_pixels)
            if fast is not None:
                return reduce_to(fast, target)  # no eXIf chunk, so nothing to turn upright
        file.seek(0)
        try:
            img = Image.open(file)
        except UnidentifiedImageError:
            raise ImageError("not an image file (cannot identify image format)") from None
        except Image.DecompressionBombError as e:
            raise ImageError(_pillow_bomb_message(e, settings.max_pixels)) from None
        except _DECODE_ERRORS as e:
            raise ImageError(f"corrupt image header: {_one_line(e)}") from None

        width, height = img.size
        if width * height > settings.max_pixels:
            raise ImageError(_bomb_message(width, height, settings.max_pixels))
        # A no-op except for JPEG (and MPO): decode at 1/2, 1/4 or 1/8 scale, keeping >= target pixels.
        img.draft(None, (target, target))
        try:
            img.load()
        except Image.DecompressionBombError as e:
            raise ImageError(_pillow_bomb_message(e, settings.max_pixels)) from None
        except _DECODE_ERRORS as e:
            raise ImageError(f"truncated or corrupt image: {_one_line(e)}") from None
        # Broken EXIF raises all sorts of errors; orientation is best-effort.
        with contextlib.suppress(Exception):
            ImageOps.exif_transpose(img, in_place=True)
    return reduce_to(img, target)


def reduce_to(img: Image.Image, short_side: int) -> Image.Image:
    """Box-reduce by the largest integer factor that keeps the short side >= ``short_side``.

    What JPEG's draft mode does while decoding, for every other format (and for JPEGs larger than 1/8
    scale can bring down): trimming and resizing then touch some 10^4 pixels, not millions. Only plain L
    and RGB: averaging with transparent pixels would darken a garment's edges.
    """
    factor = min(img.size) // short_side
    if factor < 2 or img.mode not in ("L", "RGB") or "transparency" in img.info:
        return img
    return img.reduce(factor)


def _high_bit_depth_to_l(img: Image.Image) -> Image.Image:
    """16-bit, 32-bit integer and float greyscale -> 8-bit, scaled (Pillow's own convert clips at 255)."""
    pixels = np.asarray(img).astype(np.float32)
    if img.mode.startswith("I;16"):
        full_scale = 65535.0
    else:
        # "I" and "F" carry no declared range: take the smallest usual one that holds the data.
        top = float(pixels.max()) if pixels.size else 0.0
        candidates = (1.0, 255.0, 65535.0) if img.mode == "F" else (255.0, 65535.0)
        full_scale = next((c for c in candidates if top <= c), top)
    scaled = np.clip(np.rint(pixels * (255.0 / full_scale)), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled)


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB; transparency is composited onto white (a catalog background)."""
    if img.mode == "RGB" and "transparency" not in img.info:
        return img
    if img.mode.startswith("I") or img.mode == "F":
        img = _high_bit_depth_to_l(img)
    try:
        if img.mode in ("RGBA", "RGBa", "LA", "PA") or "transparency" in img.info:
            rgba = img.convert("RGBA")
            canvas = Image.new("RGB", img.size, WHITE)
            canvas.paste(rgba, mask=rgba.getchannel("A"))
            return canvas
        return img.convert("RGB")
    except ValueError as e:
        raise ImageError(f"unsupported image mode {img.mode}: {_one_line(e)}") from None


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


@functools.lru_cache(maxsize=64)
def _far_channel_table(colour: tuple[int, int, int], limit: int) -> list[int]:
    """Per-channel lookup table: 255 where a value is more than ``limit`` away from the colour."""
    return [0 if abs(v - c) <= limit else 255 for c in colour for v in range(256)]


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
    box = img.point(_far_channel_table(colour, channel_limit)).getbbox()
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
    gain = 255 / (255 - level)
    return img.point([0] * level + [round((v - level) * gain) for v in range(level, 256)])


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


# --- photos that are not catalog shots: find the garment first ---------------------------------------

#: A photo counts as a catalog shot when at least PLAIN_BORDER_SHARE of its border ring is within
#: PLAIN_BORDER_TOLERANCE of the corner colour. A catalog garment may touch an edge or two and JPEG adds
#: a few levels of noise (rendered catalog photos: share >= 0.9); amateur photos on floors, beds and
#: hangers rarely come close: of 990 in clothing-dataset-small, 25 reach 0.7 at 5% but segmenting
#: reads them better (14 right against 9), and only 3 reach it at 3%.
PLAIN_BORDER_SHARE = 0.7
PLAIN_BORDER_TOLERANCE = 0.03
#: The dataset's catalog background (#fdfdfd), onto which a segmented garment is pasted.
CATALOG_LEVEL = 0xFD
#: Where auto_contrast puts the garment's 5th and 95th percentile grey: the darkest garment pixels
#: reach the model at intensity 200, the lightest at 80 (of 255), mid-range like the dataset's garments.
CONTRAST_LEVELS = (53, 173)


def border_ring(pixels: np.ndarray, width: int) -> np.ndarray:
    """The pixels of the outer ring ``width`` pixels wide of an H x W (x C) array, one per row."""
    channels = pixels.shape[2:]
    return np.concatenate(
        [
            pixels[:width].reshape(-1, *channels),
            pixels[-width:].reshape(-1, *channels),
            pixels[width:-width, :width].reshape(-1, *channels),
            pixels[width:-width, -width:].reshape(-1, *channels),
        ]
    )


def plain_border_share(img: Image.Image, tolerance: float) -> float:
    """Share of an RGB image's outer ring (1% of the short side, at least 1 px) whose colour is within
    ``tolerance`` of the corner colour, by the distance trim_background uses."""
    # only the ring is widened to int32: this runs on every photo, and copying the whole image cost more
    # than the rest of the test
    ring = border_ring(np.asarray(img), max(1, min(img.size) // 100)).astype(np.int32)
    difference = ring - np.array(background_colour(img), dtype=np.int32)
    return float(((difference * difference).sum(axis=-1) <= 3 * (tolerance * 255) ** 2).mean())


def has_plain_background(img: Image.Image) -> bool:
    """True for a catalog shot: most of the border is one colour, so trimming finds the garment as is."""
    return plain_border_share(img, PLAIN_BORDER_TOLERANCE) >= PLAIN_BORDER_SHARE


def _cv2():
    # Imported here: only the robust path needs OpenCV (~40 ms, 17 MB), and classify must start fast.
    import cv2

    cv2.setNumThreads(1)  # conversion already runs one worker per core
    return cv2


def grabcut_mask(pixels: np.ndarray, margin: float = 0.05, iterations: int = 4) -> np.ndarray:
    """Foreground mask (bool H x W) of an RGB uint8 array by OpenCV's GrabCut, initialised with a centre
    rectangle that leaves ``margin`` of each side as sure background (photographers centre the garment).

    GrabCut models foreground and background colours as Gaussian mixtures and cuts between them along
    edges, so a garment on a patterned floor or a bed is found where a single background colour is not.
    The random seed is fixed so a photo gives the same mask in any order and any process.
    """
    cv2 = _cv2()
    height, width = pixels.shape[:2]
    mx, my = max(1, round(width * margin)), max(1, round(height * margin))
    mask = np.zeros((height, width), np.uint8)
    models = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)
    bgr = np.ascontiguousarray(pixels[:, :, ::-1])
    rectangle = (mx, my, width - 2 * mx, height - 2 * my)
    cv2.grabCut(bgr, mask, rectangle, *models, iterations, cv2.GC_INIT_WITH_RECT)
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


def remove_shadows(pixels: np.ndarray, mask: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Drop from ``mask`` the pixels that look like the background in shadow: the chromaticity of the
    ``background`` colour (within 0.04 in r+g+b-normalised units) at 30-97% of its brightness."""
    colours = pixels.astype(np.float32) + 1
    reference = np.asarray(background, dtype=np.float32) + 1
    brightness = colours.sum(axis=-1) / reference.sum()
    chroma = np.abs(colours / colours.sum(axis=-1, keepdims=True) - reference / reference.sum()).sum(axis=-1)
    shadow = (brightness > 0.3) & (brightness < 0.97) & (chroma < 0.04)
    return mask & ~shadow


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected region of a bool mask, its holes filled (a print GrabCut took for floor,
    inside the garment); all False when the mask is empty."""
    cv2 = _cv2()
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count < 2:
        return np.zeros_like(mask, dtype=bool)
    region = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    # holes: the parts of the outside that the border does not reach
    count, labels = cv2.connectedComponents((~region).astype(np.uint8), connectivity=4)
    outside = np.unique(border_ring(labels, 1))
    return region | ~np.isin(labels, outside)


def soften_texture(grey: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a float grey array: prints, weave and JPEG noise of a close photo are texture the
    dataset's small catalog images lack (measured: fewer T-shirts read as shirts)."""
    return _cv2().GaussianBlur(grey, (0, 0), sigma)


def auto_contrast(
    grey: np.ndarray, mask: np.ndarray, levels: tuple[int, int] = CONTRAST_LEVELS
) -> np.ndarray:
    """Stretch linearly so the garment's 5th and 95th percentile grey land on ``levels``: a garment in dim,
    bright or uneven light reaches the model at the same contrast (outside the mask is left as is)."""
    low, high = np.percentile(grey[mask], (5, 95))
    gain = (levels[1] - levels[0]) / max(high - low, 1.0)
    return levels[0] + (grey - low) * gain


def paste_on_catalog_background(grey: np.ndarray, mask: np.ndarray) -> Image.Image:
    """The garment's grey levels where ``mask`` is set, the catalog background elsewhere, as RGB: a photo
    the dataset's conversion then treats like any catalog shot."""
    garment = np.clip(np.rint(grey), 0, CATALOG_LEVEL)
    return Image.fromarray(np.where(mask, garment, CATALOG_LEVEL).astype(np.uint8)).convert("RGB")


def segment_garment(img: Image.Image, size: int) -> Image.Image | None:
    """An RGB photo -> the garment alone, evenly contrasted, on the catalog background, at ``size`` px on
    its longest edge; None when no garment is found (under 1% of the frame), or the photo is too small.

    Steps: reduce to ``size``, grabcut_mask, remove_shadows, largest_component, then grey,
    soften_texture, auto_contrast and paste_on_catalog_background.
    """
    scale = size / max(img.size)
    if scale < 1:
        new_size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(new_size, Image.Resampling.BOX)
    if min(img.size) < 16:
        return None
    pixels = np.asarray(img)
    mask = grabcut_mask(pixels)
    mask = remove_shadows(pixels, mask, np.median(border_ring(pixels, 2), axis=0))
    mask = largest_component(mask)
    if mask.sum() < 0.01 * mask.size:
        return None
    grey = np.asarray(to_grayscale(img), dtype=np.float32)
    grey = auto_contrast(soften_texture(grey, max(img.size) / 80), mask)
    return paste_on_catalog_background(grey, mask)


def _should_segment(background: str, img: Image.Image) -> bool:
    if background == "auto":
        return not has_plain_background(img)
    return background == "segment"


def _should_negate(invert: str, background: tuple[int, int, int]) -> bool:
    if invert == "auto":
        return not is_dark_background(background)
    return invert == "always"


@dataclass(frozen=True)
class Conversion:
    """The 28x28 image, and whether the garment was cut out of a non-catalog background to make it (a
    model card may name a second model for those photos)."""

    image: np.ndarray
    segmented: bool


def convert_image(img: Image.Image, settings: PreprocessSettings = PreprocessSettings()) -> Conversion:
    """The whole conversion: an image of any mode -> uint8 (size, size), background 0, garment bright."""
    rgb = to_rgb(img)
    garment = (
        segment_garment(rgb, settings.segment_size) if _should_segment(settings.background, rgb) else None
    )
    rgb = garment or rgb
    background = background_colour(rgb)
    grey = to_grayscale(trim_background(rgb, settings.trim_tolerance, background))
    grey = fit_longest_edge(grey, settings.size, settings.resample)
    if settings.sharpen:
        grey = sharpen(grey)
    fill = luminance(background)
    grey = centre_on_canvas(grey, settings.size, fill)
    if _should_negate(settings.invert, background):
        grey, fill = negate(grey), 255 - fill
    # Only a dark background is stretched to 0: a light one means invert was forced the "wrong" way and
    # stretching would erase the garment.
    if settings.zero_background and fill < 128:
        grey = zero_background_level(grey, fill)
    pixels = np.array(grey, dtype=np.uint8)
    if settings.full_range and garment is None and fill < 128:
        pixels = stretch_to_full_range(pixels)
    return Conversion(pixels, segmented=garment is not None)


def preprocess_image(img: Image.Image, settings: PreprocessSettings = PreprocessSettings()) -> np.ndarray:
    """convert_image's 28x28 array alone."""
    return convert_image(img, settings).image


def convert_path(path: str | os.PathLike, settings: PreprocessSettings = PreprocessSettings()) -> Conversion:
    """load_image + convert_image; raises ImageError for anything that is not a usable image."""
    return convert_image(load_image(path, settings), settings)


def preprocess_path(
    path: str | os.PathLike, settings: PreprocessSettings = PreprocessSettings()
) -> np.ndarray:
    """load_image + preprocess_image; raises ImageError for anything that is not a usable image."""
    return convert_path(path, settings).image


def save_preview(array: np.ndarray, path: str | os.PathLike) -> None:
    """Write a preprocessed array as an 8-bit greyscale PNG (what the model saw, for --save-preprocessed)."""
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {array.shape}")
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path, format="PNG")
