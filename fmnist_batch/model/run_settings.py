"""How a model's run converts photos: the conversion settings resolved from the options and the card
(argument > card > default), with what the card's models want of the conversion: the garment reader's
picture side, the scope judge's sides, and the verified files of the models the conversion itself runs
(person detectors, the scope judge, the dataset reference)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from fmnist_batch.model.dataset_reference import ReferenceFiles

if TYPE_CHECKING:
    from fmnist_batch.convert.settings import ConversionSettings
    from fmnist_batch.model.runtime import Model
    from fmnist_batch.options import ClassifyOptions


def conversion_settings(model: Model, options: ClassifyOptions) -> ConversionSettings:
    """`options`' conversion settings resolved against `model`'s card, with its models' files and sides."""
    card = model.card
    settings = options.conversion_settings(card.conversion_settings())
    side = int((card.garment_reader or {}).get("input", settings.garment_side))
    return dataclasses.replace(
        settings,
        garment_side=side,
        person_models=model.person_files,
        scope_side=model.scope_side,
        scope_judge=model.scope_judge_file,
        **_second_look_settings(model),
        **_reference_settings(model),
    )


def _reference_settings(model: Model) -> dict:
    """The ConversionSettings fields of the dataset reference (model/dataset_reference.py): none
    without a judge in use or without a reference in the card."""
    entry = model.card.dataset_reference
    if not model.scope_side or entry is None:
        return {}
    points = str(model.declared_path("dataset reference"))
    # the gate runs the main network with LiteRT: the same file as this run, or the float one for Keras
    precision = model.precision if model.backend == "litert" else "float"
    files = ReferenceFiles(str(model.card.path), precision, points)
    limit = entry.get("ink_limit")  # a card without it reads no colours: the radius alone decides
    return {
        "dataset_radius": float(entry["radius"]),
        "dataset_ink_limit": None if limit is None else float(limit),
        "dataset_in_scope_floor": float(model.card.scope_judge["threshold"]),
        "reference_files": files,
    }


def _second_look_settings(model: Model) -> dict:
    """The ConversionSettings fields of the judge's second look: none when the card has none."""
    look = (model.card.scope_judge or {}).get("second_look") if model.scope_side else None
    if look is None:
        return {}
    return {"scope_second_side": int(look["side"]), "scope_ask_below": float(look["ask_below"])}
