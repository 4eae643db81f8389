"""Does a photo show a person? The person path's checks, cheapest first.

might_show_person needs no model and lets product shots and the dataset's own grey images through
untouched. A face BlazeFace finds must then have a skin-coloured centre and room for a body below it
(face_is_plausible), and the selfie segmentation's person mask must widen into shoulders below it
(has_shoulders); anything else is no person and keeps the dataset's conversion exactly.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageChops

from fmnist_batch.convert.segment import has_plain_background
from fmnist_batch.convert.steps import background_colour, far_channel_table, map_through
from fmnist_batch.model.person_models import Face

#: might_show_person looks at a thumbnail this long, and at the top share of the subject (where a face is
#: in any shot that shows one), and wants a share of it skin-coloured within these bounds: a face is a
#: few percent of it even in a 60x80 thumbnail, and a head with hair above a garment is well under two
#: thirds skin, while a product shot of a pink, beige or tan garment is mostly "skin" and must not pay
#: for the face detector (docs/conversion.md gives the shares measured on on-model shop photos).
GATE_SIZE = 48
GATE_TOP = 0.4
GATE_MIN_SKIN = 0.04
GATE_MAX_SKIN = 0.65
#: ... and, when trimming finds a border (so the box is the subject, not the frame), a subject at least
#: as tall as wide: the person path needs a face and two face heights of body below it, so even a
#: head-and-shoulders shot is ~3.5 face heights tall and ~3 wide, while shoes and most bags are wider
#: than tall.
GATE_MIN_ASPECT = 1.0

# BlazeFace fires on bags, sandals and printed T-shirts too; a real face must also pass three checks.
#: (1) Skin: at least this share of the face's centre passes the YCrCb skin rule of Chai & Ngan (1999),
#: a published rule spanning light to dark skin; bag fronts and prints rarely do.
MIN_FACE_SKIN = 0.3
#: (2) Shoulders: one face height below the chin the person mask is at least this many face heights wide
#: (shoulder width is ~2.3-2.7 face-box heights; slack for a turned or slim body).
MIN_SHOULDER_WIDTH = 1.8
#: (3) The silhouette widens from head to shoulders by at least this factor (a head is ~1-1.4 face
#: heights wide with hair); a face-like pattern on a bag or shoe sits inside an object as wide below it.
MIN_WIDENING = 1.5
#: Enough body below the chin to hold a garment: two face heights (chin to chest).
MIN_BODY_BELOW = 2.0

#: The waist is ~2.5 head heights (~3.1 face-box heights) below the chin and the crotch ~3.8: a second
#: garment (trousers, a skirt) is seeded only below this many face heights.
HIPS_BELOW_CHIN = 3.5
#: A subject that ends above the frame's bottom edge, with the plain background below it, is whole: a
#: person shown whole reaches at least the hips below the chin (standing, seated or kneeling), while a
#: boot whose shaft reads as a face ends at its sole 2-3 face heights below that "chin". On-model shots
#: cut off by the frame's bottom edge are not held to it.
WHOLE_FIGURE_BELOW_CHIN = HIPS_BELOW_CHIN
#: A subject whose lowest row covers this share of its box's width ends at a cut, not at its outline:
#: a straight edge spans the whole box (less a few pixels near the background's colour, a white garment
#: on a white canvas), while an object's underside is rounded (a shoe's toe and heel curve up; its sole
#: spans at most ~3/4 of the box) and a whole figure ends in its feet.
CUT_ACROSS = 0.9


def skin_rule(rgb: np.ndarray) -> np.ndarray:
    """Chai & Ngan's skin-colour rule, Cr in [133, 173] and Cb in [77, 127], as a bool mask."""
    ycc = np.asarray(Image.fromarray(rgb).convert("YCbCr"), dtype=np.int16)
    cb, cr = ycc[..., 1], ycc[..., 2]
    return (cr >= 133) & (cr <= 173) & (cb >= 77) & (cb <= 127)


@functools.cache
def _skin_table(low: int, high: int) -> tuple[int, ...]:
    return tuple(255 if low <= v <= high else 0 for v in range(256))


def skin_share(img: Image.Image) -> float:
    """Share of an RGB image's pixels that pass skin_rule, computed by Pillow's native point tables."""
    _, cb, cr = img.convert("YCbCr").split()
    skin = ImageChops.multiply(map_through(cb, _skin_table(77, 127)), map_through(cr, _skin_table(133, 173)))
    return skin.histogram()[255] / (img.width * img.height)


