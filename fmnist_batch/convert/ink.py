"""How far a photo's colours leave one line: whether it could be one grey image painted in one ink.

A Fashion-MNIST image shown as a product photo is a grey image painted over a background in one ink
(black or a tint): each pixel mixes the background's colour with the ink's, so every pixel's offset
from the background points the same way and only its length varies. A real product's shading, metal,
print and second colours point elsewhere. `ink_spread` is the share of the offsets' energy off their
main direction (as a ratio of root-mean-squares: 0 for one ink exactly); the dataset reference asks it
before it reads a catalog shot as a dataset image (convert/scope.py), so a coloured product is judged
however its 28x28 silhouette reads.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from fmnist_batch.convert.steps import background_colour

#: the photo is box-reduced to about this longest side first: cheap, and averaging blocks of pixels
#: removes most compression noise while keeping one ink on its line (a mix of two points of the line
#: is on it)
REDUCED_SIDE = 64
#: fewer pixels than this away from the background: nothing to measure, spread 0
MIN_PIXELS = 8


def ink_spread(rgb: Image.Image, tolerance: float) -> float:
    """sqrt((energy off the main axis) / (energy along it)) of the offsets from the background colour of
    the pixels that differ from it by more than `tolerance` (a fraction of full intensity, as
    steps.trim_background measures it): 0 for one ink on one background, larger for more colours."""
    factor = max(1, max(rgb.size) // REDUCED_SIDE)
    small = rgb.reduce(factor) if factor > 1 else rgb
    offsets = np.stack(
        [
            np.asarray(band, np.float32).ravel() - level
            for band, level in zip(small.split(), background_colour(small), strict=True)
        ]
    )
    limit = 3 * (tolerance * 255) ** 2  # squared RGB distance of `tolerance` on every channel
    away = offsets[:, np.einsum("ij,ij->j", offsets, offsets) > limit].astype(np.float64)
    if away.shape[1] < MIN_PIXELS:
        return 0.0
    # the scatter about the background, not the mean: one ink's offsets lie on a line through 0; summed
    # by numpy, not a BLAS product, whose threads spin on in a conversion worker
    scatter = np.array([[np.sum(away[i] * away[j]) for j in range(3)] for i in range(3)])
    energy = np.linalg.eigvalsh(scatter)  # ascending
    return float(np.sqrt(max(energy[0] + energy[1], 0.0) / energy[2]))
