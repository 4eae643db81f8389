"""Photos of a garment worn by a person -> the garment alone, the way the dataset's conversion wants it.

Shop catalogs photograph apparel on a model: head, arms, legs and a second garment share the frame, and
trimming to the whole person shows the CNN a person, not a garment. So:

1. might_show_person (person_gate.py): a cheap test, no model, that lets product shots and the
   dataset's own grey images through untouched.
2. find_worn_garment decides whether the photo shows a person: a face found by BlazeFace that passes
   person_gate.py's checks (a skin-coloured centre, room for a body below it, shoulders in the selfie
   segmentation's person mask: model/person_models.py); anything else gets None and keeps the dataset's
   conversion exactly.
3. It then cuts out the garment the photo sells, from body geometry measured in face heights: the head
   (and hair) above the chin is dropped, skin is dropped by its colour as sampled on the face (told from
   a skin-coloured garment by which of the two tones it is nearer), and the torso garment is told from
   a second garment below the hips by colour, seeded from the chest and the lowest part of the body, and
   ends at its hem (above_hem). The region read is "upper" (the torso garment, when a second garment
   was found) or "full" (everything below the chin: a dress, a long coat, a top cut off above the hips).
4. The garment's grey levels are pasted on the catalog background (0xFD), so the dataset's steps run
   unchanged.

Everything runs on a copy at most WORK_SIZE px long: the catalogs' thumbnails are 60x80 px, and masks at
160 px are fine enough for a 28 px result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from fmnist_batch.convert.garment import GARMENT_INPUT, mask_box, square_on_white
from fmnist_batch.convert.person_gate import (  # noqa: F401 (the gate's names are person.py's face too)
    GATE_MAX_SKIN,
    GATE_MIN_SKIN,
    GATE_SIZE,
    GATE_TOP,
    HIPS_BELOW_CHIN,
    MIN_FACE_SKIN,
    face_centre_box,
    face_is_plausible,
    has_shoulders,
    might_show_person,
    skin_rule,
    skin_share,
)
from fmnist_batch.convert.segment import (
    has_plain_background,
    opencv,
    paste_on_catalog_background,
)
from fmnist_batch.convert.steps import background_colour
from fmnist_batch.model.person_models import Face, PersonFiles, PersonModels, shared_person_models

#: Longest edge at which the person path works (see the module's docstring).
WORK_SIZE = 160
#: A person-mask probability this high counts as the person (MediaPipe's own cut-off) ...
PERSON_PROBABILITY = 0.5
#: ... and this high leaves no doubt (well inside the silhouette, away from its blurred edge).
SURE_PERSON = 0.8
#: Trousers or a skirt reach no higher than this (the waist, with slack for a high waistband).
WAIST_BELOW_CHIN = HIPS_BELOW_CHIN - 1.0
#: The chest, whose colours seed the torso garment: 0.7 to 1.7 face heights below the chin (below collar
#: and neck, above any belt), one face height either side of the face's centre.
CHEST_ROWS = (0.7, 1.7)
CHEST_HALF_WIDTH = 1.0
#: The torso's core, where the garment the photo sells is in nearly every on-model shot (below a low
#: neckline, above the hips, inside arms hanging at the sides): 1.2 to 3 face heights below the chin, 0.75
#: face heights either side of the face's centre. Its median colour is the garment's.
TORSO_ROWS = (1.2, 3.0)
TORSO_HALF_WIDTH = 0.75
#: When more than this share of the torso's core passes as the face's skin, the garment is skin-coloured
#: (a bare torso is not what a shop sells): skin is then told from it by which of the two it is nearer.
SKIN_COLOURED_GARMENT = 0.5
#: Two colours this far apart in CIELAB (OpenCV's 8-bit scale) belong to different garments: well above
#: JPEG noise and shading within one fabric (~5-10), below the gap between a shirt and jeans.
GARMENT_COLOUR_GAP = 20.0
#: A second garment is present when at least this share of the lowest body rows is of new colours.
MIN_SECOND_GARMENT = 0.25
#: A region smaller than this share of the frame is a sliver, not a garment.
MIN_REGION_SHARE = 0.02


@dataclass(frozen=True)
class WornGarment:
    """The garment a person wears, on the catalog background (an RGB image for convert_image), the
    region it was read from: "upper" (the torso garment) or "full" (everything worn below the chin), and
    the garment in colour on white for the garment reader (garment.square_on_white)."""

    image: Image.Image
    region: str
    colour: np.ndarray


def work_copy(img: Image.Image) -> np.ndarray:
    """An RGB uint8 array at most WORK_SIZE px long (box-reduced; thumbnails stay as they are)."""
    scale = WORK_SIZE / max(img.size)
    if scale < 1:
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(size, Image.Resampling.BOX)
    return np.ascontiguousarray(np.asarray(img.convert("RGB")))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """A mask with its enclosed holes set: light patches inside a garment that the colour test missed (a
    gap enclosed by an arm is background-coloured, and stays so when pasted)."""
    _, labels = opencv().connectedComponents((~mask).astype(np.uint8), connectivity=4)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return mask | ~np.isin(labels, edge)


def foreground(rgb: np.ndarray, person: np.ndarray) -> np.ndarray:
    """The person's pixels. On a plain (studio) background its colour decides the edges sharply, as
    trim_background would, within a generous person mask (stray objects are dropped); elsewhere the
    person mask alone."""
    image = Image.fromarray(rgb)
    if not has_plain_background(image):
        return person > PERSON_PROBABILITY
    difference = rgb.astype(np.int32) - np.array(background_colour(image), dtype=np.int32)
    far = (difference * difference).sum(axis=-1) > 3 * (0.05 * 255) ** 2
    # a white garment (or stripe) is near the background colour: where the person mask is sure, it counts
    return fill_holes((far | (person > SURE_PERSON)) & (person > PERSON_PROBABILITY / 2))


def torso_core(body: np.ndarray, face: Face) -> np.ndarray:
    """The body pixels of the torso's core (TORSO_ROWS), where the garment surely is."""
    h = face.height
    across = np.abs(np.arange(body.shape[1])[None, :] - face.centre_x) <= TORSO_HALF_WIDTH * h
    return body & band(body.shape, face.chin + TORSO_ROWS[0] * h, face.chin + TORSO_ROWS[1] * h) & across