def might_show_person(img: Image.Image) -> bool:
    """False when an RGB photo surely shows no face, without any model: its subject (the box trimming
    would keep) is wider than tall, or the share of its top GATE_TOP that is skin-coloured is outside
    [GATE_MIN_SKIN, GATE_MAX_SKIN). Grey images (the dataset's own) have no skin colour at all; most
    product shots have none where a head would be, and shoes lie wider than tall. Works on a thumbnail
    with Pillow's native operations: every photo under background="auto" pays for it."""
    # nearest-neighbour subsampling: a share of skin pixels needs no filtering, and it costs the same
    # however large the photo
    small = img
    if max(img.size) > GATE_SIZE:
        scale = GATE_SIZE / max(img.size)
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        small = img.resize(size, Image.Resampling.NEAREST)
    far = far_channel_table(background_colour(small), round(0.05 * 255))
    box = map_through(small, far).getbbox()
    if box is None:
        return False
    left, top, right, bottom = box
    framed = box != (0, 0, *small.size)
    if framed and bottom - top < GATE_MIN_ASPECT * (right - left):
        return False
    head = small.crop((left, top, right, top + max(1, round(GATE_TOP * (bottom - top)))))
    return GATE_MIN_SKIN <= skin_share(head) < GATE_MAX_SKIN


def face_centre_box(face: Face, shape: tuple[int, ...]) -> tuple[slice, slice]:
    """Rows and columns of the face's centre (cheeks, nose, mouth; no hair, brows or background)."""
    left, top, right, bottom = face.box
    width, height = right - left, bottom - top
    rows = slice(max(0, int(top + 0.3 * height)), max(1, min(shape[0], int(bottom - 0.15 * height) + 1)))
    cols = slice(max(0, int(left + 0.25 * width)), max(1, min(shape[1], int(right - 0.25 * width) + 1)))
    return rows, cols


def subject_bottom(rgb: np.ndarray) -> int:
    """The row below the subject's lowest pixel, when the plain background shows below it (a product
    centred on a studio background, or a whole figure); else the frame's height: the subject runs off the
    bottom edge, there is no plain background to tell it by, or the subject ends at a cut (a picture
    pasted on a canvas ends at its own straight edge, not where the person does). Pixels count as the
    subject as in might_show_person."""
    image = Image.fromarray(rgb)
    if not has_plain_background(image):
        return rgb.shape[0]
    table = far_channel_table(background_colour(image), round(0.05 * 255))
    far = np.asarray(map_through(image, table)).any(-1)
    rows, cols = np.flatnonzero(far.any(axis=1)), np.flatnonzero(far.any(axis=0))
    if len(rows) == 0:
        return rgb.shape[0]
    # the last two rows: resampling blends a cut's last row with the canvas
    lowest = far[rows[-2:], cols[0] : cols[-1] + 1].mean(axis=1).max()
    return rgb.shape[0] if lowest >= CUT_ACROSS else int(rows[-1]) + 1


def face_is_plausible(rgb: np.ndarray, face: Face) -> bool:
    """The cheap checks, before segmentation is paid for: room below the chin for a body (down to the
    hips when the subject ends inside the frame), and a skin-coloured face centre (rejects most
    detections on bags, shoes and prints)."""
    if face.height <= 0 or (rgb.shape[0] - face.chin) < MIN_BODY_BELOW * face.height:
        return False
    bottom = subject_bottom(rgb)
    if bottom < rgb.shape[0] and bottom - face.chin < WHOLE_FIGURE_BELOW_CHIN * face.height:
        return False
    rows, cols = face_centre_box(face, rgb.shape)
    return bool(skin_rule(rgb[rows, cols]).mean() >= MIN_FACE_SKIN)


def row_width(mask: np.ndarray, y: float) -> float:
    """Pixels set in row ``y`` of a mask; 0 outside the frame."""
    row = round(y)
    return float(mask[row].sum()) if 0 <= row < mask.shape[0] else 0.0


def has_shoulders(face: Face, person: np.ndarray) -> bool:
    """The person mask below the face is a body: wide at the shoulders and wider than at the head."""
    h = face.height
    shoulders = row_width(person, face.chin + h)
    head = row_width(person, face.eye_level)
    return shoulders >= MIN_SHOULDER_WIDTH * h and shoulders >= MIN_WIDENING * max(head, 0.5 * h)
