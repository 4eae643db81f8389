"""Path or PIL image -> the 28x28 uint8 array the model sees, the way Fashion-MNIST itself was made.

The paper (arXiv:1708.07747, section 2) converted catalog photos on a light background by: trimming the
edges within 5% of the corner colour, resizing the longest edge to 28, sharpening, extending the shorter
edge to 28 with the image centred, negating, and converting to 8-bit grayscale. ``convert_image``
runs those steps (steps.py) in that order, plus what arbitrary files need: EXIF orientation, alpha
composited onto white, unusual modes (decode.py), photos already on a dark background, a grey
background stretched to exactly 0 like the dataset's, and JPEG decoding at reduced scale. Grayscale
conversion happens right after trimming (trimming needs colour, nothing after it does) so the later
steps work on one channel.

Photos that are not catalog shots (a garment on a floor, a bed, a hanger) first go through
``segment_garment`` (segment.py): GrabCut finds the garment, which is pasted, evenly contrasted, onto the
catalog background, and the dataset's steps then run unchanged. Under ``background="auto"`` only photos
whose border is not one plain colour take that path, so catalog photos get exactly the plain conversion.

Photos of a garment worn by a person (a shop's on-model shots) go through ``find_worn_garment``
(person.py) instead: the garment the person wears, without head, skin or a second garment, pasted on the
catalog background (view "worn"). Under ``background="auto"`` only photos with skin-coloured pixels at the
top of the subject are checked (``might_show_person``, a fraction of a millisecond), so product shots and
the dataset's own grey images never load the detectors; ``background="person"`` checks every photo and
falls back to the plain conversion when it finds nobody; ``background="products"`` never checks (a folder
of garments alone: a pink or tan product shot does not pay for the face detector).

When the model runs a scope judge (settings.scope_side), ``convert_image`` also asks it whether the
photo shows one of the 10 classes at all (``judged_in_scope``, scope.py): the judge runs here, in
whichever process converts the photo, and the conversion keeps its in_scope; an image already in the
dataset's own format (28x28 grey), or a catalog shot that reads as one (``read_by_reference``: one ink,
and a 28x28 image like the network's training images), is not judged.

Only PIL and numpy are imported up front (OpenCV and LiteRT only when a photo is segmented, checked for
a person or judged) and every step is a module-level function, so worker processes can import and pickle
this cheaply.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from fmnist_batch.convert.decode import load_image, to_rgb
from fmnist_batch.convert.person import find_worn_garment, might_show_person
from fmnist_batch.convert.scope import judged_in_scope, read_by_reference
from fmnist_batch.convert.segment import has_plain_background, segment_garment
from fmnist_batch.convert.settings import DEFAULT_SETTINGS, ConversionSettings
from fmnist_batch.convert.steps import (
    background_colour,
    centre_on_canvas,
    fit_longest_edge,
    is_dark_background,
    luminance,
    negate,
    sharpen,
    stretch_to_full_range,
    to_grayscale,
    trim_background,
    zero_background_level,
)
from fmnist_batch.labels import IMAGE_SIZE


@dataclass(frozen=True)
class _Isolated:
    """The garment cut out of a photo and pasted on the catalog background (None: the dataset's
    conversion takes the photo as it is), the view that names how, and for a worn garment the region
    it was read from and the garment in colour."""

    garment: Image.Image | None
    view: str
    colour: np.ndarray | None = None
    region: str = ""


def _isolate_garment(rgb: Image.Image, settings: ConversionSettings) -> _Isolated:
    background = settings.background
    if background == "person" or (background == "auto" and might_show_person(rgb)):
        worn = find_worn_garment(rgb, settings.person_models, settings.garment_side)
        if worn is not None:
            return _Isolated(worn.image, "worn", worn.colour, worn.region)
    if background == "segment" or (background in ("auto", "products") and not has_plain_background(rgb)):
        garment = segment_garment(rgb, settings.segment_size, settings.cut_size, settings.cut_iterations)
        if garment is not None:
            return _Isolated(garment, "segmented")
    return _Isolated(None, "catalog")


def _should_negate(invert: str, background: tuple[int, int, int]) -> bool:
    if invert == "auto":
        return not is_dark_background(background)
    return invert == "always"


@dataclass(frozen=True)
class Conversion:
    """The 28x28 image, and the view of the garment it was made from (settings.VIEWS): "catalog" (the
    dataset's conversion as is), "segmented" (cut out of a non-catalog background; a model card may name
    a second model for those) or "worn" (cut out of a photo of a person wearing it, which also keeps the
    garment in colour for the garment reader: garment.square_on_white, and the region of the body it
    was read from: settings.REGIONS; "" for the other views)."""

    image: np.ndarray
    view: str = "catalog"
    colour: np.ndarray | None = None
    region: str = ""
    #: the photo's in_scope (scope.py): the judge's, or the dataset reference's for a shot that reads as
    #: a dataset image; None when no judge runs or the image is already in the dataset's own format
    #: (is_dataset_image), which is in scope
    in_scope: float | None = None
    #: the main network's logits of `image` when the dataset reference computed them (scope.py): the
    #: run's own network, so the run reuses them
    logits: np.ndarray | None = None

    @property
    def segmented(self) -> bool:
        return self.view == "segmented"


def convert_image(img: Image.Image, settings: ConversionSettings = DEFAULT_SETTINGS) -> Conversion:
    """The whole conversion: an image of any mode -> uint8 (size, size), background 0, garment bright."""
    photo = to_rgb(img)
    isolated = _isolate_garment(photo, settings)
    view = isolated.view
    rgb = isolated.garment or photo
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
    # a worn garment keeps the photo's own grey levels, as a catalog shot does, and is stretched as one is
    # (the photo model reads worn crops as well either way); a segmented one keeps the contrast
    # auto_contrast gave it, which the photo model learnt
    if settings.full_range and view != "segmented" and fill < 128:
        pixels = stretch_to_full_range(pixels)
    # the judge reads the photo, not the garment cut out of it, once the rest converted (a photo that
    # fails costs it nothing)
    reading = read_by_reference(photo, pixels, view, settings)
    if is_dataset_image(img):
        in_scope = None
    elif reading.in_scope is not None:  # reads as a dataset image: the reference's, not judged
        in_scope = reading.in_scope
    else:
        in_scope = judged_in_scope(photo, settings)
    return Conversion(pixels, view, isolated.colour, isolated.region, in_scope, reading.logits)


def is_dataset_image(img: Image.Image) -> bool:
    """An image already in Fashion-MNIST's own format (28x28 grey): a dataset image, not a product photo,
    so in scope whatever a photo judge would make of it."""
    if img.size != (IMAGE_SIZE, IMAGE_SIZE):
        return False
    if img.mode in ("L", "I;16", "I", "F", "1"):
        return True
    bands = img.convert("RGB").split()
    return bands[0].tobytes() == bands[1].tobytes() == bands[2].tobytes()


def convert_path(path: str | os.PathLike, settings: ConversionSettings = DEFAULT_SETTINGS) -> Conversion:
    """load_image + convert_image; raises ImageError for anything that is not a usable image."""
    return convert_image(load_image(path, settings), settings)


def save_preview(array: np.ndarray, path: str | os.PathLike) -> None:
    """Write a preprocessed array as an 8-bit greyscale PNG (what the model saw)."""
    with open(path, "wb") as file:
        file.write(encode_preview(array))


def encode_preview(array: np.ndarray) -> bytes:
    """A preprocessed array as the bytes of an 8-bit greyscale PNG (--save-preprocessed writes them)."""
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {array.shape}")
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()