def skin_mask(rgb: np.ndarray, face: Face, torso: np.ndarray) -> np.ndarray:
    """This person's skin: pixels that pass the skin rule, whose chroma (Cr, Cb) lies within three spreads
    of the face's own (spread at least 4 levels), so a beige garment of another tone stays. When the
    torso's core is mostly such "skin" (SKIN_COLOURED_GARMENT) the garment's tone is close to the face's,
    and only pixels nearer to the face's chroma than to the garment's (the core's median) are skin."""
    ycc = np.asarray(Image.fromarray(rgb).convert("YCbCr"), dtype=np.float32)[..., 1:]
    rule = skin_rule(rgb)
    rows, cols = face_centre_box(face, rgb.shape)
    samples = ycc[rows, cols][rule[rows, cols]]
    if len(samples) < 4:
        return rule
    centre = np.median(samples, axis=0)
    spread = np.maximum(samples.std(axis=0), 4.0)
    to_face = np.abs(ycc - centre) / spread
    skin = rule & (to_face <= 3).all(axis=-1)
    if torso.sum() < 8 or skin[torso].mean() <= SKIN_COLOURED_GARMENT:
        return skin
    to_garment = np.abs(ycc - np.median(ycc[torso], axis=0)) / spread
    return skin & ((to_face**2).sum(axis=-1) < (to_garment**2).sum(axis=-1))


