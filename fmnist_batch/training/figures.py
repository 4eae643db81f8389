"""Figures for the README: exploring the dataset (``eda``) and evaluating a trained model.

matplotlib comes with the ``[train]`` extra and is imported inside the functions, so importing this module
stays cheap for the CLI. Figures are drawn on ``matplotlib.figure.Figure`` objects rather than through
pyplot: no global figure registry, no GUI backend, nothing to close.

Every choice made here from data uses the training split; the test split is only counted (class counts)
or evaluated (the model's figures).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import Callable, Iterator
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from fmnist_batch.labels import CLASS_NAMES, IMAGE_SIZE, NUM_CLASSES
from fmnist_batch.training.data import Dataset
from fmnist_batch.training.metrics import confusion_matrix

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
EDA_FILES = (
    "samples.png",
    "class_counts.png",
    "mean_std.png",
    "intensity_histograms.png",
    "pca.png",
    "similar_classes.png",
)
EVALUATION_FILES = (
    "training_curves.png",
    "confusion_matrix.png",
    "per_class_scores.png",
    "confident_mistakes.png",
)

SAMPLES_PER_CLASS = 10
SIMILAR_PAIRS = 5
EXAMPLES_PER_SIDE = 6
MISTAKE_ROWS, MISTAKE_COLS = 3, 8
HISTOGRAM_BIN_WIDTH = 5  # intensities 1..255 in 51 bins

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


# ---------------------------------------------------------------------------------------------- helpers


def _matplotlib():
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError("figures need matplotlib: pip install 'fmnist-batch[train]'") from e
    return matplotlib


@contextlib.contextmanager
def _style() -> Iterator[None]:
    with _matplotlib().rc_context(STYLE):
        yield


def _write(out_dir: Path, name: str, draw: Callable[..., None], *args: Any) -> Path:
    """Draw one figure with `draw(fig, *args)` in the shared style and save it as out_dir/name."""
    from matplotlib.figure import Figure

    path = out_dir / name
    with _style():
        fig = Figure(figsize=FIGURE_SIZES[name], layout="constrained")
        draw(fig, *args)
        fig.savefig(path, dpi=DPI)
    return path


def _class_colours() -> list:
    return list(_matplotlib().colormaps["tab10"].colors)


def _image_cmap():
    # garment dark on white, like the catalog photo it came from; missing tiles and gaps grey
    return _matplotlib().colormaps["gray_r"].with_extremes(bad=GAP_COLOUR)


def _montage(tiles: list[np.ndarray | None], cols: int, gap: int = 2) -> np.ndarray:
    """Tile 28x28 images row by row into one float image; gaps and None tiles are NaN (drawn grey)."""
    rows = max(1, -(-len(tiles) // cols))
    step = IMAGE_SIZE + gap
    out = np.full((rows * step - gap, cols * step - gap), np.nan)
    for i, tile in enumerate(tiles):
        if tile is not None:
            r, c = divmod(i, cols)
            out[r * step : r * step + IMAGE_SIZE, c * step : c * step + IMAGE_SIZE] = tile
    return out


def _show_images(ax, image: np.ndarray) -> None:
    ax.imshow(image, cmap=_image_cmap(), vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.spines[:].set_visible(False)


def _pick(indices: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(indices, size=min(k, len(indices)), replace=False) if len(indices) else indices


# ---------------------------------------------------------------------------------------------- analysis


def nearest_mean_predictions(images: np.ndarray, labels: np.ndarray, chunk: int = 10_000) -> np.ndarray:
    """Labels a nearest-class-mean classifier fitted on these images gives them (pass the TRAIN split)."""
    present = np.unique(labels)
    means = np.stack([images[labels == c].mean(0, dtype=np.float64).ravel() / 255 for c in present])
    squared_norms = (means**2).sum(1)
    predicted = np.empty(len(labels), dtype=present.dtype)
    # in chunks: the whole training split as floats would take 190 MB
    for start in range(0, len(images), chunk):
        x = images[start : start + chunk].reshape(-1, IMAGE_SIZE * IMAGE_SIZE).astype(np.float32) / 255
        # |x - m|^2 without the |x|^2 term, which is the same for every class
        predicted[start : start + chunk] = present[(squared_norms[None, :] - 2 * (x @ means.T)).argmin(1)]
    return predicted


def similar_class_pairs(
    labels: np.ndarray, predicted: np.ndarray, n_pairs: int = SIMILAR_PAIRS
) -> list[tuple[int, int, float]]:
    """The class pairs most confused with each other, as (a, b, rate), most confused first; rate is the
    share of the two classes' images predicted as the other one of the pair."""
    matrix = confusion_matrix(labels, predicted)
    counts = matrix.sum(1)
    pairs = [
        (a, b, float((matrix[a, b] + matrix[b, a]) / (counts[a] + counts[b])))
        for a, b in combinations(range(NUM_CLASSES), 2)
        if counts[a] and counts[b]
    ]
    pairs.sort(key=lambda p: (-p[2], p[0], p[1]))
    return pairs[:n_pairs]


