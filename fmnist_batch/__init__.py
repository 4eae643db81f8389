"""fmnist-batch: classify folders of product photos into the 10 Fashion-MNIST classes.

>>> import fmnist_batch
>>> clf = fmnist_batch.Classifier()                     # loads the bundled model once
>>> clf("photo.jpg")                                    # a path, PIL image, numpy array or bytes
>>> rows = fmnist_batch.classify("photos/")             # an iterator of dicts, one per file
>>> frame = fmnist_batch.classify_dataframe("photos/")  # the same as a pandas DataFrame
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = [
    "Classifier",
    "ClassifyJob",
    "ClassifyOptions",
    "__version__",
    "classify",
    "classify_dataframe",
    "load_model",
    "register_engine",
]

# Imported lazily, so `fmnist-batch --version` and the CLI's start-up do not pay for numpy and Pillow.
_LAZY = {
    "Classifier": "fmnist_batch.classifier",
    "ClassifyJob": "fmnist_batch.job",
    "ClassifyOptions": "fmnist_batch.options",
    "classify": "fmnist_batch.api",
    "classify_dataframe": "fmnist_batch.api",
    "load_model": "fmnist_batch.model.runtime",
    "register_engine": "fmnist_batch.engines",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'fmnist_batch' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LAZY[name]), name)
