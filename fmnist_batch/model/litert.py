"""LiteRT interpreters made quietly (every model of model/ loads its own here), and the one-picture-at-a-time
runner the colour models share.

LiteRT's C++ code announces its XNNPACK delegate ("Created TensorFlow Lite XNNPACK delegate") straight
on file descriptor 2, where Python cannot catch it; a quiet run from cron must not mail that.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 points at /dev/null inside; Python-level errors still reach the caller."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def interpreter(path: str | os.PathLike, num_threads: int | None = None) -> Any:
    """A LiteRT Interpreter for the .tflite file at `path` (its tensors not yet allocated)."""
    from ai_edge_litert.interpreter import Interpreter

    with native_stderr_silenced():
        return Interpreter(model_path=str(Path(path)), num_threads=num_threads)


def allocated_interpreter(path: str | os.PathLike, num_threads: int | None = None) -> Any:
    """interpreter() with its tensors allocated at the file's own input shape, for models always run on
    one input at a time (the delegate is built here, quietly)."""
    loaded = interpreter(path, num_threads)
    with native_stderr_silenced():
        loaded.allocate_tensors()
    return loaded


class PictureModel:
    """A LiteRT model that reads square colour pictures (N, side, side, 3), one at a time: as fast per
    picture as a batch on a CPU here (the garment reader: 11 ms either way), and a batch's activations
    grow with it (a batch of 64 pictures peaks at 0.5 GB, one at 74 MB)."""

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None):
        self._interpreter = allocated_interpreter(path, num_threads)
        details = self._interpreter.get_input_details()[0]
        self._input, self.side = details["index"], int(details["shape"][1])
        self._output = self._interpreter.get_output_details()[0]["index"]

    def resize(self, side: int) -> None:
        """Read pictures of `side` from now on: the model's layers must not depend on the side (a
        convolutional network with global pooling does not), and the delegate reshapes in well under a
        millisecond without packing the weights again."""
        if side == self.side:
            return
        try:
            self._reshape(side)
        except (RuntimeError, ValueError):
            self._reshape(self.side)  # a side the model cannot read leaves it reading its own
            raise
        self.side = side

    def _reshape(self, side: int) -> None:
        self._interpreter.resize_tensor_input(self._input, [1, side, side, 3])
        with native_stderr_silenced():
            self._interpreter.allocate_tensors()

    def each(self, pictures: np.ndarray) -> Iterator[np.ndarray]:
        """The model's output for each picture, in order (float32 0..255 pixels in)."""
        pictures = np.asarray(pictures)
        if pictures.ndim != 4 or pictures.shape[1:] != (self.side, self.side, 3):
            expected = f"(N, {self.side}, {self.side}, 3)"
            raise ValueError(f"expected pictures of shape {expected}, got {pictures.shape}")
        for picture in pictures:
            self._interpreter.set_tensor(self._input, picture[None].astype(np.float32))
            self._interpreter.invoke()
            yield self._interpreter.get_tensor(self._output)[0]


class PerProcess:
    """Models loaded once per process and key, each on first use, a failure remembered as what `load`
    returned (one attempt per process). Keyed by process id so a forked worker loads its own rather than
    use its parent's: an interpreter is not safe to share across a fork."""

    def __init__(self) -> None:
        self._loaded: dict[tuple[int, Hashable], Any] = {}

    def get(self, key: Hashable, load: Callable[[], Any]) -> Any:
        pid = os.getpid()
        if (pid, key) not in self._loaded:
            if any(owner != pid for owner, _ in self._loaded):
                self._loaded.clear()
            self._loaded[pid, key] = load()
        return self._loaded[pid, key]

    def clear(self) -> None:
        self._loaded.clear()
