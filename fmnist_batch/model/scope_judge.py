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

import numpy as np

from fmnist_batch.model import litert


class ScopeJudge(litert.PictureModel):
    """A loaded judge: `read(uint8 (N, S, S, 3)) -> float32 (N,)` in_scope probabilities."""

    def read(self, pictures: np.ndarray) -> np.ndarray:
        out = np.empty(len(pictures), np.float32)
        for i, answer in enumerate(self.each(pictures)):
            out[i] = float(np.asarray(answer).reshape(-1)[0])
        return out
