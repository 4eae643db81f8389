"""The scope judge's in_scope of a photo, where the photo is converted.

The photo, already decoded for its 28x28 image, is made into the judge's picture at its side
(garment.judge_picture: a product on a plain background cut to its box, any other photo whole) and read
by the card's judge (model/scope_judge.py), which each process loads once, on one thread, from the file
the model verified. A photo the judge doubts (in_scope below the card's ask_below, the point where it
finds the photo no likelier in scope than not) is read again at a larger side by the judge's second look
(the same network, its own head), whose answer is the photo's: most garments pass the quick look, and the
photos that may be `other` get the sharp one. Before either, a catalog shot that reads as a Fashion-MNIST
image (read_by_reference: its colours one ink, its 28x28 image near one the main network was trained on)
is not judged at all: it is in scope, its in_scope set by how near (dataset_reference.in_scope_within),
and costs a 28x28 forward pass, whose logits the conversion carries so that the run does not compute
them again.

A pool of conversion workers so judges its photos in parallel, and a conversion carries in_scope, one
float, instead of the picture. Every caller that converts (classify's workers, Ray tasks, Classifier, the
web app) runs it here, so each gets the same in_scope for the same photo.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from PIL import Image

from fmnist_batch.convert.garment import judge_subject, on_white_square
from fmnist_batch.convert.ink import ink_spread
from fmnist_batch.convert.settings import ConversionSettings, ImageError
from fmnist_batch.model.card_checks import ModelError
from fmnist_batch.model.dataset_reference import in_scope_within, shared_reference_gate
from fmnist_batch.model.scope_judge import FIRST_LOOK, SECOND_LOOK, shared_scope_judge


class ReferenceReading(NamedTuple):
    """What the dataset reference made of a converted photo: the main network's logits of its 28x28 image
    when the reference computed them, and the photo's in_scope when it reads as a dataset image
    (in_scope_within; None otherwise: the judge decides)."""

    logits: np.ndarray | None = None
    in_scope: float | None = None


def read_by_reference(
    rgb: Image.Image, pixels: np.ndarray, view: str, settings: ConversionSettings
) -> ReferenceReading:
    """Whether a converted catalog shot reads as a Fashion-MNIST image: its colours could be one grey
    image painted in one ink (ink_spread of the RGB photo within the settings' limit), and its 28x28
    image's main-network logits lie within the settings' radius of the dataset reference's
    (model/dataset_reference.py). Such a photo is not judged: it is in scope as a 28x28 grey file is.
    Asked only when a judge runs. The logits first: the run reuses them, so they cost no extra forward
    pass, while the colours are measured only for a shot within the radius."""
    files = settings.reference_files
    if view != "catalog" or not settings.scope_side or files is None or settings.dataset_radius <= 0:
        return ReferenceReading()
    try:
        distance, logits = shared_reference_gate(files).read(pixels)
    except ModelError as e:
        raise ImageError(str(e)) from None
    within = distance <= settings.dataset_radius
    limit = settings.dataset_ink_limit
    if not within or (limit is not None and ink_spread(rgb, settings.trim_tolerance) > limit):
        return ReferenceReading(logits)
    floor = settings.dataset_in_scope_floor
    return ReferenceReading(logits, in_scope_within(distance, settings.dataset_radius, floor))


def judged_in_scope(rgb: Image.Image, settings: ConversionSettings) -> float | None:
    """in_scope of an RGB photo by the settings' judge; None when no judge runs (scope_side 0). A photo
    the judge finds below scope_ask_below is read again by its second look (the same network at the
    second look's side, with that look's head), which answers for it. A judge that cannot be loaded is
    an ImageError: the photo's row says so rather than go unjudged."""
    if not settings.scope_side:
        return None
    subject = judge_subject(rgb)  # both looks read the same part of the photo, each at its own side
    try:
        judge = shared_scope_judge(settings.scope_judge or _bundled())
        first = judge.in_scope(on_white_square(subject, settings.scope_side), FIRST_LOOK)
        if not settings.scope_second_side or first >= settings.scope_ask_below:
            return first
        return judge.in_scope(on_white_square(subject, settings.scope_second_side), SECOND_LOOK)
    except ModelError as e:
        raise ImageError(str(e)) from None


def _bundled() -> str:
    """The bundled judge's file, verified against the bundled card (settings without a file: a Ray node
    converting for the bundled model verifies its own installation's); a run's model hands the
    conversion its own, verified at load."""
    from fmnist_batch.model import registry

    return registry.bundled_scope_judge()
