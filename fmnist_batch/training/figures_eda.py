"""The exploratory figures of the dataset (``eda``).

Every choice made here from data uses the training split; the test split is only counted (class counts).
"""

from __future__ import annotations

import os
from itertools import combinations
from pathlib import Path

import numpy as np

from fmnist_batch.labels import CLASS_NAMES, IMAGE_SIZE, NUM_CLASSES
from fmnist_batch.training.data import Dataset
from fmnist_batch.training.figures_common import (
    GAP_COLOUR,
    TEST_COLOUR,
    TRAIN_COLOUR,
    class_colours,
    matplotlib_module,
    montage,
    pick,
    show_images,
    write_figure,
)
from fmnist_batch.training.metrics import confusion_matrix

EDA_FILES = (
    "samples.png",
    "class_counts.png",
    "mean_std.png",
    "intensity_histograms.png",
    "pca.png",
    "similar_classes.png",
)
SAMPLES_PER_CLASS = 10
SIMILAR_PAIRS = 5
EXAMPLES_PER_SIDE = 6
HISTOGRAM_BIN_WIDTH = 5  # intensities 1..255 in 51 bins


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


def write_eda_figures(
    dataset: Dataset, out_dir: str | os.PathLike, *, sample_size: int = 2000, seed: int = 0
) -> list[Path]:
    """Write the exploratory figures (EDA_FILES) into out_dir; returns their paths.

    `sample_size` images of the training split, drawn with `seed`, go into the PCA plot; the other
    figures use the whole training split (and the test split's labels, for the class counts).
    """
    matplotlib_module()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train = dataset.train
    rng = np.random.default_rng(seed)
    predicted = nearest_mean_predictions(train.images, train.labels)
    sample = pick(np.arange(len(train.labels)), sample_size, rng)
    return [
        write_figure(out, "samples.png", _draw_samples, train.images, train.labels, rng),
        write_figure(out, "class_counts.png", _draw_class_counts, train.labels, dataset.test.labels),
        write_figure(out, "mean_std.png", _draw_mean_std, train.images, train.labels),
        write_figure(out, "intensity_histograms.png", _draw_histograms, train.images, train.labels),
        write_figure(out, "pca.png", _draw_pca, train.images[sample], train.labels[sample]),
        write_figure(out, "similar_classes.png", _draw_similar, train.images, train.labels, predicted, rng),
    ]


def _draw_samples(fig, images: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> None:
    tiles: list[np.ndarray | None] = []
    for cls in range(NUM_CLASSES):
        chosen = [images[i] for i in pick(np.flatnonzero(labels == cls), SAMPLES_PER_CLASS, rng)]
        tiles += chosen + [None] * (SAMPLES_PER_CLASS - len(chosen))
    ax = fig.add_subplot()
    show_images(ax, montage(tiles, SAMPLES_PER_CLASS))
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
    colours = class_colours()
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
    colours = class_colours()
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
            chosen = list(pick(confused, k, rng)) + list(pick(rest, k - min(k, len(confused)), rng))
            tiles = [images[i] for i in chosen] + [None] * (k - len(chosen))
            show_images(ax, montage(tiles, k))
            taken = "taken for" if len(confused) >= k else "some taken for"
            ax.set_xlabel(f"{CLASS_NAMES[this]} ({taken} {CLASS_NAMES[other]})", fontsize=11)
    fig.suptitle(
        "Classes that look most alike: the pairs a nearest-class-mean classifier confuses most (training set)"
    )
