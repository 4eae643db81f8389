"""The scope judge: does a photo show one of the 10 classes at all?

A real shop's catalog is about half products that are none of them (watches, jewellery, perfume, belts,
socks, ...), and the 28x28 models' confidence cannot tell those apart: it has no colour and no texture.
The judge (models/scope, built by scripts/build_scope_model.py) reads the whole photo in colour, squared
on white (convert/scope.py makes the picture at the side its card declares), with an ImageNet backbone
whose features and ImageNet answer feed a head fitted on licensed photos; its one output is `in_scope`,
the calibrated probability that the photo shows one of the 10 classes. Below the card's operating point
(or --other-threshold) a row is answered "other" (outputs/rows.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fmnist_batch.model import litert


class ScopeJudge:
    """A loaded judge: `read(uint8 (N, S, S, 3)) -> float32 (N,)` in_scope probabilities."""

    def __init__(self, path: Path, num_threads: int | None = None):
        self._interpreter = litert.allocated_interpreter(path, num_threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self.side = int(self._interpreter.get_input_details()[0]["shape"][1])

    def read(self, pictures: np.ndarray) -> np.ndarray:
        pictures = np.asarray(pictures)
        if pictures.ndim != 4 or pictures.shape[1:] != (self.side, self.side, 3):
            expected = f"(N, {self.side}, {self.side}, 3)"
            raise ValueError(f"expected pictures of shape {expected}, got {pictures.shape}")
        out = np.empty(len(pictures), np.float32)
        # one picture at a time, as the garment reader: a batch's activations grow with it, and per
        # picture it is no slower here
        for i, picture in enumerate(pictures):
            self._interpreter.set_tensor(self._input, picture[None].astype(np.float32))
            self._interpreter.invoke()
            out[i] = float(np.asarray(self._interpreter.get_tensor(self._output)).reshape(-1)[0])
        return out
