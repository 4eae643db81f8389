"""What every README figure shares: sizes, one style, saving, and tiling 28x28 images.

matplotlib comes with the ``[train]`` extra and is imported inside the functions, so importing the figure
modules stays cheap for the CLI. Figures are drawn on ``matplotlib.figure.Figure`` objects rather than
through pyplot: no global figure registry, no GUI backend, nothing to close.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from fmnist_batch.labels import IMAGE_SIZE

DPI = 100
#: Size in inches of every figure, by file name; PNGs are these times DPI pixels.
FIGURE_SIZES: dict[str, tuple[float, float]] = {
    "samples.png": (10.0, 9.6),
    "class_counts.png": (12.0, 5.0),
    "mean_std.png": (12.0, 3.4),
    "intensity_histograms.png": (12.0, 6.0),
    "pca.png": (12.0, 8.0),
    "similar_classes.png": (12.0, 9.0),
    "training_curves.png": (12.0, 4.5),
    "confusion_matrix.png": (11.0, 9.0),
    "per_class_scores.png": (12.0, 8.0),
    "confident_mistakes.png": (12.0, 6.5),
}
#: One style for every figure: readable at 100% on a laptop screen.
STYLE: dict[str, Any] = {
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "figure.titlesize": 14,
    "figure.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.axisbelow": True,
    "grid.alpha": 0.3,
    "image.interpolation": "nearest",  # show the 28x28 pixels as they are, not blurred
}
GAP_COLOUR = "#c0c0c0"  # between tiles of image grids: the images' own background is white
TRAIN_COLOUR, TEST_COLOUR = "#4c72b0", "#dd8452"
SCORES = (("precision", "precision", "#4c72b0"), ("recall", "recall", "#dd8452"), ("f1", "F1", "#55a868"))


def matplotlib_module():
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError("figures need matplotlib: pip install 'fmnist-batch[train]'") from e
    return matplotlib


@contextlib.contextmanager
def style() -> Iterator[None]:
    with matplotlib_module().rc_context(STYLE):
        yield


def write_figure(out_dir: Path, name: str, draw: Callable[..., None], *args: Any) -> Path:
    """Draw one figure with `draw(fig, *args)` in the shared style and save it as out_dir/name."""
    from matplotlib.figure import Figure

    path = out_dir / name
    with style():
        fig = Figure(figsize=FIGURE_SIZES[name], layout="constrained")
        draw(fig, *args)
        fig.savefig(path, dpi=DPI)
    return path


def class_colours() -> list:
    return list(matplotlib_module().colormaps["tab10"].colors)


def image_cmap():
    # garment dark on white, like the catalog photo it came from; missing tiles and gaps grey
    return matplotlib_module().colormaps["gray_r"].with_extremes(bad=GAP_COLOUR)


def montage(tiles: list[np.ndarray | None], cols: int, gap: int = 2) -> np.ndarray:
    """Tile 28x28 images row by row into one float image; gaps and None tiles are NaN (drawn grey)."""
    rows = max(1, -(-len(tiles) // cols))
    step = IMAGE_SIZE + gap
    out = np.full((rows * step - gap, cols * step - gap), np.nan)
    for i, tile in enumerate(tiles):
        if tile is not None:
            r, c = divmod(i, cols)
            out[r * step : r * step + IMAGE_SIZE, c * step : c * step + IMAGE_SIZE] = tile
    return out


def show_images(ax, image: np.ndarray) -> None:
    ax.imshow(image, cmap=image_cmap(), vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.spines[:].set_visible(False)


def pick(indices: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(indices, size=min(k, len(indices)), replace=False) if len(indices) else indices
