"""The streaming classify loop: decode and convert in worker processes, predict in batches, yield rows.

Memory stays flat: files are discovered lazily, at most `prefetch` batches are in flight, and rows are
yielded as soon as their batch is predicted, in input order.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from fmnist_batch.convert import ImageError, PreprocessSettings, convert_path, save_preview
from fmnist_batch.discover import InputFile
from fmnist_batch.labels import CLASS_NAMES, IMAGE_SIZE
from fmnist_batch.model.runtime import Model, load_model
from fmnist_batch.outputs.writer import row_fields

#: Below this many files a run converts in-process: starting workers costs more than it saves.
INLINE_THRESHOLD = 32


@dataclass
class ClassifyOptions:
    model: str | os.PathLike | None = None
    backend: str = "auto"
    #: segmented photos go to the photo model the card names (False: to the main model too)
    photo_model: bool = True
    #: LiteRT's file: "auto" (the card's choice), "float" or "int8"
    precision: str = "auto"
    batch_size: int = 256
    workers: int | None = None
    top_k: int = 3
    min_confidence: float = 0.0
    preprocess: PreprocessSettings = field(default_factory=PreprocessSettings)
    save_preprocessed: str | os.PathLike | None = None
    #: batches converted ahead of the one being predicted; keeps every worker busy
    prefetch: int = 2
    #: seconds one file may take to convert before it becomes an error row (a hostile file must not hang)
    file_timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if not 1 <= self.top_k <= len(CLASS_NAMES):
            raise ValueError(f"top_k must be between 1 and {len(CLASS_NAMES)}")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError("min_confidence must be between 0 and 1")


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lazy fixed-size batches of an iterable (the last one may be shorter)."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def preview_path(folder: str | os.PathLike, display: str) -> Path:
    """Where --save-preprocessed puts the 28x28 image of `display`: its path mirrored under `folder`."""
    parts = [p for p in Path(display).parts if p not in ("/", "..", ".") and not p.endswith(":\\")]
    return Path(folder, *parts).with_name(Path(display).name + ".png")


# Worker state, set once per process by the pool initializer rather than pickled with every task.
_settings = PreprocessSettings()
_preview_dir: str | None = None
_timeout: float | None = None


class FileTimeout(Exception):
    pass


def _on_alarm(signum: int, frame: object) -> None:
    raise FileTimeout


def _configure(settings: PreprocessSettings, preview_dir: str | None, timeout: float | None) -> None:
    global _settings, _preview_dir, _timeout
    _settings, _preview_dir, _timeout = settings, preview_dir, timeout


# glibc's mallopt parameters
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> None:
    """Let this process's malloc keep and reuse the few MB that each photo's buffers take.

    By default glibc returns large freed buffers to the kernel at once and takes fresh zeroed pages for
    the next photo's: on the benchmark's 0.7 MB PNGs that page faulting cost 4 ms of system time a photo,
    a third of decoding. Fixed thresholds (buffers under 16 MB from the heap, up to 64 MB of free heap
    kept) stop it; the peak memory of a worker is the same. A no-op outside glibc.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, 16 * 2**20)
    mallopt(_M_TRIM_THRESHOLD, 64 * 2**20)


def _init_worker(settings: PreprocessSettings, preview_dir: str | None, timeout: float | None) -> None:
    _configure(settings, preview_dir, timeout)
    keep_freed_memory()
    signal.signal(signal.SIGALRM, _on_alarm)
    # Ctrl-C is handled once, by the parent, which then stops the pool with SIGTERM: a worker must die
    # quietly on it, not run the handler it inherited from the CLI.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class Converted(NamedTuple):
    """One file's conversion: the 784 bytes of its 28x28 image, or None and why not."""

    data: bytes | None
    error: str | None
    #: the garment was cut out of a non-catalog background (a card may route those to its photo model)
    segmented: bool = False


def convert(item: tuple[str, str]) -> Converted:
    """(path, display) -> Converted(784 bytes, None, segmented) or Converted(None, message). Never raises."""
    path, display = item
    # The alarm is armed only in worker processes (their initializer installs the handler); Pillow's
    # decoders return to Python between chunks, where the handler can stop a file that takes too long.
    armed = _timeout is not None and signal.getsignal(signal.SIGALRM) is _on_alarm
    try:
        if armed:
            signal.setitimer(signal.ITIMER_REAL, _timeout)
        try:
            conversion = convert_path(path, _settings)
        finally:
            if armed:
                signal.setitimer(signal.ITIMER_REAL, 0)
        if _preview_dir is not None:
            target = preview_path(_preview_dir, display)
            target.parent.mkdir(parents=True, exist_ok=True)
            save_preview(conversion.image, target)
        return Converted(conversion.image.tobytes(), None, conversion.segmented)
    except FileTimeout:
        return Converted(None, f"took longer than {_timeout:g} s to decode; skipped")
    except Exception as e:  # a bug or an exotic file must cost one row, not the run
        return Converted(None, conversion_error(e))


def conversion_error(error: Exception) -> str:
    """The one-line reason a photo could not be converted, as its row (or web result) reports it."""
    if isinstance(error, ImageError):
        return str(error)
    if isinstance(error, MemoryError):
        return "out of memory while decoding the image"
    return f"unexpected error: {type(error).__name__}: {error}"


