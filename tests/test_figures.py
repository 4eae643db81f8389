"""Figures: each function writes valid PNGs of the stated size from a tiny made-up dataset, and picks
what it shows (similar pairs, mistakes) the way it says."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fmnist_batch.labels import IMAGE_SIZE, NUM_CLASSES
from fmnist_batch.model.card import bundled_model_dir
from fmnist_batch.training import figures_common, figures_eda, figures_evaluation
from fmnist_batch.training.data import Dataset, Split

pytest.importorskip("matplotlib")


def make_split(per_class: int, rng: np.random.Generator) -> Split:
    """Each class a bright horizontal band at its own height, plus noise: distinct means, some overlap."""
    labels = np.repeat(np.arange(NUM_CLASSES, dtype=np.uint8), per_class)
    images = rng.integers(0, 60, (len(labels), IMAGE_SIZE, IMAGE_SIZE)).astype(np.uint8)
    images[rng.random(images.shape) < 0.5] = 0  # background zeros, as in the real data
    for i, label in enumerate(labels):
        top = 2 * int(label)
        images[i, top : top + 8, 4:24] = rng.integers(150, 256)
    order = rng.permutation(len(labels))
    return Split(images[order], labels[order])


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    rng = np.random.default_rng(0)
    return Dataset(train=make_split(12, rng), test=make_split(5, rng), source=Path("made-up"))


@pytest.fixture(scope="module")
def eda_paths(tmp_path_factory, dataset) -> list[Path]:
    return figures_eda.write_eda_figures(dataset, tmp_path_factory.mktemp("eda"), sample_size=50)


@pytest.fixture
def model_dir(tmp_path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(bundled_model_dir(), folder, ignore=shutil.ignore_patterns("__init__.py", "__pycache__"))
    return folder


def assert_figures(paths: list[Path], names: tuple[str, ...]) -> None:
    assert [p.name for p in paths] == list(names)
    for path in paths:
        width, height = figures_common.FIGURE_SIZES[path.name]
        with Image.open(path) as image:
            assert image.format == "PNG"
            dpi = figures_common.DPI
            assert image.size == (round(width * dpi), round(height * dpi)), path.name
            image.verify()
        with Image.open(path) as image:
            assert np.asarray(image.convert("L")).std() > 5, f"{path.name} is blank"


def test_eda_figures_are_pngs_of_their_stated_size(eda_paths):
    assert_figures(eda_paths, figures_eda.EDA_FILES)


def test_eda_figures_do_not_depend_on_the_test_images(tmp_path, dataset, eda_paths):
    """Nothing shown is chosen with the test set: only its labels are counted."""
    noisy_test = Split(
        np.random.default_rng(1).integers(0, 256, dataset.test.images.shape, np.uint8), dataset.test.labels
    )
    second = figures_eda.write_eda_figures(
        Dataset(dataset.train, noisy_test, dataset.source), tmp_path / "b", sample_size=50
    )
    for a, b in zip(eda_paths, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_evaluation_figures_are_pngs_of_their_stated_size(tmp_path, dataset, model_dir):
    paths = figures_evaluation.write_evaluation_figures(model_dir, dataset, tmp_path / "eval")
    assert_figures(paths, figures_evaluation.EVALUATION_FILES)


def test_evaluation_figures_from_one_epoch_and_a_card_without_best_epoch(tmp_path, dataset, model_dir):
    card = json.loads((model_dir / "model_card.json").read_text())
    card.get("training", {}).pop("best_epoch", None)
    (model_dir / "model_card.json").write_text(json.dumps(card))
    with open(model_dir / "history.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "accuracy", "loss", "val_accuracy", "val_loss", "learning_rate"])
        writer.writerow([0, 0.5, 1.2, 0.6, 1.1, 0.001])
    paths = figures_evaluation.write_evaluation_figures(model_dir, dataset, tmp_path / "eval")
    assert_figures(paths, figures_evaluation.EVALUATION_FILES)


def test_similar_class_pairs_are_the_most_confused_both_ways():
    labels = np.repeat(np.arange(NUM_CLASSES), 10)
    predicted = labels.copy()
    predicted[np.flatnonzero(labels == 3)[:4]] = 4
    predicted[np.flatnonzero(labels == 4)[:2]] = 3
    predicted[np.flatnonzero(labels == 1)[:3]] = 7
    pairs = figures_eda.similar_class_pairs(labels, predicted, n_pairs=2)
    assert pairs == [(3, 4, pytest.approx(6 / 20)), (1, 7, pytest.approx(3 / 20))]


def test_nearest_mean_predictions_separate_distinct_classes(dataset):
    predicted = figures_eda.nearest_mean_predictions(dataset.train.images, dataset.train.labels)
    assert np.mean(predicted == dataset.train.labels) > 0.9


def test_pca_2d_finds_the_direction_of_most_variance():
    rng = np.random.default_rng(0)
    images = np.zeros((200, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    images[:, 10, 10] = rng.integers(0, 256, 200)  # all variance in one pixel
    coords, explained = figures_eda.pca_2d(images)
    assert coords.shape == (200, 2)
    assert explained[0] == pytest.approx(1.0)
    assert np.corrcoef(coords[:, 0], images[:, 10, 10])[0, 1] ** 2 == pytest.approx(1.0)


def test_most_confident_mistakes_come_first_and_skip_correct_ones():
    probabilities = np.array(
        [
            [0.9, 0.1],  # right
            [0.6, 0.4],  # wrong, 0.6
            [0.2, 0.8],  # wrong, 0.8
            [0.99, 0.01],  # wrong, 0.99
        ]
    )
    labels = np.array([0, 1, 0, 1])
    assert figures_evaluation.most_confident_mistakes(probabilities, labels, 2).tolist() == [3, 2]
    assert figures_evaluation.most_confident_mistakes(probabilities, labels, 10).tolist() == [3, 2, 1]


def test_importing_the_module_does_not_import_matplotlib():
    code = (
        "import sys, fmnist_batch.training.figures_eda, fmnist_batch.training.figures_evaluation\n"
        "assert 'matplotlib' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=600)


def test_missing_matplotlib_says_how_to_install_it(tmp_path, dataset, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    with pytest.raises(ImportError, match=r"pip install 'fmnist-batch\[train\]'"):
        figures_eda.write_eda_figures(dataset, tmp_path)


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="dataset not installed")
def test_the_eda_command_writes_every_figure(tmp_path, capsys):
    from fmnist_batch.cli import main

    assert main(["eda", "--out", str(tmp_path), "--sample-size", "300"]) == 0
    for name in figures_eda.EDA_FILES:
        with Image.open(tmp_path / name) as image:
            width, height = figures_common.FIGURE_SIZES[name]
            assert image.size == (round(width * figures_common.DPI), round(height * figures_common.DPI))
    assert capsys.readouterr().err.count("wrote ") == len(figures_eda.EDA_FILES)
