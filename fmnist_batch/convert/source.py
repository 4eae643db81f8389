"""One photo, whatever it comes as, -> its conversion or the one-line reason it has none.

`convert_source` is the only way a photo becomes a model input: classify's workers (files), the web app
(uploads' bytes) and `Classifier` (paths, bytes, PIL images, arrays) all call it, so each kind of input
meets the same decoding, the same time limit and the same error policy: nothing a photo does costs more
than its own row.

An image the caller opened but did not load (`PIL.Image.open(path)`) is decoded from its file's bytes,
as classify decodes the file (a JPEG at reduced scale), so both give the same answer. One the caller
already decoded is checked and reduced as a file would be; a numpy array carries no EXIF, so it is taken
as upright.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
from PIL import Image, ImageOps

from fmnist_batch.convert.conversion import Conversion, convert_image, convert_path
from fmnist_batch.convert.decode import load_image_bytes, reduce_to
from fmnist_batch.convert.settings import DEFAULT_SETTINGS, ConversionSettings, ImageError


class Converted(NamedTuple):
    """One photo's conversion as rows need it: the 784 bytes of its 28x28 image, or None and why not."""

    data: bytes | None
    error: str | None
    #: the view of the garment the image was made from (convert.VIEWS); "" when it could not be made
    view: str = ""
    #: a worn garment in colour, side x side x 3 bytes (ConversionSettings.garment_side), for the reader
    colour: bytes | None = None
    #: the part of the person a worn garment was read from (convert.REGIONS); "" for other views
    region: str = ""
    #: the photo's in_scope, the judge's or the dataset reference's (None: no judge runs, or an image
    #: already in the dataset's 28x28 format)
    in_scope: float | None = None
    #: the main network's logits of the image as 10 float32, when the conversion computed them
    #: (Conversion.logits): 40 bytes that spare the run a forward pass
    logits: bytes | None = None

    @classmethod
    def of(cls, conversion: Conversion) -> Converted:
        colour = None if conversion.colour is None else conversion.colour.tobytes()
        logits = None if conversion.logits is None else conversion.logits.astype(np.float32).tobytes()
        return cls(
            conversion.image.tobytes(),
            None,
            conversion.view,
            colour,
            conversion.region,
            conversion.in_scope,
            logits,
        )

    @classmethod
    def failed(cls, error: str) -> Converted:
        return cls(None, error)


class FileTimeout(Exception):
    """A photo took longer than its time limit to convert."""


def _on_alarm(signum: int, frame: object) -> None:
    raise FileTimeout


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise FileTimeout in the block after `seconds` (a SIGALRM timer: Pillow's decoders and a blocking
    open() of a FIFO return to Python, where it stops them). Only a main thread can handle signals:
    elsewhere (the web app's threads) the block runs without the limit."""
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def conversion_error(error: BaseException) -> str:
    """The one-line reason a photo could not be converted, as its row (or web result) reports it."""
    if isinstance(error, ImageError):
        return str(error)
    if isinstance(error, MemoryError):
        return "out of memory while decoding the image"
    return f"unexpected error: {type(error).__name__}: {error}"


def convert_source(
    source: Any, settings: ConversionSettings = DEFAULT_SETTINGS, timeout: float | None = None
) -> Converted:
    """A path, the file's bytes, a PIL image or a uint8 array (H x W, H x W x 3 or 4) -> Converted.
    Never raises: whatever is wrong with the photo (or with what was given as one) is its Converted's
    reason."""
    try:
        with time_limit(timeout):
            return Converted.of(_convert(_kind(source), source, settings))
    except FileTimeout:
        return Converted.failed(f"took longer than {timeout:g} s to decode; skipped")
    except Exception as e:  # a bug or an exotic file must cost one row, not the run
        return Converted.failed(conversion_error(e))


def _kind(source: Any) -> str:
    if isinstance(source, str | os.PathLike):
        return "path"
    if isinstance(source, bytes | bytearray | memoryview):
        return "bytes"
    if isinstance(source, Image.Image):
        return "pil"
    if isinstance(source, np.ndarray):
        return "array"
    what = type(source).__name__
    raise ImageError(f"cannot classify a {what}: give a path, a PIL image, a numpy array or bytes")


def _convert(kind: str, source: Any, settings: ConversionSettings) -> Conversion:
    if kind == "path":
        return convert_path(source, settings)
    if kind == "bytes":
        return convert_image(load_image_bytes(bytes(source), settings), settings)
    if kind == "pil" and _unloaded(source):
        source.fp.seek(0)
        return convert_image(load_image_bytes(source.fp.read(), settings), settings)
    image = source if kind == "pil" else _array_to_pil(source)
    return convert_image(_as_decoded(image, settings, upright=kind == "pil"), settings)


def _unloaded(image: Image.Image) -> bool:
    """Opened from a file or stream whose bytes are still at hand, and not decoded yet."""
    return getattr(image, "_im", True) is None and getattr(image, "fp", None) is not None


def _as_decoded(image: Image.Image, settings: ConversionSettings, upright: bool) -> Image.Image:
    """An image decoded by the caller, made what decoding a file gives: checked against the pixel limit,
    turned upright by its EXIF orientation (`upright`), box-reduced as large files are."""
    width, height = image.size
    if width == 0 or height == 0:
        raise ImageError(f"empty image ({width} x {height} pixels)")
    if width * height > settings.max_pixels:
        pixels = width * height
        raise ImageError(f"image too large: {pixels:,} pixels exceeds the limit of {settings.max_pixels:,}")
    if upright:
        turned = ImageOps.exif_transpose(image)  # a copy when it turns: the caller's image is untouched
        image = turned if turned is not None else image
    return reduce_to(image, settings.draft_factor * settings.size)


def _array_to_pil(array: np.ndarray) -> Image.Image:
    if array.dtype != np.uint8:
        raise ImageError(f"expected a uint8 array, got {array.dtype} (scale it to 0..255 first)")
    mode = {2: "L", 3: {1: "L", 3: "RGB", 4: "RGBA"}.get(array.shape[-1])}.get(array.ndim)
    if mode is None:
        raise ImageError(f"expected an H x W, H x W x 3 or H x W x 4 array, got shape {array.shape}")
    if 0 in array.shape[:2]:
        raise ImageError(f"empty image ({array.shape[1]} x {array.shape[0]} pixels)")
    return Image.fromarray(np.ascontiguousarray(array[..., 0] if mode == "L" and array.ndim == 3 else array))