def convert_files(
    paths: Sequence[str],
    settings: PreprocessSettings | None = None,
    workers: int | None = None,
    file_timeout: float = 60.0,
) -> list[Converted]:
    """Convert photos exactly as classify does (same workers, time limit and error handling), without a
    model: one Converted per path, in order."""
    settings = settings or PreprocessSettings()
    items = [(path, path) for path in paths]
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(items) < INLINE_THRESHOLD:
        _configure(settings, None, file_timeout)
        return _convert_inline(items).get()
    with conversion_pool(workers, settings, None, file_timeout) as pool:
        return pool.map(convert, items, chunksize=max(1, min(16, len(items) // (workers * 4))))


def conversion_pool(
    workers: int, settings: PreprocessSettings, preview_dir: str | None, timeout: float | None
) -> multiprocessing.pool.Pool:
    """Worker processes that run `convert` with these settings (classify's and convert_files')."""
    Image.init()  # load Pillow's format plugins once, here, rather than in every worker
    # fork: workers start in milliseconds and inherit the imported modules
    context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    return context.Pool(workers, initializer=_init_worker, initargs=(settings, preview_dir, timeout))


def make_row(
    display: str, probabilities: np.ndarray | None, error: str | None, options: ClassifyOptions
) -> dict:
    """One output row; `probabilities` is None for a file that could not be converted."""
    row: dict[str, Any] = dict.fromkeys(row_fields(options.top_k))
    row["path"] = display
    if probabilities is None:
        row["status"], row["error"] = "error", error
        return row
    order = np.argsort(-probabilities, kind="stable")[: options.top_k]
    confidence = float(probabilities[order[0]])
    row["label"], row["confidence"] = CLASS_NAMES[order[0]], confidence
    for rank, index in enumerate(order, start=1):
        row[f"top{rank}_label"] = CLASS_NAMES[index]
        row[f"top{rank}_prob"] = float(probabilities[index])
    row["status"] = "ok" if confidence >= options.min_confidence else "uncertain"
    row["error"] = ""
    return row


class Classifier:
    """Runs the classify job; use as a context manager so worker processes are always cleaned up."""

    def __init__(self, options: ClassifyOptions | None = None, model: Model | None = None):
        self.options = options or ClassifyOptions()
        self._pool: multiprocessing.pool.Pool | None = None
        self._model = model

    @property
    def model(self) -> Model:
        if self._model is None:
            self._model = load_model(
                self.options.model,
                self.options.backend,
                num_threads=1,
                use_photo_model=self.options.photo_model,
                precision=self.options.precision,
            )
        return self._model

    def __enter__(self) -> Classifier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close(terminate=exc_info[0] is not None)

    def close(self, terminate: bool = False) -> None:
        if self._pool is not None:
            if terminate:
                self._pool.terminate()
            else:
                self._pool.close()
            self._pool.join()
            self._pool = None

    def _workers(self) -> int:
        return self.options.workers or os.cpu_count() or 1

    def _start_pool(self) -> multiprocessing.pool.Pool:
        if self._pool is None:
            self._pool = conversion_pool(
                self._workers(), self.options.preprocess, self._preview_dir(), self.options.file_timeout
            )
        return self._pool

    def run(self, files: Iterable[InputFile], on_batch: Callable[[], None] | None = None) -> Iterator[dict]:
        """Yield one row per file, in input order. `on_batch` is called after each batch's rows."""
        batches = chunks(files, self.options.batch_size)
        first = next(batches, None)
        if first is None:
            return
        self.model  # load before converting, so a bad model fails before any work  # noqa: B018
        if self._workers() == 1 or len(first) < min(INLINE_THRESHOLD, self.options.batch_size):
            _configure(self.options.preprocess, self._preview_dir(), self.options.file_timeout)
            submit, ahead = _convert_inline, 0
        else:
            pool = self._start_pool()
            # Small tasks, so that at the end of the run no worker waits long for the other's last one
            # (a task of 16 catalog PNGs is ~0.15 s); the hand-off costs microseconds per task.
            chunksize = max(1, self.options.batch_size // (self._workers() * 8))

            def submit(items: list[tuple[str, str]]) -> Any:
                return pool.map_async(convert, items, chunksize=chunksize)

            ahead = self.options.prefetch
        pending: deque = deque()
        for batch in _prepend(first, batches):
            pending.append((batch, submit([(f.path, f.display) for f in batch])))
            while len(pending) > ahead:
                done, converted = pending.popleft()
                yield from self._predict(done, converted.get())
                if on_batch:
                    on_batch()
        while pending:
            done, converted = pending.popleft()
            yield from self._predict(done, converted.get())
            if on_batch:
                on_batch()

    def _preview_dir(self) -> str | None:
        return str(self.options.save_preprocessed) if self.options.save_preprocessed else None

    def _predict(self, batch: list[InputFile], converted: list[Converted]) -> Iterator[dict]:
        good = [i for i, c in enumerate(converted) if c.data is not None]
        probabilities = np.empty((0, len(CLASS_NAMES)), np.float32)
        if good:
            images = np.frombuffer(b"".join(converted[i].data for i in good), dtype=np.uint8)
            segmented = np.array([converted[i].segmented for i in good])
            probabilities = self.model.predict_proba(images.reshape(-1, IMAGE_SIZE, IMAGE_SIZE), segmented)
        position = {index: k for k, index in enumerate(good)}
        for i, (file, conversion) in enumerate(zip(batch, converted, strict=True)):
            probs = probabilities[position[i]] if i in position else None
            yield make_row(file.display, probs, conversion.error, self.options)


def _prepend(first: list, rest: Iterator[list]) -> Iterator[list]:
    yield first
    yield from rest


class _Converted:
    """The in-process counterpart of a pool's AsyncResult."""

    def __init__(self, value: list[Converted]):
        self._value = value

    def get(self) -> list[Converted]:
        return self._value


def _convert_inline(items: list[tuple[str, str]]) -> _Converted:
    # The per-file time limit needs SIGALRM, which only the main thread can handle.
    if threading.current_thread() is not threading.main_thread():
        return _Converted([convert(item) for item in items])
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        return _Converted([convert(item) for item in items])
    finally:
        signal.signal(signal.SIGALRM, previous)
