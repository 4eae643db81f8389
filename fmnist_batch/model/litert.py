"""LiteRT interpreters made quietly: the classifier's runtime and the person detectors both load theirs here.

LiteRT's C++ code announces its XNNPACK delegate ("Created TensorFlow Lite XNNPACK delegate") straight
on file descriptor 2, where Python cannot catch it; a quiet run from cron must not mail that.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


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
