"""The figures of a trained model: training curves, confusion matrix, per-class scores and the most
confident mistakes, from its card, its history.csv and predictions on the test set."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from fmnist_batch.labels import CLASS_NAMES, NUM_CLASSES
from fmnist_batch.model.card import HISTORY_FILE, Metrics, ModelCard, find_card
from fmnist_batch.training.data import Dataset
from fmnist_batch.training.figures_common import (
    GAP_COLOUR,
    SCORES,
    TEST_COLOUR,
    TRAIN_COLOUR,
    matplotlib_module,
    show_images,
    write_figure,
)

EVALUATION_FILES = (
    "training_curves.png",
    "confusion_matrix.png",
    "per_class_scores.png",
    "confident_mistakes.png",
)
MISTAKE_ROWS, MISTAKE_COLS = 3, 8


def most_confident_mistakes(probabilities: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """Indices of up to n wrong predictions, the most confident first."""
    predicted = probabilities.argmax(1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = probabilities[wrong, predicted[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")[:n]]


def write_evaluation_figures(
    model_dir: str | os.PathLike, dataset: Dataset, out_dir: str | os.PathLike
) -> list[Path]:
    """Write the figures of a trained model (EVALUATION_FILES) into out_dir; returns their paths.

    Curves come from model_dir/history.csv, the confusion matrix and scores from model_dir/model_card.json;
    the mistakes grid predicts dataset.test with the model in model_dir.
    """
    from fmnist_batch.model.runtime import load_model

    matplotlib_module()
    model_path = Path(model_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    card = ModelCard.load(find_card(model_path))
    metrics, training = card.metrics, card.training
    if metrics.test_confusion_matrix is None or metrics.test_per_class is None:
        raise ValueError(f"{card.path} records no test confusion matrix and per-class scores")
    history = _read_history(card.path.parent / HISTORY_FILE)
    model = load_model(model_path)
    test = dataset.test
    probabilities = np.concatenate(
        [model.predict_proba(test.images[i : i + 1000]) for i in range(0, len(test.labels), 1000)]
        or [np.zeros((0, NUM_CLASSES), np.float32)]
    )
    return [
        write_figure(
            out, "training_curves.png", _draw_curves, history, training.best_epoch if training else None
        ),
        write_figure(out, "confusion_matrix.png", _draw_confusion, metrics),
        write_figure(out, "per_class_scores.png", _draw_scores, metrics),
        write_figure(out, "confident_mistakes.png", _draw_mistakes, test.images, test.labels, probabilities),
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


def _draw_curves(fig, history: dict[str, np.ndarray], best: int | None) -> None:
    from matplotlib.ticker import MaxNLocator

    epochs = history["epoch"]
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


def _draw_confusion(fig, metrics: Metrics) -> None:
    from matplotlib.colors import PowerNorm

    matrix = np.asarray(metrics.test_confusion_matrix, dtype=np.int64)
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
    accuracy = metrics.test_accuracy
    if accuracy is None:
        accuracy = np.trace(matrix) / max(matrix.sum(), 1)
    ax.set_title(
        f"Confusion matrix on the test set ({matrix.sum():,} images, accuracy {accuracy:.1%}); "
        "numbers are image counts"
    )


def _draw_scores(fig, metrics: Metrics) -> None:
    per_class = metrics.test_per_class
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
    accuracy = metrics.test_accuracy
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
        show_images(ax, images[index])
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
