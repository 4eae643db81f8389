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
#: A mask covering less of the frame than this is "no garment".
LEAST_GARMENT = 0.01
#: A GrabCut iteration that shrinks the mask below this share of the previous one is collapsing.
COLLAPSE = 0.5
#: Below this share of the frame, a cut on the small copy is redone on a larger one (find_garment).
REDO_BELOW = 0.05
#: The longest edge of the redo's copy. A garment the small cut lost is found as well at 144 px as at the
#: 160 px working size, in 46 ms of CPU instead of 64: of the CC0 photos whose 96 px cut collapses, 69 of
#: 150 in the train split read right against 67, 9 of 20 in validation against 8 (at 128 px: 65 and 7).
REDO_SIZE = 144


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


def reduce_longest_edge(img: Image.Image, size: int) -> Image.Image:
    """Box-reduce so the longest edge is ``size`` (never enlarges): box averaging is the cheapest filter
    that does not alias a patterned floor into noise GrabCut would model."""
    scale = size / max(img.size)
    if scale >= 1:
        return img
    new_size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(new_size, Image.Resampling.BOX)


def grabcut_mask(pixels: np.ndarray, iterations: int = 2, margin: float = 0.05) -> np.ndarray:
    """Foreground mask (bool H x W) of an RGB uint8 array by OpenCV's GrabCut, initialised with a centre
    rectangle that leaves ``margin`` of each side as sure background (photographers centre the garment).

    GrabCut models foreground and background colours as Gaussian mixtures and cuts between them along
    edges, so a garment on a patterned floor or a bed is found where a single background colour is not.
    It runs one iteration at a time (GC_EVAL carries the colour models on: the same masks as one call)
    and stops at the first that empties the mask or shrinks it below COLLAPSE of the previous one: on a
    small array the smoothness term weighs more against the garment's area, and a later iteration
    sometimes collapses it (13 of 688 amateur photos at 96 px). The random seed is fixed so a photo gives
    the same mask in any order and any process.
    """
    cv2 = opencv()
    height, width = pixels.shape[:2]
    mx, my = max(1, round(width * margin)), max(1, round(height * margin))
    models = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    bgr = np.ascontiguousarray(pixels[:, :, ::-1])
    labels = np.zeros((height, width), np.uint8)
    mode, rectangle = cv2.GC_INIT_WITH_RECT, (mx, my, width - 2 * mx, height - 2 * my)
    kept = np.zeros((height, width), bool)
    cv2.setRNGSeed(0)
    for _ in range(iterations):
        cv2.grabCut(bgr, labels, rectangle, *models, 1, mode)
        mode = cv2.GC_EVAL
        mask = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
        if mask.mean() < max(LEAST_GARMENT, COLLAPSE * kept.mean()):
            break
        kept = mask
    return kept


def scale_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A bool mask resized to ``shape`` (rows, columns), bilinear and thresholded at one half: smooth
    edges rather than nearest-neighbour's staircase."""
    if mask.shape == shape:
        return mask
    cv2 = opencv()
    scaled = cv2.resize(mask.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return scaled > 0.5


def remove_shadows(pixels: np.ndarray, mask: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Drop from ``mask`` the pixels that look like the background in shadow: the chromaticity of the
    ``background`` colour (within 0.04 in r+g+b-normalised units) at 30-97% of its brightness."""
    colours = pixels.astype(np.float32) + 1
    reference = np.asarray(background, dtype=np.float32) + 1
    # channels added one by one, not numpy's sum over the last axis, which is slow for an axis of 3
    # (the same values: numpy adds 3 elements in this order); the total is shared by both measures
    total = colours[..., 0] + colours[..., 1] + colours[..., 2]
    brightness = total / reference.sum()
    offsets = np.abs(colours / total[..., None] - reference / reference.sum())
    chroma = offsets[..., 0] + offsets[..., 1] + offsets[..., 2]
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


def clean_mask(pixels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Drop the background colour's shadows and keep the largest region, holes filled. Done at the
    working size, not GrabCut's smaller one: the outlines stay closer to a full-size cut for ~1 ms."""
    mask = remove_shadows(pixels, mask, np.median(border_ring(pixels, 2), axis=0))
    return largest_component(mask)


def find_garment(img: Image.Image, cut_size: int, iterations: int) -> np.ndarray:
    """The garment's mask at ``img``'s size, GrabCut done on a copy ``cut_size`` px on its longest edge.

    GrabCut is 93% of a segmented photo's time and grows with the pixel count, while the mask only has
    to be right at the scale the garment reaches the model (28 px): at 96 px and 2 iterations a photo
    costs ~21 ms of CPU instead of ~69 ms at 160 px and 4, within a point of the accuracy (amateur
    validation 0.821 vs 0.831, a held-out train sample 0.833 vs 0.838). A cut that finds (almost)
    nothing, under REDO_BELOW of the frame, is done again on a REDO_SIZE copy with one iteration: even the
    first iteration can collapse on a small array (~6% of photos), and a garment that small is rare.
    """
    pixels = np.asarray(img)
    small = np.asarray(reduce_longest_edge(img, cut_size))
    mask = clean_mask(pixels, scale_mask(grabcut_mask(small, iterations), pixels.shape[:2]))
    if small.shape != pixels.shape and mask.mean() < REDO_BELOW:
        # a cut already at least REDO_SIZE is redone at the working size, as a larger copy is the point
        larger = np.asarray(reduce_longest_edge(img, REDO_SIZE if cut_size < REDO_SIZE else max(img.size)))
        mask = clean_mask(pixels, scale_mask(grabcut_mask(larger, 1), pixels.shape[:2]))
    return mask


def segment_garment(
    img: Image.Image, size: int, cut_size: int = 96, iterations: int = 2
) -> Image.Image | None:
    """An RGB photo -> the garment alone, evenly contrasted, on the catalog background, at ``size`` px on
    its longest edge; None when no garment is found (under 1% of the frame), or the photo is too small.

    Steps: reduce to ``size``, find_garment (GrabCut at ``cut_size``, shadows dropped, the largest
    region), then grey, soften_texture, auto_contrast and paste_on_catalog_background.
    """
    img = reduce_longest_edge(img, size)
    if min(img.size) < 16:
        return None
    mask = find_garment(img, min(cut_size, size), iterations)
    if mask.sum() < LEAST_GARMENT * mask.size:
        return None
    grey = np.asarray(to_grayscale(img), dtype=np.float32)
    grey = auto_contrast(soften_texture(grey, max(img.size) / 80), mask)
    return paste_on_catalog_background(grey, mask)
