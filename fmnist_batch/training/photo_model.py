"""Pairing a model with a photo model: a second model, trained with real photos, for the photos the
conversion segments (cut out of a floor, a bed, a hanger). Catalog shots and the dataset's own images keep
the first model, so its Fashion-MNIST and catalog accuracy are untouched.

The pairing is decided by numbers the photo model never trained on: the real photos its retrain held out
(``--extra-data``'s validation fifth), those of them the conversion segments, classified by each model
through the runtime classify uses. The photo model is attached only if it is the more accurate there.

Given labelled photos of garments worn by a person (``worn_photos``, folders as ``evaluate`` reads them),
the pairing also decides which model reads the crops the person path cuts out of them: the one with the
higher balanced accuracy on them, through the same runtime, each answer limited to the classes a worn
crop can show as classify limits it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from fmnist_batch.convert import ConversionSettings
from fmnist_batch.model import registry
from fmnist_batch.model.card import (
    HISTORY_FILE,
    PHOTO_FOLDER,
    ModelCard,
    ModelError,
    PhotoModelDecision,
    WornDecision,
    find_card,
)
from fmnist_batch.model.card_records import portable_path
from fmnist_batch.model.runtime import load_model


class PairingError(Exception):
    """The photo model cannot be judged: it was not trained with real photos, or they have changed."""


def _copy_model(card: ModelCard, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for kind in card.files:
        shutil.copyfile(registry.verify(registry.network(card, kind, kind)), out / card.files[kind]["name"])
    history = card.path.parent / HISTORY_FILE
    if history.is_file():
        shutil.copyfile(history, out / HISTORY_FILE)
    # every model the card names beside it (garment reader, scope judge, its own person detectors) goes
    # with the copy, with its folder's licence and readme: the paired card names them
    for model in _companions(card):
        target = out / model.path.relative_to(card.path.parent)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(registry.verify(model), target)
        for name in ("LICENSE", "README.md"):
            if (model.path.parent / name).is_file():
                shutil.copyfile(model.path.parent / name, target.parent / name)


def _companions(card: ModelCard) -> list[registry.DeclaredModel]:
    """The models a card declares in folders beside it (bundled person detectors are not its own)."""
    models = []
    if card.garment_reader is not None:
        models.append(registry.garment_reader(card))
    models += registry.scope_models(card)
    if card.person_models is not None and not card.person_models.get("bundled"):
        models += registry.person_models(card)
    return models


def held_out_photos(
    photo_card: ModelCard, workers: int | None, cache: str | None, log: Callable[[str], None]
):
    """The real photos the photo model's retrain held out, converted as classify converts: a LabelledPhotos
    and the indices of the held-out ones."""
    from fmnist_batch.training.labelled_photos import load_labelled_photos, split_by_folder

    training = photo_card.training
    extra = training.extra_data if training is not None else None
    if training is None or extra is None:
        raise PairingError(
            f"{photo_card.path} was not trained with --extra-data: no held-out photos to judge by"
        )
    if not Path(extra.folder).is_dir():
        raise PairingError(
            f"the photos {photo_card.path} was trained with are not at {extra.folder} (cards keep paths "
            "relative to the folder retrain ran in: run pair-photo-model there)"
        )
    photos = load_labelled_photos(
        extra.folder,
        extra.mapping,
        settings=ConversionSettings(**extra.conversion),
        workers=workers,
        cache=cache,
        log=log,
    )
    if photos.files_sha256 != extra.files_sha256:
        raise PairingError(
            f"the photos under {extra.folder} have changed since {photo_card.path} was trained"
        )
    _, held_out = split_by_folder(photos.folder_index, extra.validation_fraction, training.seed)
    if len(held_out) != extra.validation_photos:
        raise PairingError(
            f"{len(held_out)} held-out photos, but {photo_card.path} held out {extra.validation_photos}: "
            "the conversion no longer fails on the same photos"
        )
    return photos, held_out


def _judge(main, photo, photo_card: ModelCard, workers, cache, log) -> PhotoModelDecision:
    """Both models' accuracy on the held-out photos, segmented and not; attach if the photo model is the
    more accurate on the segmented ones (the only ones it will see)."""
    from fmnist_batch.training.labelled_photos import accepted_accuracy

    photos, held_out = held_out_photos(photo_card, workers, cache, log)
    models = {
        "main": load_model(main, use_photo_model=False, num_threads=1),
        "photo": load_model(photo, use_photo_model=False, num_threads=1),
    }

    def accuracies(rows: np.ndarray) -> dict[str, float]:
        return {
            name: accepted_accuracy(model.predict_logits(photos.images[rows]), photos.accepted[rows])
            for name, model in models.items()
        }

    segmented = held_out[photos.segmented[held_out]]
    others = held_out[~photos.segmented[held_out]]
    on_segmented, on_others = accuracies(segmented), accuracies(others)
    return PhotoModelDecision(
        photo_model_command=photo_card.training.command if photo_card.training else None,
        held_out_photos=len(held_out),
        segmented_photos=len(segmented),
        segmented_accuracy_main=on_segmented["main"],
        segmented_accuracy_photo=on_segmented["photo"],
        not_segmented_photos=len(others),
        not_segmented_accuracy_main=on_others["main"],
        not_segmented_accuracy_photo=on_others["photo"],
        attached=bool(on_segmented["photo"] > on_segmented["main"]),
    )


def worn_crops(
    folder: str | os.PathLike, card: ModelCard
) -> tuple[np.ndarray, list[frozenset[int]], list[str]]:
    """The 28x28 images of the photos under `folder` that take the worn view, converted as classify
    converts them with `card`'s settings, with the classes that count as right and the folder of each."""
    from fmnist_batch.convert import ImageError, convert_path
    from fmnist_batch.discover import discover
    from fmnist_batch.evaluate import folder_classes
    from fmnist_batch.options import ClassifyOptions

    settings = ClassifyOptions().conversion_settings(card.conversion_settings())
    images, accepted, names = [], [], []
    for name, classes in folder_classes(Path(folder), None).items():
        for file in discover([str(Path(folder) / name)]) if classes else ():
            try:
                conversion = convert_path(file.path, settings)
            except ImageError:
                continue
            if conversion.view == "worn":
                images.append(conversion.image)
                accepted.append(classes)
                names.append(name)
    if not images:
        raise PairingError(f"none of the photos under {folder} shows a person the person path reads")
    return np.stack(images), accepted, names


