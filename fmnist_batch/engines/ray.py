"""``classify --engine ray``: the classify job on a Ray cluster, with Ray Data.

This process discovers the files, as the local engine does, and hands them to Ray Data in windows of
WINDOW files (so memory stays flat): conversion runs as parallel tasks (map_batches with a function,
workers.convert on each file), prediction on an actor pool (map_batches with a class; each actor loads
the model once), and the results come back in input order. Rows are made here by rows.make_row, so
they are the local engine's rows, for the same writers and summary.

Every node must see the inputs, the --model and the --save-preprocessed folder at the same paths (shared
storage), and have fmnist-batch installed; the bundled model is each node's own installed copy.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from fmnist_batch.convert import ConversionSettings
from fmnist_batch.discover import InputFile
from fmnist_batch.engines.local import chunks
from fmnist_batch.engines.predict import logits_of, scope_of, stack
from fmnist_batch.engines.workers import WorkerSettings, convert_here, keep_freed_memory
from fmnist_batch.labels import IMAGE_SIZE
from fmnist_batch.model.combine import answer
from fmnist_batch.model.runtime import Model, load_job_model
from fmnist_batch.outputs.rows import make_row

if TYPE_CHECKING:
    import ray.data

    from fmnist_batch.options import ClassifyOptions

#: files per Ray Dataset: bounds the memory the file list and the results in flight take on this machine
WINDOW = 20_000
#: files per conversion task: small enough that a batch keeps every CPU busy, large enough to amortise
CONVERT_BATCH = 32
#: CPUs a prediction actor reserves: none. Prediction is a small share of the work (conversion dominates);
#: an actor holding even a quarter of a CPU keeps a conversion task from starting on that node
#: (docs/cluster.md has the measurement).
PREDICT_CPUS = 0
_PIXELS = IMAGE_SIZE * IMAGE_SIZE
_TEXT = {"encoding": "utf-8", "errors": "surrogateescape"}  # error messages may quote undecodable names


class RayUnavailable(Exception):
    """The Ray cluster cannot be reached; the message says why (the CLI exits 2)."""


class RayEngine:
    """The local engine's rows, made on Ray: connects to `options.ray_address` (None: $RAY_ADDRESS if set,
    else a local Ray started for this run with `options.workers` CPUs, shut down on close)."""

    def __init__(self, options: ClassifyOptions, model: Model, settings: ConversionSettings):
        self.options, self.model, self.settings = options, model, settings
        self.address = options.ray_address
        self.window = WINDOW
        self._connected = False

    def __enter__(self) -> RayEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close(terminate=exc_info[0] is not None)

    def close(self, terminate: bool = False) -> None:
        if self._connected:
            import ray

            ray.shutdown()
            self._connected = False

    def run(self, files: Iterable[InputFile], on_batch: Callable[[], None] | None = None) -> Iterator[dict]:
        """Yield one row per file, in input order, as LocalEngine.run does; `on_batch` after each batch."""
        windows = chunks(files, self.window)
        first = next(windows, None)
        if first is None:
            return
        self._connect()
        yield from self._run_window(first, on_batch)
        for window in windows:
            yield from self._run_window(window, on_batch)

    def _connect(self) -> None:
        import ray
        import ray.data

        _quiet_ray_logging()  # after importing ray.data, which sets up its logger
        if ray.is_initialized():  # a caller's own Ray session: use it, leave it running
            return
        settings = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
        if self.address is None and "RAY_ADDRESS" not in os.environ:
            settings["num_cpus"] = self.options.worker_count
        try:
            ray.init(address=self.address, **settings)
        except ConnectionError as e:  # e.g. --ray-address auto with no cluster running here
            raise RayUnavailable(f"cannot connect to Ray: {e}") from None
        self._connected = True

    def _run_window(self, window: list[InputFile], on_batch: Callable[[], None] | None) -> Iterator[dict]:
        position = 0
        for batch in self._dataset(window).iter_batches(
            batch_size=self.options.batch_size, batch_format="numpy"
        ):
            indices = batch["index"].tolist()
            if indices != list(range(position, position + len(indices))):
                raise RuntimeError("Ray Data returned results out of input order")  # preserve_order is set
            below = self.model.other_below(self.options)
            for i, index in enumerate(indices):
                yield self._row(window[index].display, batch, i, below)
            position += len(indices)
            if on_batch:
                on_batch()
        if position != len(window):
            raise RuntimeError(f"Ray Data returned {position} results for {len(window)} files")

    def _row(self, display: str, batch: dict[str, np.ndarray], i: int, below: float | None) -> dict:
        """The row of the batch's `i`th file, made as the local engine makes it (outputs.rows)."""
        ok = bool(batch["ok"][i])
        return make_row(
            display,
            batch["probabilities"][i] if ok else None,
            None if ok else bytes(batch["error"][i]).decode(**_TEXT),
            top_k=self.options.top_k,
            min_confidence=self.model.min_confidence(self.options),
            view=bytes(batch["view"][i]).decode(),
            region=bytes(batch["region"][i]).decode(),
            scope=scope_of(batch["in_scope"][i], below),
            blank=bool(batch["blank"][i]),
        )

    def _dataset(self, window: list[InputFile]) -> ray.data.Dataset:
        """The window's files -> converted in tasks -> predicted on the actor pool, in input order."""
        import ray.data

        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        options = self.options
        # Workers may run in another folder than this process: they get absolute paths to open.
        preview = os.path.abspath(options.save_preprocessed) if options.save_preprocessed else None
        items = [
            {"index": i, "path": os.fsencode(os.path.abspath(f.path)), "display": os.fsencode(f.display)}
            for i, f in enumerate(window)
        ]
        # An explicit model is loaded from the card this process verified; the bundled one from each
        # node's own installation.
        model = str(self.model.card.path.resolve()) if options.model is not None else None
        # ... and so are the bundled person detectors, scope judges and dataset reference, which each node
        # verifies from its own
        settings = self.settings if model is not None else self._bundled_settings()
        converted = ray.data.from_items(
            items, override_num_blocks=max(1, -(-len(items) // CONVERT_BATCH))
        ).map_batches(
            convert_batch,
            batch_size=CONVERT_BATCH,
            batch_format="numpy",
            fn_kwargs={"settings": WorkerSettings(settings, preview, options.timeout)},
        )
        with warnings.catch_warnings():
            # max_restarts can only go through **ray_remote_args, which Ray deprecates without a replacement
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
            return converted.map_batches(
                Predictor,
                batch_size=options.batch_size,
                batch_format="numpy",
                fn_constructor_kwargs={
                    # the file this process runs, also when --model named a .tflite file outright
                    "options": replace(
                        options, model=model, backend=self.model.backend, precision=self.model.precision
                    )
                },
                compute=ray.data.ActorPoolStrategy(size=self._actors()),
                num_cpus=PREDICT_CPUS,
                # Restartable actors make Ray log an error line about their arguments at every run; a lost
                # actor fails the run instead (rows so far are kept; --resume continues).
                max_restarts=0,
            )

    def _actors(self) -> int:
        """Prediction actors: one per 8 cluster CPUs (one predicts as fast as ~8 CPUs convert)."""
        import ray

        return max(1, int(ray.cluster_resources().get("CPU", 1)) // 8)

    def _bundled_settings(self) -> ConversionSettings:
        """The run's settings with every model file the bundled card names left for each node to find and
        verify in its own installation."""
        files = self.settings.reference_files
        return replace(
            self.settings,
            person_models=None,
            scope_judge=None,
            reference_files=None if files is None else files._replace(card=None, points=None),
        )


def convert_batch(batch: dict[str, np.ndarray], settings: WorkerSettings) -> dict[str, np.ndarray]:
    """A Ray task: convert each file of a batch as a pool worker would -> index, image (N x 784 uint8),
    ok, view, region, colour (a worn garment's colour picture, b"" for others), in_scope (the judge's or
    the dataset reference's, read in this task; NaN: none), logits (the main network's, 10 float32, where the
    dataset reference computed them; b"" for others), error."""
    keep_freed_memory()  # as pool workers do; Ray's workers belong to this job
    # Ray runs plain tasks on its workers' main thread, where the per-file time limit can be armed.
    items = [
        (os.fsdecode(bytes(path)), os.fsdecode(bytes(display)))
        for path, display in zip(batch["path"], batch["display"], strict=True)
    ]
    converted = convert_here(items, settings)
    stacked = stack(converted)
    return {
        "index": batch["index"],
        "image": stacked.images,
        "ok": stacked.ok,
        "view": np.array([v.encode() for v in stacked.views], dtype=object),
        "region": np.array([c.region.encode() for c in converted], dtype=object),
        "colour": np.array([c or b"" for c in stacked.colours], dtype=object),
        "in_scope": np.array([np.nan if v is None else v for v in stacked.in_scope], dtype=np.float32),
        "logits": np.array([c.logits or b"" for c in converted], dtype=object),
        "error": np.array([(c.error or "").encode(**_TEXT) for c in converted], dtype=object),
    }


class Predictor:
    """A Ray actor: loads the model once, then adds `probabilities` (N x 10 float32) to each batch."""

    def __init__(self, options: ClassifyOptions):
        self.model = load_job_model(options)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ok = batch["ok"].astype(bool)
        views = np.array([bytes(v).decode() for v in batch["view"]], dtype=object)
        colours = [bytes(c) or None for c in batch["colour"]]
        judged = [None if np.isnan(v) else float(v) for v in batch["in_scope"]]
        logits = [logits_of(bytes(v)) for v in batch["logits"]]
        answers = answer(self.model, batch["image"], ok, views, colours, judged, logits)
        # every other column (index, error, view, region, ...) passes through for the rows; the pictures
        # stay behind, so only what the rows need travels back, and the answer's in_scope replaces the
        # conversion's (a blank photo's is 0)
        answered_here = ("image", "colour", "in_scope", "logits")
        passed = {name: column for name, column in batch.items() if name not in answered_here}
        answered = {
            "probabilities": answers.probabilities,
            "in_scope": answers.in_scope,
            "blank": answers.blank,
        }
        return passed | answered | {"ok": ok}


def _quiet_ray_logging() -> None:
    # Ray and Ray Data log their start-up and every execution at INFO; a cron run must print only errors.
    for name in ("ray", "ray.data", "ray.train", "ray.tune"):
        logging.getLogger(name).setLevel(logging.ERROR)
