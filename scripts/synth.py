"""Synthetic catalog photos rendered from Fashion-MNIST images, for sample folders, tests and benchmarks.

A Fashion-MNIST image is a garment negated onto a black background. ``render_catalog_photo`` undoes that:
it enlarges the array, paints the garment (dark, or tinted) on a light background and places it
off-centre, so the preprocessing chain has a real photo to turn back into the 28x28 array.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

WHITE = (255, 255, 255)
CATALOG_GREY = (0xFD, 0xFD, 0xFD)  # the paper's Zalando background

# Inverse of what ImageOps.exif_transpose applies for each EXIF Orientation value.
_STORE_ROTATED = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}
_EXIF_ORIENTATION_TAG = 0x0112


def render_catalog_photo(
    array28: np.ndarray,
    *,
    size: int = 400,
    background: tuple[int, int, int] = WHITE,
    tint: tuple[int, int, int] | None = None,
    offset: tuple[float, float] = (0.0, 0.0),
    garment_fraction: float = 0.6,
    noise: float = 0.0,
    seed: int | None = None,
) -> Image.Image:
    """A size x size RGB photo of the garment in ``array28`` (bright garment on black, like the dataset).

    The garment's longest edge spans ``garment_fraction`` of the photo; its centre is shifted by
    ``offset`` (fractions of the photo size, clamped so the garment stays inside). Dataset intensity is
    used as the garment's opacity over the background, in ``tint`` (black when None), so a white
    background gives back exactly ``255 - array28`` in grey. ``noise`` adds Gaussian sensor noise (std in
    intensity levels) from ``seed``.
    """
    opacity = Image.fromarray(np.asarray(array28, dtype=np.uint8))
    garment_px = max(1, round(size * garment_fraction))
    opacity = opacity.resize((garment_px, garment_px), Image.Resampling.BICUBIC)

    photo = Image.new("RGB", (size, size), background)
    paint = Image.new("RGB", (garment_px, garment_px), tint or (0, 0, 0))
    free = size - garment_px
    left = min(free, max(0, round(free / 2 + offset[0] * size)))
    top = min(free, max(0, round(free / 2 + offset[1] * size)))
    photo.paste(paint, (left, top), mask=opacity)

    if noise:
        rng = np.random.default_rng(seed)
        pixels = np.asarray(photo, dtype=np.float32) + rng.normal(0.0, noise, (size, size, 3))
        photo = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
    return photo


def _with_transparent_background(img: Image.Image) -> Image.Image:
    """RGBA where the background (corner colour) is fully transparent and hidden as black, so a reader
    that ignores alpha sees a black background while one compositing onto white sees a white one."""
    rgb = img.convert("RGB")
    pixels = np.asarray(rgb, dtype=np.int16)
    distance = np.abs(pixels - pixels[0, 0]).max(axis=2)
    opaque = distance > 3
    rgba = np.zeros((*opaque.shape, 4), dtype=np.uint8)
    rgba[opaque, :3] = pixels[opaque]
    rgba[opaque, 3] = 255
    return Image.fromarray(rgba)


def _convert(img: Image.Image, mode: str) -> Image.Image:
    if mode == "RGBA":
        return _with_transparent_background(img)
    if mode == "LA":
        return _with_transparent_background(img).convert("LA")
    if mode == "P":
        return img.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    if mode == "I;16":
        # Full 16-bit range (x257), as a 16-bit PNG from a camera pipeline would have.
        grey = np.asarray(img.convert("L"), dtype=np.uint16) * 257
        return Image.fromarray(grey)
    return img.convert(mode)


def save_photo(
    img: Image.Image,
    path: str | Path,
    fmt: str,
    mode: str | None = None,
    exif_rotation: int | None = None,
    quality: int = 90,
) -> Path:
    """Save ``img`` as ``fmt`` (JPEG, PNG, WEBP, BMP, GIF, TIFF) in ``mode`` (RGB, RGBA with a transparent
    background, LA, P, CMYK, L, I;16); ``exif_rotation`` stores the pixels rotated/flipped with that EXIF
    Orientation tag so that ImageOps.exif_transpose gives back ``img``."""
    path = Path(path)
    fmt = fmt.upper()
    out = _convert(img, mode) if mode else img
    options: dict[str, object] = {}
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = quality
    if exif_rotation is not None:
        if fmt not in ("JPEG", "PNG", "WEBP", "TIFF"):
            raise ValueError(f"{fmt} cannot carry an EXIF orientation")
        out = out.transpose(_STORE_ROTATED[exif_rotation])
        exif = Image.Exif()
        exif[_EXIF_ORIENTATION_TAG] = exif_rotation
        options["exif"] = exif.tobytes()
    out.save(path, format=fmt, **options)
    return path
