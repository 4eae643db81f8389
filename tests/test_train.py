from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from fmnist_batch.data import DEBIAN_DIR
from fmnist_batch.train import stratified_split


def test_stratified_split_is_disjoint_seeded_and_keeps_class_proportions():
    labels = np.repeat(np.arange(10), 600)
    train, val = stratified_split(labels, 500, seed=3)
    assert len(val) == 500 and len(train) == 5500
    assert not set(train) & set(val)
    assert np.bincount(labels[val]).tolist() == [50] * 10
    again_train, again_val = stratified_split(labels, 500, seed=3)
    np.testing.assert_array_equal(val, again_val)
    np.testing.assert_array_equal(train, again_train)
    assert not np.array_equal(val, stratified_split(labels, 500, seed=4)[1])


SHORT_RUN = ["--limit", "2000", "--epochs", "1", "--seed", "7"]


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """One epoch on 2,000 images: the smallest real retrain; returns (out folder, what it printed)."""
    if not DEBIAN_DIR.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    pytest.importorskip("tensorflow", reason="retrain needs the [train] extra")
    from fmnist_batch.cli import Environment, main

    out = tmp_path_factory.mktemp("short") / "model"
    err = io.StringIO()
    status = main(["retrain", *SHORT_RUN, "--out", str(out)], Environment(stderr=err))
    assert status == 0, err.getvalue()
    return out, err.getvalue()


@pytest.mark.slow
def test_a_short_retrain_writes_loadable_files_and_a_valid_card(short_run):
    from fmnist_batch.runtime import load_model

    out, printed = short_run
    assert "epoch 1/1" in printed

    card = json.loads((out / "model_card.json").read_text())
    assert card["training"]["epochs_run"] == 1
    assert card["training"]["seed"] == 7
    assert card["training"]["train_images"] + card["metrics"]["validation_size"] == 2000
    assert card["metrics"]["test_size"] == 10_000
    assert 0.0 <= card["metrics"]["test_accuracy"] <= 1.0
    assert abs(card["metrics"]["tflite_test_accuracy"] - card["metrics"]["test_accuracy"]) <= 0.001
    assert card["temperature"] > 0
    assert len(card["metrics"]["test_confusion_matrix"]) == 10
    assert sum(map(sum, card["metrics"]["test_confusion_matrix"])) == 10_000
    assert set(card["metrics"]["test_per_class"]) == set(card["class_names"])
    assert len(card["dataset"]["sha256"]) == 4
    assert card["preprocessing"]["input_scale"] == pytest.approx(1 / 255)
    assert "--limit 2000" in card["training"]["command"]

    from fmnist_batch.figures import EVALUATION_FILES

    for name in EVALUATION_FILES:  # retrain draws its model's evaluation
        assert (out / "figures" / name).stat().st_size > 0

    with open(out / "history.csv") as f:
        history = list(csv.DictReader(f))
    assert len(history) == 1 and {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(history[0])

    # both exported files load through the runtime (which checks their sha256 against the card) and agree
    images = np.random.default_rng(0).integers(0, 256, (16, 28, 28), dtype=np.uint8)
    litert = load_model(out, backend="litert").predict_proba(images)
    keras = load_model(out, backend="keras").predict_proba(images)
    np.testing.assert_allclose(litert, keras, atol=1e-4)


@pytest.mark.slow
def test_a_fine_tuning_pass_starts_from_a_model_and_records_it(short_run, tmp_path, capsys):
    from fmnist_batch.cli import main

    source, _ = short_run
    source_card = json.loads((source / "model_card.json").read_text())
    args = ["retrain", "--init-from", str(source), "--augment", "light", "--learning-rate", "1e-4"]
    leaky = [*args, "--limit", "2000", "--epochs", "1", "--seed", "8", "--out", str(tmp_path / "x")]
    assert main(leaky) == 2  # another seed means another validation split: it would leak
    assert "same --seed and --limit" in capsys.readouterr().err

    out = tmp_path / "finetuned"
    assert main([*args, *SHORT_RUN, "--out", str(out)]) == 0
    card = json.loads((out / "model_card.json").read_text())
    assert card["training"]["init_from"]["keras_sha256"] == source_card["files"]["keras"]["sha256"]
    assert card["training"]["augmentation"]["level"] == "light"
    assert card["training"]["augmentation"]["random_erasing_prob"] == 0.0