def kmeans(points: np.ndarray, k: int = 3, iterations: int = 6) -> np.ndarray:
    """k centres of a few hundred colours (Lloyd's algorithm from luminance quantiles, so deterministic):
    a garment's colours (stripes, checks, an open jacket over a shirt) are several, not one."""
    order = np.argsort(points[:, 0])
    centres = points[order[np.linspace(0, len(points) - 1, k).astype(int)]].astype(np.float32)
    for _ in range(iterations):
        nearest = ((points[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
        for j in range(k):
            if np.any(nearest == j):
                centres[j] = points[nearest == j].mean(0)
    return centres


def nearest_distance(colours: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Distance of every colour (N x 3) to its nearest centre."""
    return np.sqrt(((colours[:, None, :] - centres[None]) ** 2).sum(-1).min(1))


def band(shape: tuple[int, ...], top: float, bottom: float) -> np.ndarray:
    """Bool mask of the rows from ``top`` to ``bottom`` (pixels, clipped to the frame)."""
    rows = np.arange(shape[0])[:, None]
    return np.broadcast_to((rows >= top) & (rows < bottom), shape[:2])


def chest_seed(body: np.ndarray, face: Face) -> np.ndarray:
    """The body pixels of the chest (CHEST_ROWS), where the torso garment surely is."""
    h = face.height
    across = np.abs(np.arange(body.shape[1])[None, :] - face.centre_x) <= CHEST_HALF_WIDTH * h
    return body & band(body.shape, face.chin + CHEST_ROWS[0] * h, face.chin + CHEST_ROWS[1] * h) & across


def open_mask(mask: np.ndarray) -> np.ndarray:
    """Morphological opening with a 3x3 square: single pixels of one garment's shade that happen to be
    nearer the other garment's colours are not that garment."""
    cv2 = opencv()
    opened = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    return opened.astype(bool)


def component_with(mask: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """The 8-connected parts of ``mask`` that touch ``seed`` (the largest part when none does): a
    garment is what is joined to where it surely is, not a stray patch of a similar colour."""
    count, labels = opencv().connectedComponents(mask.astype(np.uint8), connectivity=8)
    if count < 2:
        return mask
    touching = np.unique(labels[seed & mask])
    touching = touching[touching > 0]
    if len(touching) == 0:
        touching = [1 + int(np.argmax(np.bincount(labels[mask])[1:]))]
    return np.isin(labels, touching)


def second_garment(colours: np.ndarray, body: np.ndarray, face: Face) -> np.ndarray | None:
    """Where a second garment is: the body pixels nearer to the colours of the lowest body rows (when
    those are below the hips and mostly unlike the chest's) than to the chest's; None when the frame shows
    none (a dress, a long coat, or a shot cut off above the hips). ``colours`` is the photo in CIELAB."""
    h = face.height
    chest = chest_seed(body, face)
    rows = np.flatnonzero(body.any(axis=1))
    if chest.sum() < 8 or len(rows) == 0 or rows[-1] < face.chin + (HIPS_BELOW_CHIN + 0.5) * h:
        return None
    top_centres = kmeans(colours[chest])
    low = body & band(body.shape, max(face.chin + HIPS_BELOW_CHIN * h, rows[-1] - 0.5 * h), rows[-1] + 1)
    low_colours = colours[low]
    new = nearest_distance(low_colours, top_centres) > GARMENT_COLOUR_GAP
    if new.sum() < max(8, MIN_SECOND_GARMENT * len(low_colours)):
        return None
    bottom_centres = kmeans(low_colours[new])
    candidates = body & band(body.shape, face.chin + WAIST_BELOW_CHIN * h, body.shape[0])
    picked = colours[candidates]
    second = np.zeros_like(body)
    second[candidates] = nearest_distance(picked, bottom_centres) < nearest_distance(picked, top_centres)
    return component_with(open_mask(second), low & second)


def above_hem(upper: np.ndarray, second: np.ndarray, face: Face) -> np.ndarray:
    """The torso garment down to its hem, the first row below the waist where the second garment is
    wider than it. Below the hem, what is joined to the top and nearer its colours (a hand, a light
    patch of faded jeans, a print on the trousers) would give the top legs the model reads as a dress."""
    start = max(0, int(face.chin + WAIST_BELOW_CHIN * face.height))
    wider = np.flatnonzero(second[start:].sum(axis=1) > upper[start:].sum(axis=1))
    if len(wider) == 0:
        return upper
    return upper & ~band(upper.shape, start + wider[0], upper.shape[0])


def sold_garment(rgb: np.ndarray, face: Face, person: np.ndarray) -> tuple[str, np.ndarray]:
    """The region the photo sells and its mask, without the head, hair above the chin, or skin: the torso
    garment ("upper") when a second garment was found below it, else everything worn below the chin that
    joins the chest ("full": a dress, a long coat, or a top cut off above the hips; also when the torso
    garment left is a sliver)."""
    below = foreground(rgb, person) & band(rgb.shape, face.chin, rgb.shape[0])
    body = below & ~skin_mask(rgb, face, torso_core(below, face))
    chest = chest_seed(body, face)
    colours = opencv().cvtColor(rgb, opencv().COLOR_RGB2LAB).astype(np.float32)
    second = second_garment(colours, body, face)
    if second is not None:
        upper = above_hem(component_with(body & ~second, chest), second, face)
        if upper.sum() >= MIN_REGION_SHARE * upper.size:
            return "upper", upper
    return "full", component_with(body, chest)


def on_catalog_background(rgb: np.ndarray, mask: np.ndarray) -> Image.Image:
    """The masked garment's grey levels on the catalog background, cropped to the garment: what the
    dataset's conversion expects to trim, resize and negate."""
    grey = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32)
    box = mask_box(mask)
    return paste_on_catalog_background(grey[box], mask[box])


def find_worn_garment(
    img: Image.Image, models: PersonModels | PersonFiles | None = None, side: int = GARMENT_INPUT
) -> WornGarment | None:
    """The garment a person in an RGB photo wears, or None when the photo shows no person (or the
    detectors cannot be loaded); `models`: the detectors, their files, or None for the bundled ones;
    `side`: the colour picture's (the garment reader's input). Segmentation runs only after the face
    passed the cheap checks."""
    if not isinstance(models, PersonModels):
        models = shared_person_models(models or bundled_person_files())
    if models is None:
        return None
    rgb = work_copy(img)
    face = models.detect_face(rgb)
    if face is None or not face_is_plausible(rgb, face):
        return None
    person = models.person_mask(rgb)
    if not has_shoulders(face, person > PERSON_PROBABILITY):
        return None
    region, mask = sold_garment(rgb, face, person)
    if mask.sum() < MIN_REGION_SHARE * mask.size:
        return None
    return WornGarment(on_catalog_background(rgb, mask), region, square_on_white(rgb, mask, side))


def bundled_person_files() -> PersonFiles:
    """The bundled person detectors, verified against the bundled card (for callers that convert without
    a model: training, scripts); a run's model hands the conversion its own, verified at load."""
    from fmnist_batch.model.registry import bundled_person_files as verified

    return verified()
