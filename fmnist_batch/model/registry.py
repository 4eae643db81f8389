"""Every model a run uses, in one list: what the card declares for each (its file, sha256, licence and the
input it wants), resolved relative to the card, and verified before any photo is read.

A run's models are the main network, the photo network (segmented and worn photos), the garment reader
(worn garments in colour), the person path's face detector and selfie segmentation, the scope judge (both
its looks in one file), the dataset reference, and any later one the card names. `Model` (runtime.py)
loads its networks lazily and hands the conversion the files the conversion runs (person detectors, scope
judge, dataset reference), but asks here for every one it may use and checks each first, so a tampered or
swapped file anywhere is a ModelError before the first photo, and the run's settings record each file's
sha256 (`--resume` compares them).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from fmnist_batch.model.card import CARD_FILE, PERSON_MODELS, ModelCard, ModelError, bundled_model_dir
from fmnist_batch.model.card_checks import verified_file
from fmnist_batch.model.person_models import PersonFiles

#: what each person detector wants (model/person_models.py letterboxes the photo to it)
PERSON_INPUTS = {
    "face": "RGB 128x128, the photo letterboxed with its edge colour, float32 in [-1, 1]",
    "segment": "RGB 256x256, the photo letterboxed with its edge colour, float32 in [0, 1]",
}


@dataclass(frozen=True)
class DeclaredModel:
    """One model file a run may read, as its card declares it."""

    #: main, photo, photo_card, garment, face, segment, ...
    name: str
    path: Path
    sha256: str
    licence: str
    input: str


def verify(model: DeclaredModel) -> Path:
    """The model's path, after checking it exists and has the sha256 its card declares."""
    return verified_file(model.path, model.sha256, f"{model.name} model")


def network(card: ModelCard, kind: str, name: str) -> DeclaredModel:
    """The network file `kind` (a files entry: tflite, tflite_int8, keras) of `card`."""
    if kind not in card.files:
        raise ModelError(f"model card {card.path} names no {kind} file")
    entry = card.files[kind]
    return DeclaredModel(
        name,
        card.model_file(kind),
        entry.get("sha256", ""),
        card.licence,
        card.input_description,
    )


def photo_card(card: ModelCard) -> DeclaredModel:
    """The photo network's card, which holds the sha256 of the photo network's own files."""
    if card.photo_model is None:
        raise ModelError(f"model card {card.path} names no photo model")
    path = card.path.parent / card.photo_model["folder"] / CARD_FILE
    return DeclaredModel("photo card", path, card.photo_model["card_sha256"], "", "")


def garment_reader(card: ModelCard) -> DeclaredModel:
    entry = card.garment_reader
    if entry is None:
        raise ModelError(f"model card {card.path} names no garment reader")
    side = entry.get("input", 224)
    return DeclaredModel(
        "garment reader",
        card.path.parent / entry["folder"] / entry["file"],
        entry["sha256"],
        entry.get("licence", "Apache-2.0"),
        f"RGB {side}x{side}, the worn garment on white, float32 0..255",
    )


def scope_judge(card: ModelCard) -> DeclaredModel:
    entry = card.scope_judge
    if entry is None:
        raise ModelError(f"model card {card.path} names no scope judge")
    side = entry["side"]
    return DeclaredModel(
        "scope judge",
        card.path.parent / entry["folder"] / entry["file"],
        entry["sha256"],
        entry.get("licence", ""),
        entry.get("input", f"RGB {side}x{side}, the photo squared on white (judge_picture), float32 0..255"),
    )


def dataset_reference(card: ModelCard) -> DeclaredModel:
    entry = card.dataset_reference
    if entry is None:
        raise ModelError(f"model card {card.path} names no dataset reference")
    return DeclaredModel(
        "dataset reference",
        card.path.parent / entry["folder"] / entry["file"],
        entry["sha256"],
        entry.get("licence", ""),
        "the main network's logits (N, 10), each scaled to length 1; float16 .npy",
    )


def person_model(card: ModelCard, name: str) -> DeclaredModel:
    """The person detector `name` (face, segment): the card's own, or the bundled ones it names."""
    entry = (card.person_models or {}).get(name, {})
    return DeclaredModel(
        f"person {name}",
        card.person_file(name),
        card.person_sha256(name),
        (card.person_models or {}).get("licence", "Apache-2.0"),
        entry.get("input", PERSON_INPUTS[name]),
    )


def person_models(card: ModelCard) -> list[DeclaredModel]:
    return [person_model(card, name) for name in PERSON_MODELS]


@functools.cache
def bundled_person_files() -> PersonFiles:
    """The bundled card's person detectors, verified."""
    face, segment = (verify(model) for model in person_models(_bundled_card()))
    return PersonFiles(face=str(face), segment=str(segment))


def scope_models(card: ModelCard) -> list[DeclaredModel]:
    """The models the scope concern reads: the judge (its second look is the same file) and the dataset
    reference, those the card names (one list, so a run and a copy of the model folder never disagree on
    them)."""
    if card.scope_judge is None:
        return []
    models = [scope_judge(card)]
    if card.dataset_reference is not None:
        models.append(dataset_reference(card))
    return models


@functools.cache
def bundled_scope_judge() -> str:
    """The bundled card's scope judge's file, verified."""
    return str(verify(scope_judge(_bundled_card())))


def _bundled_card() -> ModelCard:
    return ModelCard.load(bundled_model_dir() / CARD_FILE)
