"""fmnist-batch: classify folders of product photos into the 10 Fashion-MNIST classes.

>>> import fmnist_batch
>>> rows = fmnist_batch.classify("photos/")            # an iterator of dicts, one per file
>>> frame = fmnist_batch.classify_dataframe("photos/")  # the same as a pandas DataFrame
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__", "classify", "classify_dataframe", "load_model"]


def __getattr__(name: str):
    # Lazy, so `fmnist-batch --version` and the CLI's start-up do not pay for numpy and Pillow.
    if name in ("classify", "classify_dataframe"):
        from fmnist_batch import api

        return getattr(api, name)
    if name == "load_model":
        from fmnist_batch.model.runtime import load_model

        return load_model
    raise AttributeError(f"module 'fmnist_batch' has no attribute {name!r}")
