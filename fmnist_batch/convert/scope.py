"""The scope judge's in_scope of a photo, where the photo is converted.

The photo, already decoded for its 28x28 image, is made into the judge's picture at its side
(garment.judge_picture: a product on a plain background cut to its box, any other photo whole) and read
by the card's judge (model/scope_judge.py), which each process loads once, on one thread, from the file
the model verified. A pool of conversion workers so judges its photos
in parallel, and a conversion carries in_scope, one float, instead of the picture. Every caller that
converts (classify's workers, Ray tasks, Classifier, the web app) runs it here, so each gets the same
in_scope for the same photo.
"""

from __future__ import annotations

from PIL import Image

from fmnist_batch.convert.garment import judge_picture
from fmnist_batch.convert.settings import ConversionSettings, ImageError
from fmnist_batch.model.card_checks import ModelError
from fmnist_batch.model.scope_judge import shared_scope_judge


def judged_in_scope(rgb: Image.Image, settings: ConversionSettings) -> float | None:
    """in_scope of an RGB photo by the settings' judge; None when no judge runs (scope_side 0). A judge
    that cannot be loaded is an ImageError: the photo's row says so rather than go unjudged."""
    if not settings.scope_side:
        return None
    picture = judge_picture(rgb, settings.scope_side)
    try:
        return shared_scope_judge(settings.scope_judge or bundled_scope_judge()).in_scope(picture)
    except ModelError as e:
        raise ImageError(str(e)) from None


def bundled_scope_judge() -> str:
    """The bundled judge's file, verified against the bundled card (settings without a file: a Ray node
    converting for the bundled model verifies its own installation's); a run's model hands the
    conversion its own, verified at load."""
    from fmnist_batch.model.registry import bundled_scope_judge as verified

    return verified()
