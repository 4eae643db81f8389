"""The library's face: `Classifier` loads a model once and classifies photos in memory or on disk.

>>> from fmnist_batch import Classifier
>>> clf = Classifier()                      # the bundled model; any classify option as a keyword
>>> clf("photo.jpg")["label"]               # a path, a PIL image, a numpy array or the file's bytes
'Sneaker'
>>> [r["label"] for r in clf([img_a, img_b])]
>>> for row in clf.classify_folder("photos/"):          # the CLI's rows, streamed
...     print(row["path"], row["label"])
>>> clf.classify_folder("photos/", output="out.csv", resume=True)   # the CLI's job: a JobResult

A result and a CLI row for the same photo hold the same label and probabilities: both come from the same
conversion and the same rows (outputs.rows.make_row).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from fmnist_batch.convert.source import Converted, convert_source
from fmnist_batch.discover import check_inputs, discover
from fmnist_batch.engines import engine_factory
from fmnist_batch.engines.predict import predicted_rows
from fmnist_batch.job import ClassifyJob, JobResult
from fmnist_batch.labels import IMAGE_EXTENSIONS
from fmnist_batch.model.runtime import Model, load_job_model
from fmnist_batch.options import ClassifyOptions
from fmnist_batch.outputs.rows import row_fields

#: what Classifier(x) takes, one or a list
ImageInput = str | os.PathLike | bytes | np.ndarray | Any  # Any: a PIL.Image.Image


class Classifier:
    """A loaded model and its conversion settings, reused for every call.

    `Classifier(model=None, **options)`: every option of `ClassifyOptions` (top_k, min_confidence,
    background, invert, precision, workers, engine, ...) as a keyword.
    """

    def __init__(self, model: str | os.PathLike | Model | None = None, **options: Any):
        if isinstance(model, Model):
            self.options = ClassifyOptions.from_keywords(**options)
            self.model = model
        else:
            self.options = ClassifyOptions.from_keywords(model=model, **options)
            self.model = load_job_model(self.options)
        self.settings = self.model.conversion_settings(self.options)

    @property
    def columns(self) -> list[str]:
        """The columns of this classifier's rows (in_scope among them when its scope judge runs)."""
        return row_fields(self.options.top_k, self.model.other_below(self.options) is not None)

    def __call__(self, images: ImageInput | Sequence[ImageInput]) -> dict | list[dict]:
        """Classify one photo (-> a result dict) or a list of them (-> a list, in order).

        A result: {"label", "score", "top_k": [{"label", "score"}, ...], "view", "region", "segmented",
        "status", "error", "in_scope"}. A photo that shows none of the 10 classes has label and status
        "other" (its top_k still ranks the 10); `in_scope` is the scope judge's probability that the photo
        shows one of them (absent with other=False). `view` says what the image was made from (catalog,
        segmented, worn), `region` which part of a person a worn garment was read from (upper, full; None
        for other views); a photo that cannot be read gets status "error" and the reason, as in the CLI's
        rows.
        """
        if isinstance(images, list | tuple):
            return self._classify(list(images))
        return self._classify([images])[0]

    def _classify(self, images: list[ImageInput]) -> list[dict]:
        converted = [self._convert(image) for image in images]
        names = [_name_of(image) for image in images]
        rows = predicted_rows(self.model, self.options, names, converted)
        return [_result(row, c) for row, c in zip(rows, converted, strict=True)]

    def _convert(self, image: ImageInput) -> Converted:
        return convert_source(image, self.settings, self.options.timeout)

    def classify_folder(
        self, inputs: str | os.PathLike | Iterable[str | os.PathLike], output: str | None = None, **job: Any
    ) -> Iterator[dict] | JobResult:
        """Classify files, folders and glob patterns as `fmnist-batch classify` does.

        Without `output`: an iterator of rows (dicts), one per file, in input order. With `output` (a file
        name, or "-" for stdout): the whole job (resume, wait, shard, report, format, ...: the keywords of
        `fmnist_batch.job.ClassifyJob`) and its JobResult.
        """
        names = [os.fspath(i) for i in ([inputs] if isinstance(inputs, str | os.PathLike) else inputs)]
        if output is None:
            recursive, extensions = job.pop("recursive", True), job.pop("extensions", IMAGE_EXTENSIONS)
            if job:
                raise TypeError(f"{', '.join(sorted(job))}: only with an output file (output=...)")
            check_inputs(names)
            return self._rows(names, recursive, extensions)
        return ClassifyJob(names, output, self.options, **job).run(self.model)

    def _rows(self, names: list[str], recursive: bool, extensions: Sequence[str]) -> Iterator[dict]:
        files = discover(names, recursive=recursive, extensions=extensions)
        with engine_factory(self.options.engine)(self.options, self.model, self.settings) as engine:
            yield from engine.run(files)


def _name_of(image: ImageInput) -> str:
    return os.fspath(image) if isinstance(image, str | os.PathLike) else f"<{type(image).__name__}>"


def _result(row: dict, conversion: Converted) -> dict:
    """A row as a result: the same label and probabilities, the top-k as a list."""
    ranks = [key[3:-6] for key in row if key.startswith("top") and key.endswith("_label")]
    top_k = [{"label": row[f"top{r}_label"], "score": row[f"top{r}_prob"]} for r in ranks]
    result = {
        "label": row["label"],
        "score": row["confidence"],
        "top_k": top_k if row["status"] != "error" else [],
        "view": conversion.view or None,
        "region": conversion.region or None,
        "segmented": conversion.view == "segmented",
        "status": row["status"],
        "error": row["error"],
    }
    if "in_scope" in row:  # the scope judge runs: the probability the photo shows one of the 10 classes
        result["in_scope"] = row["in_scope"]
    return result
