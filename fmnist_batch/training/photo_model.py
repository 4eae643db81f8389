"""Pairing a model with a photo model: a second model, trained with real photos, for the photos the
conversion segments (cut out of a floor, a bed, a hanger). Catalog shots and the dataset's own images keep
the first model, so its Fashion-MNIST and catalog accuracy are untouched.

The pairing is decided by numbers the photo model never trained on: the real photos its retrain held out
(``--extra-data``'s validation fifth), those of them the conversion segments, classified by each model
through the runtime classify uses. The photo model is attached only if it is the more accurate there.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fmnist_batch.convert import PreprocessSettings
from fmnist_batch.model.runtime import (
    CARD_FILE,
    HISTORY_FILE,
    ModelCard,
    ModelError,
    find_card,
    load_model,
    write_card,
)
from fmnist_batch.training.data import sha256_file

#: The photo model's files go into this subfolder of the paired model.
PHOTO_FOLDER = "photo"


class PairingError(Exception):
    """The photo model cannot be judged: it was not trained with real photos, or they have changed."""


def _copy_model(card: ModelCard, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for kind in card.files:
        shutil.copyfile(card.verify(kind), out / card.files[kind]["name"])
    history = card.path.parent / HISTORY_FILE
    if history.is_file():
        shutil.copyfile(history, out / HISTORY_FILE)


def held_out_photos(
    photo_card: ModelCard, workers: int | None, cache: str | None, log: Callable[[str], None]
):
    """The real photos the photo model's retrain held out, converted as classify converts: a LabelledPhotos
    and the indices of the held-out ones."""
    from fmnist_batch.training.labelled_photos import load_labelled_photos, split_by_folder

    training = photo_card.raw.get("training", {})
    extra = training.get("extra_data")
    if not extra:
        raise PairingError(
            f"{photo_card.path} was not trained with --extra-data: no held-out photos to judge by"
        )
    if not Path(extra["folder"]).is_dir():
        raise PairingError(f"the photos {photo_card.path} was trained with are not at {extra['folder']}")
    photos = load_labelled_photos(
        extra["folder"],
        extra["mapping"],
        settings=PreprocessSettings(**extra["conversion"]),
        workers=workers,
        cache=cache,
        log=log,
    )
    if photos.files_sha256 != extra["files_sha256"]:
        raise PairingError(
            f"the photos under {extra['folder']} have changed since {photo_card.path} was trained"
        )
    _, held_out = split_by_folder(photos.folder_index, extra["validation_fraction"], training["seed"])
    if len(held_out) != extra["validation_photos"]:
        raise PairingError(
            f"{len(held_out)} held-out photos, but {photo_card.path} held out {extra['validation_photos']}: "
            "the conversion no longer fails on the same photos"
        )
    return photos, held_out


def pair_with_photo_model(
    main: str | os.PathLike | None,
    photo: str | os.PathLike,
    out: str | os.PathLike,
    *,
    workers: int | None = None,
    cache: str | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Write `main`'s model into `out` with `photo` as its photo model if that is more accurate on the
    segmented held-out photos; returns the decision the card records under photo_model_decision."""
    from fmnist_batch.training.labelled_photos import accepted_accuracy

    main_card = ModelCard.load(find_card(main))
    photo_card = ModelCard.load(find_card(photo))
    if photo_card.photo_model is not None:
        raise PairingError(f"{photo_card.path} has a photo model of its own; name a single model")
    out = Path(out)
    if out.resolve() in (main_card.path.parent.resolve(), photo_card.path.parent.resolve()):
        raise PairingError("--out must be a new folder, not one of the models")
    photos, held_out = held_out_photos(photo_card, workers, cache, log)
    accepted = photos.accepted
    decision: dict = {
        "photo_model_command": photo_card.raw["training"].get("command"),
        "judged_on": "the real photos the photo model's retrain held out that the conversion segments",
        "held_out_photos": len(held_out),
    }
    models = {
        "main": load_model(main, use_photo_model=False, num_threads=1),
        "photo": load_model(photo, use_photo_model=False, num_threads=1),
    }
    for route, chosen in (
        ("segmented", photos.segmented[held_out]),
        ("not_segmented", ~photos.segmented[held_out]),
    ):
        rows = held_out[chosen]
        decision[f"{route}_photos"] = len(rows)
        for name, model in models.items():
            logits = model.predict_logits(photos.images[rows])
            decision[f"{route}_accuracy_{name}"] = accepted_accuracy(logits, accepted[rows])
    attach = decision["segmented_accuracy_photo"] > decision["segmented_accuracy_main"]
    decision["attached"] = bool(attach)
    log(
        f"{decision['segmented_photos']} of {len(held_out)} held-out photos are segmented: accuracy "
        f"{decision['segmented_accuracy_main']:.3f} with {main_card.path.parent}, "
        f"{decision['segmented_accuracy_photo']:.3f} with {photo_card.path.parent}: "
        + ("photo model attached" if attach else "photo model not attached")
    )

    _copy_model(main_card, out)
    card = dict(main_card.raw)
    card.pop("photo_model", None)
    card["photo_model_decision"] = decision
    target = out / PHOTO_FOLDER
    if target.exists():  # a photo model from an earlier pairing into this folder
        shutil.rmtree(target)
    if attach:
        _copy_model(photo_card, target)
        shutil.copyfile(photo_card.path, target / CARD_FILE)
        card["photo_model"] = {
            "folder": PHOTO_FOLDER,
            "card_sha256": sha256_file(target / CARD_FILE),
            "used_for": "photos the conversion segments (not one plain background colour at the border)",
        }
    write_card(out, card)
    try:  # what classify will load: fail here, not in a user's run
        paired = load_model(out)
        paired.predict_proba(np.zeros((1, 28, 28), np.uint8), np.array([attach]))
    except ModelError as e:
        raise PairingError(f"the paired model in {out} does not load: {e}") from None
    return decision
