"""Training and its evidence: the dataset, retrain, labelled photos, the photo model, figures, metrics.

The names below are what the CLI and scripts use. They are imported on first use: importing this package
must not import TensorFlow or matplotlib (nor numpy's heavier users), so `fmnist-batch --help` stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: public name -> the module that defines it
_EXPORTS = {
    "TrainConfig": "fmnist_batch.training.config",
    "TrainSetupError": "fmnist_batch.training.config",
    "train": "fmnist_batch.training.retrain",
    "load_dataset": "fmnist_batch.training.data",
    "write_eda_figures": "fmnist_batch.training.figures_eda",
    "write_evaluation_figures": "fmnist_batch.training.figures_evaluation",
    "PairingError": "fmnist_batch.training.photo_model",
    "pair_with_photo_model": "fmnist_batch.training.photo_model",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'fmnist_batch.training' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
