"""The local engine: convert in worker processes on this machine, predict in batches here, yield rows.

Memory stays flat: files are taken lazily, at most `prefetch` batches are in flight, and rows are
yielded as soon as their batch is predicted, in input order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, islice
from typing import TYPE_CHECKING, Any

from fmnist_batch.convert import ConversionSettings
from fmnist_batch.cpus import usable_cpus
from fmnist_batch.discover import InputFile
from fmnist_batch.engines.predict import predicted_rows
from fmnist_batch.engines.workers import ConversionPool, DoneConversion, WorkerSettings, convert_here
from fmnist_batch.model.runtime import Model

if TYPE_CHECKING:
    from fmnist_batch.options import ClassifyOptions

#: Below this many files a run converts in-process: starting workers costs more than it saves.
INLINE_THRESHOLD = 32


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lazy fixed-size batches of an iterable (the last one may be shorter)."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


class LocalEngine:
    """Rows for files, converted by a pool of `options.workers` processes (or in this process for a few
    files); use as a context manager so the workers are always stopped."""

    def __init__(self, options: ClassifyOptions, model: Model, settings: ConversionSettings):
        self.options, self.model = options, model
        preview = str(options.save_preprocessed) if options.save_preprocessed else None
        self.settings = WorkerSettings(settings, preview, options.timeout)
        self._pool: ConversionPool | None = None

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close(terminate=exc_info[0] is not None)

    def close(self, terminate: bool = False) -> None:
        if self._pool is not None:
            self._pool.close(terminate)
            self._pool = None

    def run(self, files: Iterable[InputFile], on_batch: Callable[[], None] | None = None) -> Iterator[dict]:
        """Yield one row per file, in input order; `on_batch` is called after each batch's rows."""
        batches = chunks(files, self.options.batch_size)
        first = next(batches, None)
        if first is None:
            return
        workers = self.options.worker_count
        if workers == 1 or len(first) < min(INLINE_THRESHOLD, self.options.batch_size):
            submit, ahead = self._convert_here, 0
        else:
            if self._pool is None:
                # Small tasks, so that at the end of the run no worker waits long for the other's last
                # one (a task of 16 catalog PNGs is ~0.15 s); the hand-off costs microseconds per task.
                chunksize = max(1, self.options.batch_size // (workers * 8))
                self._pool = ConversionPool(workers, self.settings, chunksize)
            submit, ahead = self._pool.submit, self.options.prefetch
        pending: deque = deque()
        for batch in chain([first], batches):
            pending.append((batch, submit([(f.path, f.display) for f in batch])))
            while len(pending) > ahead:
                yield from self._predict(*pending.popleft(), on_batch)
        while pending:
            yield from self._predict(*pending.popleft(), on_batch)

    def _convert_here(self, items: list[tuple[str, str]]) -> DoneConversion:
        return DoneConversion(convert_here(items, self.settings))

    def _predict(
        self, batch: list[InputFile], pending: Any, on_batch: Callable[[], None] | None
    ) -> Iterator[dict]:
        displays = [f.display for f in batch]
        yield from predicted_rows(self.model, self.options, displays, pending.get())
        if on_batch:
            on_batch()


def convert_files(
    paths: list[str],
    settings: ConversionSettings | None = None,
    workers: int | None = None,
    timeout: float = 60.0,
) -> list:
    """Convert photos exactly as classify does (same workers, time limit and error handling), without a
    model: one Converted per path, in order."""
    settings = WorkerSettings(settings or ConversionSettings(), None, timeout)
    items = [(path, path) for path in paths]
    workers = workers or usable_cpus()
    if workers == 1 or len(items) < INLINE_THRESHOLD:
        return convert_here(items, settings)
    pool = ConversionPool(workers, settings, chunksize=max(1, min(16, len(items) // (workers * 4))))
    try:
        return pool.map(items)
    finally:
        pool.close()
