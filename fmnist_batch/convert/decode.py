"""File or bytes -> a decoded, upright Pillow image no larger than the conversion needs.

The pixel count is checked from the header before anything is decoded, JPEGs decode at reduced scale
(Pillow's draft mode), other formats are box-reduced after decoding, common PNGs inflate with ISA-L
(png.py), and every failure is an ImageError with a one-line reason. to_rgb then brings any Pillow mode
(palette, CMYK, 16-bit, alpha) to the RGB the dataset's steps start from.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import struct
import warnings
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fmnist_batch.convert import png
from fmnist_batch.convert.settings import DEFAULT_SETTINGS, ConversionSettings, ImageError

WHITE = (255, 255, 255)

# What Pillow raises for undecodable data besides UnidentifiedImageError: plugins are not consistent.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, struct.error)


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


def load_image(path: str | os.PathLike, settings: ConversionSettings = DEFAULT_SETTINGS) -> Image.Image:
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


def load_image_bytes(data: bytes | bytearray, settings: ConversionSettings = DEFAULT_SETTINGS) -> Image.Image:
    """load_image for a file already in memory (an upload): the same checks and ImageError messages, and
    nothing is written to disk."""
    return _decode(io.BytesIO(data), settings)


def _size(file: BinaryIO) -> int:
    if isinstance(file, io.BytesIO):
        return file.getbuffer().nbytes
    return os.fstat(file.fileno()).st_size


def _decode(file: BinaryIO, settings: ConversionSettings) -> Image.Image:
    with warnings.catch_warnings():
        # Per-file quirks (corrupt EXIF, Pillow's 89M-pixel bomb warning, below our own max_pixels) are not
        # actionable and would flood stderr from every worker; real failures become ImageError below.
        warnings.simplefilter("ignore")
        size = _size(file)
        if size == 0:
            raise ImageError("empty file")
        target = settings.draft_factor * settings.size
        if size <= png.MAX_INFLATED_BYTES and png.ENABLED and file.read(8) == png.SIGNATURE:
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
