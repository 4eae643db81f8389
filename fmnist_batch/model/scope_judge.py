"""The scope judge: does a photo show one of the 10 classes at all?

A real shop's catalog is about half products that are none of them (watches, jewellery, perfume, belts,
socks, ...), and the 28x28 models' confidence cannot tell those apart: it has no colour and no texture.
The judge (models/scope, built by scripts/build_scope_model.py) reads the photo in colour, squared on
white at the side its card declares (a product on a plain background cut to its box: convert/garment.py
judge_picture), with an ImageNet backbone whose ImageNet answer feeds a head fitted on licensed photos;
its one output is `in_scope`, the calibrated probability that the photo shows one of the 10 classes.
The card may give the judge a second look: the same kind of network at a larger side, which reads again
the photos the first finds below its `ask_below` and answers for them (convert/scope.py). Below the
card's operating point (or --other-threshold) a row is answered "other" (outputs/rows.py). A catalog shot
that reads as a dataset image (dataset_reference.py) is not judged at all.

The conversion runs it (convert/scope.py), in whichever process converts the photo: each conversion
worker loads the judge once (`shared_scope_judge`, one thread, from the file the model verified at load)
and hands back in_scope alone, so a pool judges its photos in parallel and the process that predicts
never loads it.
"""

from __future__ import annotations

import os
import threading

import numpy as np

from fmnist_batch.model import litert
from fmnist_batch.model.card_checks import ModelError

#: the judge's output columns: each look is the same network with its own head (models/scope/README.md)
FIRST_LOOK, SECOND_LOOK = 0, 1


class ScopeJudge(litert.PictureModel):
    """A loaded judge: `read(uint8 (N, S, S, 3), look) -> float32 (N,)` in_scope probabilities by one
    look's head. The file's input is the first look's side; a picture of another side (the second
    look's) resizes the input first, and back, which costs about a millisecond against the 9 ms of a
    224 px read, while a second interpreter would hold a second copy of the network's weights in every
    worker (about 35 MB). A lock serialises reads: an interpreter is not safe to invoke from two threads
    at once (the web app converts uploads in a thread pool)."""

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None):
        super().__init__(path, num_threads)
        self.looks = int(self._interpreter.get_output_details()[0]["shape"][-1])
        self._lock = threading.Lock()

    def read(self, pictures: np.ndarray, look: int = FIRST_LOOK) -> np.ndarray:
        pictures = np.asarray(pictures)
        if not 0 <= look < self.looks:
            raise ModelError(f"the scope judge's file has {self.looks} look(s); look {look} was asked for")
        out = np.empty(len(pictures), np.float32)
        with self._lock:
            side = self.side
            if pictures.ndim == 4:
                self.resize(pictures.shape[1])
            try:
                for i, answer in enumerate(self.each(pictures)):
                    out[i] = float(np.asarray(answer).reshape(-1)[look])
            finally:
                self.resize(side)
        return out

    def in_scope(self, picture: np.ndarray, look: int = FIRST_LOOK) -> float:
        """in_scope of one uint8 (S, S, 3) picture by `look`'s head."""
        return float(self.read(np.asarray(picture)[None], look)[0])


#: this process's judges by file; a file that could not be loaded keeps the reason (one attempt each)
_loaded = litert.PerProcess()


def shared_scope_judge(path: str | os.PathLike) -> ScopeJudge:
    """This process's judge from the verified file `path`, loaded on first use on one thread (conversion
    already runs one process per core; litert.PerProcess: a forked worker loads its own). A file LiteRT
    cannot run is a ModelError, here and at every later call."""
    judge = _loaded.get(os.fspath(path), lambda: _load(os.fspath(path)))
    if isinstance(judge, str):
        raise ModelError(judge)
    return judge


def _load(path: str) -> ScopeJudge | str:
    try:
        return ScopeJudge(path, num_threads=1)
    except (OSError, ValueError, RuntimeError, ImportError) as e:
        return f"cannot load the scope judge {path}: {e}"


def forget_scope_judges() -> None:
    """Drop this process's loaded judges (the next photo to judge loads its judge again)."""
    _loaded.clear()
