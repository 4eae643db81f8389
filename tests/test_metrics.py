from __future__ import annotations

import numpy as np

from fmnist_batch.training.metrics import (
    classification_report,
    confusion_matrix,
    expected_calibration_error,
    fit_temperature,
    softmax,
)


def test_confusion_matrix_counts_true_rows_against_predicted_columns():
    matrix = confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 2, 0]), num_classes=3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_classification_report_scores():
    y_true = np.array([0, 0, 0, 1, 1, 9])
    y_pred = np.array([0, 0, 1, 1, 1, 0])
    report = classification_report(y_true, y_pred)
    assert report["T-shirt/top"]["precision"] == 2 / 3
    assert report["T-shirt/top"]["recall"] == 2 / 3
    assert report["Trouser"]["precision"] == 2 / 3 and report["Trouser"]["recall"] == 1.0
    assert report["Trouser"]["f1"] == 0.8
    assert report["Ankle boot"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert report["Bag"]["support"] == 0


def sample_with_temperature(true_temperature: float, n: int = 20_000, seed: int = 0):
    """Logits whose labels are drawn from softmax(logits / T): the calibrated temperature is T."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 4, (n, 10))
    p = softmax(logits, true_temperature)
    y = np.array([rng.choice(10, p=row) for row in p])
    return logits, y


def test_fit_temperature_recovers_the_temperature_that_generated_the_labels():
    logits, y = sample_with_temperature(2.5)
    assert abs(fit_temperature(logits, y) - 2.5) < 0.15


def test_temperature_scaling_lowers_the_calibration_error_of_overconfident_logits():
    logits, y = sample_with_temperature(3.0)
    before = expected_calibration_error(logits, y, 1.0)
    after = expected_calibration_error(logits, y, fit_temperature(logits, y))
    assert before > 0.1
    assert after < 0.02


def test_softmax_rows_sum_to_one_and_are_stable_for_large_logits():
    p = softmax(np.array([[1000.0, 0.0], [0.0, 0.0]]))
    np.testing.assert_allclose(p.sum(1), 1.0)
    np.testing.assert_allclose(p[1], [0.5, 0.5])
