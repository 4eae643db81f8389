"""Evaluation metrics in plain numpy: confusion matrix, per-class scores, calibration."""

from __future__ import annotations

import numpy as np

from fmnist_batch.labels import CLASS_NAMES, NUM_CLASSES
from fmnist_batch.model.logits import softmax


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


def classification_report(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per class name (0 where undefined)."""
    matrix = confusion_matrix(y_true, y_pred)
    tp = np.diag(matrix).astype(np.float64)
    predicted, actual = matrix.sum(0), matrix.sum(1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(actual[i]),
        }
        for i, name in enumerate(CLASS_NAMES)
    }


def nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    p = softmax(logits, temperature)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None))))


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature minimising the negative log-likelihood (Guo et al. 2017), by golden-section search
    over log T in [-3, 3]; NLL is unimodal in T, so this finds the optimum without scipy."""
    lo, hi = -3.0, 3.0
    ratio = (np.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(logits, y, np.exp(a)), nll(logits, y, np.exp(b))
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(logits, y, np.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(logits, y, np.exp(b))
    return float(np.exp((lo + hi) / 2))


def expected_calibration_error(
    logits: np.ndarray, y: np.ndarray, temperature: float, bins: int = 15
) -> float:
    """ECE with equal-width confidence bins: sum over bins of |accuracy - confidence| weighted by share."""
    p = softmax(logits, temperature)
    confidence, predicted = p.max(1), p.argmax(1)
    correct = predicted == np.asarray(y)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)
