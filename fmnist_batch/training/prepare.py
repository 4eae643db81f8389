"""The data retrain fits on: the seeded, stratified train/validation split, labelled real photos mixed
into the training part, and the tf.data pipelines."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fmnist_batch.labels import NUM_CLASSES
from fmnist_batch.model.card_records import ExtraData
from fmnist_batch.training.config import INPUT_OFFSET, INPUT_SCALE, TrainConfig, TrainSetupError
from fmnist_batch.training.data import Dataset

if TYPE_CHECKING:
    from fmnist_batch.training.labelled_photos import LabelledPhotos


def stratified_split(labels: np.ndarray, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): val holds val_size images with every class in its dataset proportion."""
    rng = np.random.default_rng(seed)
    val_parts = []
    for cls in range(NUM_CLASSES):
        idx = np.flatnonzero(labels == cls)
        take = round(val_size * len(idx) / len(labels))
        val_parts.append(rng.choice(idx, size=take, replace=False))
    val = np.sort(np.concatenate(val_parts))
    train = np.setdiff1d(np.arange(len(labels)), val)
    return rng.permutation(train), val


def subset(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """A stratified random subset of `limit` indices, for quick runs."""
    _, idx = stratified_split(labels, min(limit, len(labels)), seed)
    return idx


def to_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) scaled as the model card says."""
    return (images.astype(np.float32) * INPUT_SCALE + INPUT_OFFSET)[..., None]


@dataclass
class Splits:
    """The dataset's training images split into what the model fits and what chooses (validation)."""

    x_train: np.ndarray  # float32 (N, 28, 28, 1)
    y_train: np.ndarray  # int32
    x_val: np.ndarray
    y_val: np.ndarray
    val_images: np.ndarray  # uint8 (N, 28, 28): validation as the runtime takes it


def split_indices(labels: np.ndarray, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Which of the training split's images (their `labels`) a model fits and which validate it."""
    val_size = min(config.val_size, max(NUM_CLASSES * 10, len(labels) // 12))
    return stratified_split(labels, val_size, config.seed)


def split_dataset(dataset: Dataset, config: TrainConfig) -> Splits:
    """The (optionally --limit'ed) training split, divided into train and a stratified validation part."""
    images, labels = dataset.train.images, dataset.train.labels
    if config.limit:
        keep = subset(labels, config.limit, config.seed)
        images, labels = images[keep], labels[keep]
    train_idx, val_idx = split_indices(labels, config)
    return Splits(
        x_train=to_model_input(images[train_idx]),
        y_train=labels[train_idx].astype(np.int32),
        x_val=to_model_input(images[val_idx]),
        y_val=labels[val_idx].astype(np.int32),
        val_images=images[val_idx],
    )


def extra_repeat(fmnist_images: int, photos: int, share: float) -> int:
    """How often the real photos are repeated so that they are about `share` of an epoch (at least once)."""
    return max(1, round(share * fmnist_images / ((1 - share) * max(photos, 1))))


@dataclass
class PhotoMix:
    """Real photos mixed into the training split (never into validation or test), and the ones held out
    to measure accuracy on real photos."""

    x_fit: np.ndarray  # the dataset's training images, then the training photos `repeat` times
    y_fit: np.ndarray  # float32 multi-hot accepted classes (one-hot for the dataset's images)
    y_val: np.ndarray  # the dataset's validation labels, one-hot, for the same loss
    x_photo_val: np.ndarray
    accepted_photo_val: np.ndarray  # bool (N, NUM_CLASSES)
    folder_photo_val: np.ndarray  # index into folder_names
    folder_names: list[str]
    record: ExtraData  # what the card's training record keeps of them


def load_extra_photos(config: TrainConfig, log: Callable[[str], None]) -> LabelledPhotos:
    """The --extra-data photos, converted as classify converts."""
    from fmnist_batch.training.labelled_photos import load_labelled_photos

    photos = load_labelled_photos(
        config.extra_data, config.extra_mapping, workers=config.workers, cache=config.extra_cache, log=log
    )
    if not len(photos.files):
        raise TrainSetupError(f"--extra-data {config.extra_data}: no photo in a folder with a class to learn")
    return photos


def mix_in_photos(photos: LabelledPhotos, splits: Splits, config: TrainConfig) -> PhotoMix:
    """The dataset's training split with `photos` mixed in, minus a held-out part of them."""
    from fmnist_batch.training.labelled_photos import split_by_folder

    photo_train, photo_val = split_by_folder(photos.folder_index, config.extra_val_fraction, config.seed)
    repeat = extra_repeat(len(splits.x_train), len(photo_train), config.extra_share)
    one_hot = np.eye(NUM_CLASSES, dtype=np.float32)
    x_photos = to_model_input(photos.images[photo_train])
    accepted = photos.accepted
    return PhotoMix(
        x_fit=np.concatenate([splits.x_train, *[x_photos] * repeat]),
        y_fit=np.concatenate([one_hot[splits.y_train], *[accepted[photo_train].astype(np.float32)] * repeat]),
        y_val=one_hot[splits.y_val],
        x_photo_val=to_model_input(photos.images[photo_val]),
        accepted_photo_val=accepted[photo_val],
        folder_photo_val=photos.folder_index[photo_val],
        folder_names=photos.folder_names,
        record=_photo_record(photos, photo_train, photo_val, repeat, len(splits.x_train), config),
    )


def _photo_record(
    photos: LabelledPhotos,
    photo_train: np.ndarray,
    photo_val: np.ndarray,
    repeat: int,
    fmnist_images: int,
    config: TrainConfig,
) -> ExtraData:
    """What the card records about the photos: where, which, how they were split and weighted."""
    counts = photos.folder_counts()
    for row, name in enumerate(photos.folder_names):
        counts[name]["train"] = int(np.sum(photos.folder_index[photo_train] == row))
        counts[name]["validation"] = int(np.sum(photos.folder_index[photo_val] == row))
    mixed = repeat * len(photo_train)
    return ExtraData(
        folder=str(photos.root),
        mapping=photos.mapping,
        files_sha256=photos.files_sha256,
        files_sha256_of="the lines '<sha256 of the file>  <path under folder>', sorted by path, of "
        "every photo in the used folders",
        conversion=photos.settings.record(),
        folders=counts,
        skipped_folders=photos.skipped,
        train_photos=len(photo_train),
        validation_photos=len(photo_val),
        validation_fraction=config.extra_val_fraction,
        repeat=repeat,
        share_of_epoch=round(mixed / (fmnist_images + mixed), 4),
        loss="partial-label: -log(sum of the softmax over the accepted classes)",
    )


def make_datasets(x_train, y_train, x_val, y_val, config: TrainConfig):
    """tf.data pipelines: training shuffled (seeded), batched and augmented; validation batched."""
    import tensorflow as tf

    from fmnist_batch.training.augment import make_augment

    train = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=config.seed, reshuffle_each_iteration=True)
        .batch(config.batch_size)
    )
    if config.augment != "none":
        train = train.map(make_augment(config), num_parallel_calls=tf.data.AUTOTUNE)
    train = train.prefetch(tf.data.AUTOTUNE)
    val = tf.data.Dataset.from_tensor_slices((x_val, y_val)).batch(512)
    return train, val