def judge_worn(main, photo, folder: str | os.PathLike, log) -> WornDecision:
    """Both models on the worn crops of the labelled photos under `folder`: the photo model reads worn
    photos if its balanced accuracy there is the higher."""
    from fmnist_batch.model.combine import within_view_classes

    main_card = ModelCard.load(find_card(main))
    images, accepted, names = worn_crops(folder, main_card)
    views = np.full(len(images), "worn", dtype=object)
    right = {}
    for key, source in (("main", main), ("photo", photo)):
        model = load_model(source, use_photo_model=False, num_threads=1)
        answers = within_view_classes(model.predict_proba(images), views).argmax(axis=1)
        right[key] = np.array([int(a) in ok for a, ok in zip(answers, accepted, strict=True)])
    folders = np.array(names)
    accuracy = {key: float(hits.mean()) for key, hits in right.items()}
    balanced = {
        key: float(np.mean([hits[folders == name].mean() for name in sorted(set(names))]))
        for key, hits in right.items()
    }
    decision = WornDecision(
        judged_on=portable_path(folder),
        worn_photos=len(images),
        accuracy_main=accuracy["main"],
        accuracy_photo=accuracy["photo"],
        balanced_accuracy_main=balanced["main"],
        balanced_accuracy_photo=balanced["photo"],
        read_by="photo" if balanced["photo"] > balanced["main"] else "main",
    )
    log(
        f"{len(images)} photos under {folder} take the worn view: balanced accuracy "
        f"{decision.balanced_accuracy_main:.3f} with the main model, {decision.balanced_accuracy_photo:.3f} "
        f"with the photo model: worn photos go to the {decision.read_by} model"
    )
    return decision


def pair_with_photo_model(
    main: str | os.PathLike | None,
    photo: str | os.PathLike,
    out: str | os.PathLike,
    *,
    workers: int | None = None,
    cache: str | None = None,
    worn_photos: str | os.PathLike | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Write `main`'s model into `out` with `photo` as its photo model if that is more accurate on the
    segmented held-out photos, and for worn photos too if it reads those of `worn_photos` better; returns
    the decision the card records under photo_model_decision."""
    main_card = ModelCard.load(find_card(main))
    photo_card = ModelCard.load(find_card(photo))
    if photo_card.photo_model is not None:
        raise PairingError(f"{photo_card.path} has a photo model of its own; name a single model")
    out = Path(out)
    if out.resolve() in (main_card.path.parent.resolve(), photo_card.path.parent.resolve()):
        raise PairingError("--out must be a new folder, not one of the models")
    decision = _judge(main, photo, photo_card, workers, cache, log)
    log(
        f"{decision.segmented_photos} of {decision.held_out_photos} held-out photos are segmented: accuracy "
        f"{decision.segmented_accuracy_main:.3f} with {main_card.path.parent}, "
        f"{decision.segmented_accuracy_photo:.3f} with {photo_card.path.parent}: "
        + ("photo model attached" if decision.attached else "photo model not attached")
    )
    worn = None
    if decision.attached and worn_photos is not None:
        worn = judge_worn(main, photo, worn_photos, log)
    _write_paired(main_card, photo_card if decision.attached else None, decision, out, worn)
    return decision.to_dict()


def _write_paired(
    main_card: ModelCard,
    photo_card: ModelCard | None,
    decision: PhotoModelDecision,
    out: Path,
    worn: WornDecision | None = None,
) -> None:
    """`main_card`'s model in `out`, with `photo_card`'s in out/PHOTO_FOLDER if given; then loaded as
    classify will load it, so a broken pairing fails here, not in a user's run."""
    _copy_model(main_card, out)
    target = out / PHOTO_FOLDER
    if target.exists():  # a photo model from an earlier pairing into this folder
        shutil.rmtree(target)
    if photo_card is not None:
        _copy_model(photo_card, target)
        photo_card = photo_card.write(target)
    main_card.with_photo_model(decision, photo_card, worn).write(out)
    try:
        paired = load_model(out)
        paired.predict_proba(np.zeros((1, 28, 28), np.uint8), np.array([photo_card is not None]))
    except ModelError as e:
        raise PairingError(f"the paired model in {out} does not load: {e}") from None
