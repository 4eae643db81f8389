"""The settings of a classify run, with their defaults in one place (the CLI's help reads them from here).

Conversion settings are resolved as timm resolves a model's: an explicit argument wins, then what the
model's card says it was trained for, then the conversion's own default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from fmnist_batch.cpus import usable_cpus
from fmnist_batch.engines import engine_names
from fmnist_batch.labels import CLASS_NAMES, DEFAULT_MAX_PIXELS

#: the conversion settings a caller may set; None means "the model card's, else the default"
CONVERSION_KEYS = ("invert", "background", "max_pixels", "trim_tolerance", "sharpen")


@dataclass(frozen=True)
class ClassifyOptions:
    """Everything that shapes a classify result or how the run goes; every field is a keyword of
    `fmnist_batch.Classifier` and `fmnist_batch.classify` and an option of `fmnist-batch classify`."""

    #: model folder, .tflite/.keras file or card; None: the bundled model
    model: str | os.PathLike | None = None
    #: "auto" (LiteRT if installed, else Keras), "litert" or "keras"
    backend: str = "auto"
    #: LiteRT's file: "auto" (the card's choice), "float" or "int8"
    precision: str = "auto"
    #: the views the card gives its photo model (segmented, worn) go to it (False: to the main model too)
    photo_model: bool = True
    #: worn rows are also read in colour by the card's garment reader (False: by the 28x28 model alone)
    garment_reader: bool = True
    #: images per prediction
    batch_size: int = 256
    #: conversion processes; None: the CPUs this process may use (cpus.usable_cpus)
    workers: int | None = None
    #: labels and probabilities per file
    top_k: int = 3
    #: files below this confidence get status "uncertain"; None: the card's (the confidence below which
    #: its answers were wrong more often than right on labelled real photos), else 0
    min_confidence: float | None = None
    #: photos the card's scope judge finds none of the 10 classes are answered "other" (False: every
    #: photo gets one of the 10, as without a judge)
    other: bool = True
    #: answer "other" below this in_scope probability; None: the card's operating point
    other_threshold: float | None = None
    #: negate photos: "auto" (unless the background is dark), "always" or "never"; None: the card's
    invert: str | None = None
    #: which view each photo takes (convert.BACKGROUND_CHOICES): "auto" (worn when it shows a person, else
    #: segmented unless the border is one plain colour), "products" (auto without the person check),
    #: "plain", "segment" or "person"
    background: str = "auto"
    #: refuse images with more pixels than this
    max_pixels: int = DEFAULT_MAX_PIXELS
    #: trim edges within this fraction of the corner colour; None: the card's
    trim_tolerance: float | None = None
    #: sharpen at 28x28 as the dataset did; None: the card's
    sharpen: bool | None = None
    #: seconds one file may take to convert before it becomes an error row
    timeout: float = 60.0
    #: also write the 28x28 images the model saw under this folder
    save_preprocessed: str | os.PathLike | None = None
    #: "local" (worker processes here) or "ray" (a Ray cluster)
    engine: str = "local"
    #: the Ray cluster for engine="ray" (None: $RAY_ADDRESS, else a local Ray for this run)
    ray_address: str | None = None
    #: batches converted ahead of the one being predicted; keeps every worker busy
    prefetch: int = 2

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if not 1 <= self.top_k <= len(CLASS_NAMES):
            raise ValueError(f"top_k must be between 1 and {len(CLASS_NAMES)}")
        if self.min_confidence is not None and not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError("min_confidence must be between 0 and 1")
        if self.other_threshold is not None and not 0.0 <= self.other_threshold <= 1.0:
            raise ValueError("other_threshold must be between 0 and 1")
        if self.other_threshold is not None and not self.other:
            raise ValueError("other_threshold needs other=True")
        if self.workers is not None and self.workers < 1:
            raise ValueError("workers must be at least 1")
        if not self.timeout > 0:
            raise ValueError("timeout must be positive")
        if self.engine not in engine_names():  # the registry's: register_engine adds to it
            raise ValueError(f"engine must be one of {', '.join(engine_names())}, got {self.engine!r}")
        if self.ray_address is not None and self.engine != "ray":
            raise ValueError("ray_address needs engine='ray'")

    @classmethod
    def from_keywords(cls, **keywords: Any) -> ClassifyOptions:
        """Options from keyword arguments, naming any unknown keyword in the error."""
        unknown = sorted(set(keywords) - {f.name for f in fields(cls)})
        if unknown:
            raise TypeError(f"unknown classify option(s): {', '.join(unknown)}")
        return cls(**keywords)

    @property
    def worker_count(self) -> int:
        return self.workers or usable_cpus()

    def conversion_settings(self, card: Mapping[str, Any] | None = None):  # -> ConversionSettings
        """The conversion settings: each set option, else the card's value, else the default."""
        from fmnist_batch.convert import ConversionSettings

        card = card or {}
        chosen = {}
        for key in CONVERSION_KEYS:
            value = getattr(self, key)
            if value is None:
                value = card.get(key)
            if value is not None:
                chosen[key] = value
        return ConversionSettings(**chosen)


def default(name: str) -> Any:
    """The default of one option (the CLI's help quotes it)."""
    return next(f.default for f in fields(ClassifyOptions) if f.name == name)
