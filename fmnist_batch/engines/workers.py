"""Converting photos in worker processes: one file's conversion as a row-ready result, the per-file time
limit, and a pool that survives its workers being killed.

A worker can die in ways Python cannot catch: the OOM killer, a C decoder crashing on a hostile file, an
operator's `kill`. multiprocessing.Pool then waits forever for the lost task, so the pool here is built
on concurrent.futures, which notices a dead worker at once (BrokenProcessPool): the files of the lost
tasks are converted again one at a time in a fresh pool, and a file that kills its worker again, or
never answers, gets an error row. The run goes on.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from fmnist_batch.convert import ConversionSettings, encode_preview
from fmnist_batch.convert.source import Converted, convert_source
from fmnist_batch.files import write_beneath
from fmnist_batch.labels import IMAGE_SIZE

#: how long past its files' time limits a task may take before its worker is taken for hung
GRACE_SECONDS = 10.0
#: a worker that died (killed, or crashed in native code) - the row of the file it was converting
WORKER_DIED = "the conversion worker died while converting this file (killed, or crashed in a decoder)"


@dataclass(frozen=True)
class WorkerSettings:
    """What every conversion in a process shares; set once per worker, not pickled with every task."""

    settings: ConversionSettings = field(default_factory=ConversionSettings)
    preview_dir: str | None = None
    timeout: float | None = None


_worker = WorkerSettings()


def configure(settings: WorkerSettings) -> None:
    global _worker
    _worker = settings


def preview_path(folder: str | os.PathLike, display: str) -> Path:
    """Where --save-preprocessed puts the 28x28 image of `display`: its path mirrored under `folder`."""
    return Path(folder, *preview_parts(display))


def preview_parts(display: str) -> list[str]:
    """The path of `display`'s preview inside the preview folder, as folder names then the file's."""
    parts = [p for p in Path(display).parts if p not in ("/", "..", ".") and not p.endswith(":\\")]
    return [*parts[:-1], Path(display).name + ".png"]


def save_preview_of(image: bytes, display: str) -> str | None:
    """Save what the model saw of `display` under the preview folder; the reason its row gives if that
    failed (a full disk, a symlink planted in the preview folder: never followed), else None."""
    parts = preview_parts(display)
    try:
        pixels = np.frombuffer(image, np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE)
        write_beneath(_worker.preview_dir, parts, encode_preview(pixels))
    except OSError as e:
        return f"cannot save its preview {os.path.join(_worker.preview_dir, *parts)!r}: {e.strerror}"
    return None


def convert(item: tuple[str, str]) -> Converted:
    """(path, display) -> its Converted (convert_source, with this worker's settings and time limit),
    its preview written if asked. Never raises."""
    path, display = item
    converted = convert_source(path, _worker.settings, _worker.timeout)
    if _worker.preview_dir is not None and converted.data is not None:
        error = save_preview_of(converted.data, display)
        if error is not None:
            return Converted.failed(error)
    return converted


def convert_chunk(items: Sequence[tuple[str, str]]) -> list[Converted]:
    return [convert(item) for item in items]


def convert_here(items: Sequence[tuple[str, str]], settings: WorkerSettings) -> list[Converted]:
    """Convert in this process, as a worker would (same settings and time limit)."""
    configure(settings)
    return convert_chunk(items)


# glibc's mallopt parameters
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
# prctl(PR_SET_PDEATHSIG): a signal for this process when its parent dies
_PR_SET_PDEATHSIG = 1


def keep_freed_memory() -> None:
    """Let this process's malloc keep and reuse the few MB that each photo's buffers take.

    By default glibc returns large freed buffers to the kernel at once and takes fresh zeroed pages for
    the next photo's: on the benchmark's 0.7 MB PNGs that page faulting cost 4 ms of system time a photo,
    a third of decoding. Fixed thresholds (buffers under 16 MB from the heap, up to 64 MB of free heap
    kept) stop it; the peak memory of a worker is the same. A no-op outside glibc.
    """
    libc = _libc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, 16 * 2**20)
        libc.mallopt(_M_TRIM_THRESHOLD, 64 * 2**20)


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def _init_worker(settings: WorkerSettings) -> None:
    configure(settings)
    keep_freed_memory()
    libc = _libc()
    if libc is not None:
        # A worker whose run was killed exits at once and quietly, instead of finishing its task and
        # printing a BrokenPipeError traceback into the cron mail.
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    # Ctrl-C is handled once, by the parent, which then stops the pool: a worker must die quietly on it,
    # not run the handler it inherited from the CLI.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class ConversionPool:
    """Worker processes that run `convert`; `submit(items).get()` gives one Converted per item, in order,
    whatever happens to the workers."""

    def __init__(self, workers: int, settings: WorkerSettings, chunksize: int = 16):
        self.workers, self.settings, self.chunksize = workers, settings, max(1, chunksize)
        Image.init()  # load Pillow's format plugins once, here, rather than in every worker
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        # fork: workers start in milliseconds and inherit the imported modules
        context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
        return ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=_init_worker, initargs=(self.settings,)
        )

    def submit(self, items: Sequence[tuple[str, str]]) -> PendingConversion:
        chunks = [list(items[i : i + self.chunksize]) for i in range(0, len(items), self.chunksize)]
        return PendingConversion(self, [self._submit(chunk) for chunk in chunks])

    def _submit(self, chunk: list[tuple[str, str]]) -> tuple[list, ProcessPoolExecutor, Future]:
        try:
            return chunk, self._executor, self._executor.submit(convert_chunk, chunk)
        except BrokenProcessPool:  # a worker died since the last result was collected
            self._restart(hung=False)
            return chunk, self._executor, self._executor.submit(convert_chunk, chunk)

    def map(self, items: Sequence[tuple[str, str]]) -> list[Converted]:
        return self.submit(items).get()

    def result(
        self, chunk: list[tuple[str, str]], executor: ProcessPoolExecutor, future: Future
    ) -> list[Converted]:
        """A task's results; if its worker died or hung, its files converted again, one by one."""
        try:
            return future.result(timeout=self._deadline(len(chunk)))
        except (BrokenProcessPool, FutureTimeout) as e:
            if executor is self._executor:  # the first of its tasks to fail replaces it
                self._restart(hung=isinstance(e, FutureTimeout))
            return [self._convert_alone(item) for item in chunk]

    def _convert_alone(self, item: tuple[str, str]) -> Converted:
        future = self._executor.submit(convert_chunk, [item])
        try:
            return future.result(timeout=self._deadline(1))[0]
        except BrokenProcessPool:
            self._restart(hung=False)
            return Converted(None, WORKER_DIED)
        except FutureTimeout:
            self._restart(hung=True)
            return Converted(
                None, f"took longer than {self.settings.timeout:g} s to decode; its worker was stopped"
            )

    def _deadline(self, files: int) -> float | None:
        if self.settings.timeout is None:
            return None
        return files * self.settings.timeout + GRACE_SECONDS

    def _restart(self, hung: bool) -> None:
        """A fresh set of workers; the old ones are killed if one hangs (a decoder stuck in native code
        never returns to Python, where the per-file alarm would stop it)."""
        old = self._executor
        if hung:
            for process in list(getattr(old, "_processes", {}).values()):
                with contextlib.suppress(OSError):
                    process.kill()
        # its tasks still queued fail with BrokenProcessPool, and their files are converted again
        old.shutdown(wait=False)
        self._executor = self._new_executor()

    def close(self, terminate: bool = False) -> None:
        if terminate:
            for process in list(getattr(self._executor, "_processes", {}).values()):
                with contextlib.suppress(OSError):
                    process.terminate()
        self._executor.shutdown(wait=True, cancel_futures=terminate)


class PendingConversion:
    """The tasks of one batch, in flight."""

    def __init__(self, pool: ConversionPool, tasks: list[tuple[list, ProcessPoolExecutor, Future]]):
        self._pool, self._tasks = pool, tasks

    def get(self) -> list[Converted]:
        return [converted for task in self._tasks for converted in self._pool.result(*task)]


class DoneConversion:
    """A batch converted in this process (the in-process counterpart of PendingConversion)."""

    def __init__(self, converted: list[Converted]):
        self._converted = converted

    def get(self) -> list[Converted]:
        return self._converted
