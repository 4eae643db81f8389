"""Photos that are not catalog shots: find the garment first.

A garment on a floor, a bed or a hanger has no plain border for trim_background to cut away, so
segment_garment finds it with GrabCut, drops shadows of the background's colour, keeps the largest
region, and pastes it, evenly contrasted, onto the dataset's catalog background; the dataset's steps then
run unchanged. has_plain_background decides which photos need this under ``background="auto"``.

OpenCV is imported on the first segmented photo only (see opencv): classify's workers start without it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from fmnist_batch.convert.steps import background_colour, to_grayscale

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


def opencv():
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
    cv2 = opencv()
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
    cv2 = opencv()
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
    return opencv().GaussianBlur(grey, (0, 0), sigma)


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
