"""A new model card from typed records (retrain writes one for every model it exports)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fmnist_batch.labels import CLASS_NAMES, IMAGE_SIZE
from fmnist_batch.model.card import CARD_FILE, CARD_FORMAT, CONVERSION_KEYS, ModelCard
from fmnist_batch.model.card_records import FlipRecord, Metrics, TrainingRecord, file_sha256


def build_card(
    folder: str | os.PathLike,
    *,
    files: Mapping[str, str],
    input_scale: float,
    input_offset: float,
    temperature: float,
    flip: FlipRecord,
    flip_below: float | None,
    flip_on: bool,
    conversion: Mapping[str, Any],
    metrics: Metrics,
    training: TrainingRecord,
    versions: Mapping[str, str],
    dataset_source: str | os.PathLike,
    dataset_sha256: Mapping[str, str],
) -> ModelCard:
    """A new card for the model files `files` (kind -> file name) in `folder` (not written yet)."""
    folder = Path(folder)
    unknown = set(conversion) - set(CONVERSION_KEYS)
    if unknown:
        raise ValueError(f"not conversion settings: {', '.join(sorted(unknown))}")
    raw = {
        "format": CARD_FORMAT,
        "class_names": list(CLASS_NAMES),
        "files": {kind: {"name": name, "sha256": file_sha256(folder / name)} for kind, name in files.items()},
        "preprocessing": {
            "image_size": IMAGE_SIZE,
            "input": "float32 (N, 28, 28, 1): uint8 pixel * input_scale + input_offset",
            "input_scale": input_scale,
            "input_offset": input_offset,
            "foreground": "bright garment on black background (Fashion-MNIST polarity)",
            "output": "logits; probabilities = softmax(logits / temperature)",
            "flip_average": flip_on,
            "flip_average_below": flip_below,
            **conversion,
        },
        "temperature": temperature,
        "flip_average": flip.to_dict(),
        "metrics": metrics.to_dict(),
        "training": training.to_dict(),
        "versions": dict(versions),
        "dataset": {"source": os.fspath(dataset_source), "sha256": dict(dataset_sha256)},
    }
    return ModelCard.from_dict(raw, folder / CARD_FILE)