def pca_2d(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project images on their first two principal components (SVD of the centred pixels); returns the
    (N, 2) coordinates and the share of variance each component explains."""
    x = images.reshape(len(images), -1).astype(np.float64) / 255
    x -= x.mean(0)
    _, singular, vt = np.linalg.svd(x, full_matrices=False)
    explained = singular**2 / max(float((singular**2).sum()), 1e-12)
    return x @ vt[:2].T, explained[:2]


def most_confident_mistakes(probabilities: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """Indices of up to n wrong predictions, the most confident first."""
    predicted = probabilities.argmax(1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = probabilities[wrong, predicted[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")[:n]]


# ---------------------------------------------------------------------------------------------- EDA


def write_eda_figures(
    dataset: Dataset, out_dir: str | os.PathLike, *, sample_size: int = 2000, seed: int = 0
) -> list[Path]:
    """Write the exploratory figures (EDA_FILES) into out_dir; returns their paths.

    `sample_size` images of the training split, drawn with `seed`, go into the PCA plot; the other
    figures use the whole training split (and the test split's labels, for the class counts).
    """
    _matplotlib()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train = dataset.train
    rng = np.random.default_rng(seed)
    predicted = nearest_mean_predictions(train.images, train.labels)
    sample = _pick(np.arange(len(train.labels)), sample_size, rng)
    return [
        _write(out, "samples.png", _draw_samples, train.images, train.labels, rng),
        _write(out, "class_counts.png", _draw_class_counts, train.labels, dataset.test.labels),
        _write(out, "mean_std.png", _draw_mean_std, train.images, train.labels),
        _write(out, "intensity_histograms.png", _draw_histograms, train.images, train.labels),
        _write(out, "pca.png", _draw_pca, train.images[sample], train.labels[sample]),
        _write(out, "similar_classes.png", _draw_similar, train.images, train.labels, predicted, rng),
    ]


def _draw_samples(fig, images: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> None:
    tiles: list[np.ndarray | None] = []
    for cls in range(NUM_CLASSES):
        chosen = [images[i] for i in _pick(np.flatnonzero(labels == cls), SAMPLES_PER_CLASS, rng)]
        tiles += chosen + [None] * (SAMPLES_PER_CLASS - len(chosen))
    ax = fig.add_subplot()
    _show_images(ax, _montage(tiles, SAMPLES_PER_CLASS))
    step = IMAGE_SIZE + 2
    ax.set_yticks([r * step + IMAGE_SIZE / 2 for r in range(NUM_CLASSES)], CLASS_NAMES, fontsize=12)
    ax.tick_params(axis="y", length=0)
    ax.set_title(f"{SAMPLES_PER_CLASS} random training images per class", fontsize=14, fontweight="bold")


def _draw_class_counts(fig, train_labels: np.ndarray, test_labels: np.ndarray) -> None:
    ax = fig.add_subplot()
    x = np.arange(NUM_CLASSES)
    width = 0.4
    for offset, split, labels, colour in (
        (-width / 2, "train", train_labels, TRAIN_COLOUR),
        (width / 2, "test", test_labels, TEST_COLOUR),
    ):
        counts = np.bincount(labels, minlength=NUM_CLASSES)
        bars = ax.bar(x + offset, counts, width, label=f"{split} ({len(labels):,} images)", color=colour)
        ax.bar_label(bars, labels=[f"{c:,}" for c in counts], padding=2, fontsize=9)
    ax.set_xticks(x, CLASS_NAMES)
    ax.set_xlabel("class")
    ax.set_ylabel("number of images")
    ax.grid(axis="y")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2, frameon=False)
    fig.suptitle("Images per class in the train and test sets")


def _draw_mean_std(fig, images: np.ndarray, labels: np.ndarray) -> None:
    axes = fig.subplots(2, NUM_CLASSES)
    means = np.zeros((NUM_CLASSES, IMAGE_SIZE, IMAGE_SIZE))
    stds = np.zeros_like(means)
    for cls in range(NUM_CLASSES):
        members = images[labels == cls].astype(np.float32)
        if len(members):
            means[cls], stds[cls] = members.mean(0), members.std(0)
    std_max = max(float(stds.max()), 1.0)
    for cls, name in enumerate(CLASS_NAMES):
        top, bottom = axes[0, cls], axes[1, cls]
        mean_image = top.imshow(means[cls], cmap="gray_r", vmin=0, vmax=255)
        std_image = bottom.imshow(stds[cls], cmap="magma", vmin=0, vmax=std_max)
        top.set_title(name, fontsize=10)
        for ax in (top, bottom):
            ax.set_xticks([])
            ax.set_yticks([])
        top.spines[:].set_visible(True)  # a frame: the mean's white background is the page's colour
        top.spines[:].set_color(GAP_COLOUR)
        bottom.spines[:].set_visible(False)
    axes[0, 0].set_ylabel("mean")
    axes[1, 0].set_ylabel("std. dev.")
    fig.colorbar(mean_image, ax=axes[0, :], shrink=0.9, label="intensity")
    fig.colorbar(std_image, ax=axes[1, :], shrink=0.9, label="intensity")
    fig.suptitle("Mean image and per-pixel standard deviation of each class (training set)")


def _draw_histograms(fig, images: np.ndarray, labels: np.ndarray) -> None:
    axes = fig.subplots(2, 5, sharex=True, sharey=True)
    colours = _class_colours()
    edges = np.arange(1, 257, HISTOGRAM_BIN_WIDTH)  # 1, 6, ..., 256: 255 values in equal bins
    for cls, (ax, name) in enumerate(zip(axes.flat, CLASS_NAMES, strict=True)):
        counts = np.bincount(images[labels == cls].ravel(), minlength=256)
        total, non_zero = counts.sum(), counts[1:].sum()
        binned = np.add.reduceat(counts, edges[:-1])
        share = binned / non_zero if non_zero else binned.astype(float)
        ax.stairs(share, edges, fill=True, color=colours[cls], alpha=0.85)
        zero_share = counts[0] / total if total else 0.0
        ax.set_title(f"{name}\n{zero_share:.0%} of pixels are 0", fontsize=11)
        ax.grid(axis="y")
    for ax in axes[1, :]:
        ax.set_xlabel("intensity (1–255)")
        ax.set_xticks([1, 64, 128, 192, 255])
    for ax in axes[:, 0]:
        ax.set_ylabel("share of non-zero pixels")
    fig.suptitle(
        f"Pixel-intensity histograms per class (training set; background zeros excluded, "
        f"bins of {HISTOGRAM_BIN_WIDTH})"
    )


def _draw_pca(fig, images: np.ndarray, labels: np.ndarray) -> None:
    ax = fig.add_subplot()
    coords, explained = pca_2d(images)
    colours = _class_colours()
    for cls, name in enumerate(CLASS_NAMES):
        points = coords[labels == cls]
        ax.scatter(points[:, 0], points[:, 1], s=12, alpha=0.6, color=colours[cls], label=name, linewidths=0)
    ax.set_xlabel(f"principal component 1 ({explained[0]:.0%} of variance)")
    ax.set_ylabel(f"principal component 2 ({explained[1]:.0%} of variance)")
    ax.grid()
    legend = ax.legend(title="class", loc="center left", bbox_to_anchor=(1.01, 0.5), markerscale=2.5)
    for handle in legend.legend_handles:
        handle.set_alpha(1.0)
    ax.set_title(f"PCA of {len(images):,} random training images (pixels as 784-d vectors)")


def _draw_similar(
    fig, images: np.ndarray, labels: np.ndarray, predicted: np.ndarray, rng: np.random.Generator
) -> None:
    pairs = similar_class_pairs(labels, predicted)
    k = EXAMPLES_PER_SIDE
    for row, (a, b, rate) in zip(np.atleast_1d(fig.subfigures(max(1, len(pairs)), 1)), pairs, strict=False):
        row.suptitle(
            f"{CLASS_NAMES[a]} vs {CLASS_NAMES[b]}: {rate:.1%} of their images lie nearer the other's mean",
            fontsize=12,
            fontweight="normal",
        )
        for ax, this, other in zip(row.subplots(1, 2), (a, b), (b, a), strict=True):
            # the images taken for the other class show best how alike the two are; pad with any others
            confused = np.flatnonzero((labels == this) & (predicted == other))
            rest = np.flatnonzero((labels == this) & (predicted != other))
            chosen = list(_pick(confused, k, rng)) + list(_pick(rest, k - min(k, len(confused)), rng))
            tiles = [images[i] for i in chosen] + [None] * (k - len(chosen))
            _show_images(ax, _montage(tiles, k))
            taken = "taken for" if len(confused) >= k else "some taken for"
            ax.set_xlabel(f"{CLASS_NAMES[this]} ({taken} {CLASS_NAMES[other]})", fontsize=11)
    fig.suptitle(
        "Classes that look most alike: the pairs a nearest-class-mean classifier confuses most (training set)"
    )


# ---------------------------------------------------------------------------------------------- evaluation


def write_evaluation_figures(
    model_dir: str | os.PathLike, dataset: Dataset, out_dir: str | os.PathLike
) -> list[Path]:
    """Write the figures of a trained model (EVALUATION_FILES) into out_dir; returns their paths.

    Curves come from model_dir/history.csv, the confusion matrix and scores from model_dir/model_card.json;
    the mistakes grid predicts dataset.test with the model in model_dir.
    """
    from fmnist_batch.model.runtime import load_model

    _matplotlib()
    model_path = Path(model_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    card = json.loads((model_path / "model_card.json").read_text())
    history = _read_history(model_path / "history.csv")

    model = load_model(model_path)
    test = dataset.test
    probabilities = np.concatenate(
        [model.predict_proba(test.images[i : i + 1000]) for i in range(0, len(test.labels), 1000)]
        or [np.zeros((0, NUM_CLASSES), np.float32)]
    )
    return [
        _write(out, "training_curves.png", _draw_curves, history, card),
        _write(out, "confusion_matrix.png", _draw_confusion, card),
        _write(out, "per_class_scores.png", _draw_scores, card),
        _write(out, "confident_mistakes.png", _draw_mistakes, test.images, test.labels, probabilities),
    ]


def _read_history(path: Path) -> dict[str, np.ndarray]:
    """Keras' CSVLogger file as columns of floats; epochs become 1-based like the card's best_epoch."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path} holds no epochs")
    columns = {key: np.array([float(row[key]) for row in rows]) for key in rows[0]}
    columns["epoch"] = columns["epoch"] + 1
    return columns


def _draw_curves(fig, history: dict[str, np.ndarray], card: dict) -> None:
    from matplotlib.ticker import MaxNLocator

    epochs = history["epoch"]
    best = card.get("training", {}).get("best_epoch")
    if best is None and "val_loss" in history:
        best = int(epochs[int(np.argmin(history["val_loss"]))])
    series = (
        ("", "train (augmented; mean over the epoch)", TRAIN_COLOUR),
        ("val_", "validation", TEST_COLOUR),
    )
    for ax, metric, label in zip(
        fig.subplots(1, 2), ("loss", "accuracy"), ("loss (cross-entropy)", "accuracy"), strict=True
    ):
        for prefix, name, colour in series:
            if prefix + metric in history:
                ax.plot(epochs, history[prefix + metric], "o-", markersize=4, color=colour, label=name)
        if best is not None:
            ax.axvline(best, color="0.3", linestyle="--", linewidth=1, label=f"best epoch ({best})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid()
        ax.legend()
        ax.set_title(f"{metric.capitalize()} per epoch")
    fig.suptitle("Training curves (best epoch: lowest validation loss; its weights are the ones kept)")


def _draw_confusion(fig, card: dict) -> None:
    from matplotlib.colors import PowerNorm

    metrics = card["metrics"]
    matrix = np.asarray(metrics["test_confusion_matrix"], dtype=np.int64)
    totals = matrix.sum(1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    ax = fig.add_subplot()
    # a square-root scale, so that confusions of a few percent show against the diagonal's 90%+
    image = ax.imshow(share, cmap="Blues", norm=PowerNorm(0.5, vmin=0, vmax=1))
    for (true, pred), count in np.ndenumerate(matrix):
        colour = "white" if share[true, pred] > 0.4 else "black" if count else "0.65"
        ax.text(pred, true, f"{count:,}", ha="center", va="center", fontsize=10, color=colour)
    ax.set_xticks(range(NUM_CLASSES), CLASS_NAMES, rotation=35, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(NUM_CLASSES), CLASS_NAMES)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.spines[:].set_visible(False)
    fig.colorbar(
        image, ax=ax, shrink=0.85, label="share of the true class (row-normalised, square-root scale)"
    )
    accuracy = metrics.get("test_accuracy", np.trace(matrix) / max(matrix.sum(), 1))
    ax.set_title(
        f"Confusion matrix on the test set ({matrix.sum():,} images, accuracy {accuracy:.1%}); "
        "numbers are image counts"
    )


def _draw_scores(fig, card: dict) -> None:
    per_class = card["metrics"]["test_per_class"]
    order = sorted(range(NUM_CLASSES), key=lambda i: (per_class[CLASS_NAMES[i]]["f1"], i))
    ax = fig.add_subplot()
    y = np.arange(NUM_CLASSES)
    height = 0.27
    # worst F1 at the top: draw the sorted classes from the top down
    for offset, (score, label, colour) in zip((-height, 0.0, height), SCORES, strict=True):
        values = [per_class[CLASS_NAMES[i]][score] for i in order]
        bars = ax.barh(y + offset, values, height, color=colour, label=label)
        ax.bar_label(bars, fmt="%.2f", padding=2, fontsize=9)
    ax.set_yticks(y, [CLASS_NAMES[i] for i in order])
    ax.invert_yaxis()
    ax.set_xlim(0, 1.08)
    ax.set_xlabel("score on the test set")
    ax.grid(axis="x")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=3, frameon=False)
    accuracy = card["metrics"].get("test_accuracy")
    if accuracy is not None:
        ax.axvline(accuracy, color="0.3", linestyle="--", linewidth=1)
        ax.annotate(
            f"accuracy {accuracy:.1%}",
            (accuracy, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(4, -4),
            textcoords="offset points",
            va="top",
            fontsize=9,
            color="0.3",
        )
    fig.suptitle("Precision, recall and F1 per class on the test set (worst F1 at the top)")


def _draw_mistakes(fig, images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray) -> None:
    count = MISTAKE_ROWS * MISTAKE_COLS
    chosen = most_confident_mistakes(probabilities, labels, count)
    axes = fig.subplots(MISTAKE_ROWS, MISTAKE_COLS)
    for ax, index in zip(axes.flat, chosen, strict=False):
        predicted = int(probabilities[index].argmax())
        _show_images(ax, images[index])
        ax.spines[:].set_visible(True)  # a frame: the images' background is as white as the page
        ax.spines[:].set_color(GAP_COLOUR)
        ax.set_title(
            f"true: {CLASS_NAMES[labels[index]]}\npredicted: {CLASS_NAMES[predicted]}\n"
            f"confidence {probabilities[index, predicted]:.0%}",
            fontsize=9,
        )
    for ax in axes.flat[len(chosen) :]:
        ax.set_axis_off()
    wrong = int((probabilities.argmax(1) != labels).sum())
    fig.suptitle(
        f"The {len(chosen)} most confident mistakes on the test set "
        f"({wrong:,} of {len(labels):,} images misclassified)"
    )
