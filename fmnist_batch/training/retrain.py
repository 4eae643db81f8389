"""Retrain: prepare the data, fit the CNN, choose on validation, export the files and their card.

Each step has its module (prepare, fit, choose, measure, export); TensorFlow and Keras are imported inside
their functions, so importing this module stays cheap and a missing ``[train]`` extra is reported by the
CLI, not as an ImportError at start-up.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from fmnist_batch.training.choose import choose_on_validation
from fmnist_batch.training.config import TrainConfig, check_config
from fmnist_batch.training.data import Dataset
from fmnist_batch.training.export import Trained, export
from fmnist_batch.training.fit import fit, keep_source_history, start_model
from fmnist_batch.training.measure import photo_metrics
from fmnist_batch.training.prepare import PhotoMix, load_extra_photos, mix_in_photos, split_dataset


def train(
    dataset: Dataset,
    out_dir: str | os.PathLike,
    config: TrainConfig,
    log: Callable[[str], None] = print,
) -> dict:
    """Train, evaluate once on the test set, calibrate on validation, export; returns the model card."""
    check_config(config)
    # Real photos first: a wrong folder fails before any work, and the conversion's worker processes
    # fork before TensorFlow starts its threads.
    photos = load_extra_photos(config, log) if config.extra_data else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    splits = split_dataset(dataset, config)
    log(
        f"training on {len(splits.x_train)} images, validating on {len(splits.x_val)} "
        f"(stratified, seed {config.seed})"
    )
    model, source = start_model(config, log)
    mix = mix_in_photos(photos, splits, config) if photos is not None else None
    if mix is not None:
        _log_mix(mix, log)
    if config.epochs:
        fitted = fit(model, splits, mix, config, out, log)
    else:  # --epochs 0: the --init-from model as it is, evaluated and exported with today's settings
        fitted = keep_source_history(Path(str(config.init_from)), out)
    # Everything chosen (weights, flip averaging, temperature) is chosen on validation; the test set is
    # read once, in export.
    choice = choose_on_validation(model, config.flip_average, splits.x_val, splits.y_val, log)
    photos_measured = photo_metrics(model, mix, choice.flip)
    if photos_measured.real_photo_validation_accuracy is not None:
        log(
            f"real-photo validation accuracy {photos_measured.real_photo_validation_accuracy:.4f} "
            f"({photos_measured.real_photo_validation_size} photos)"
        )
    trained = Trained(model, config, splits, fitted, choice, source, mix, photos_measured)
    return export(trained, dataset, out, log).to_dict()


def _log_mix(mix: PhotoMix, log: Callable[[str], None]) -> None:
    record = mix.record
    log(
        f"mixing in {record.train_photos} real photos x {record.repeat} "
        f"({record.share_of_epoch:.0%} of each epoch); {record.validation_photos} held out to "
        "validate on real photos"
    )
