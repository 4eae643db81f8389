from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from fmnist_batch.training.data import (
    CSV_FILES,
    DEBIAN_DIR,
    DatasetError,
    load_dataset,
    parse_idx_images,
    parse_idx_labels,
)


def idx_images(images: np.ndarray) -> bytes:
    n, rows, cols = images.shape
    return struct.pack(">IIII", 2051, n, rows, cols) + images.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes()


def write_idx_dataset(folder, n_train=20, n_test=10, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n, prefix in (("train", n_train, "train"), ("test", n_test, "t10k")):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        arrays[split] = (images, labels)
        for stem, raw in (
            (f"{prefix}-images-idx3-ubyte", idx_images(images)),
            (f"{prefix}-labels-idx1-ubyte", idx_labels(labels)),
        ):
            if gz:
                (folder / (stem + ".gz")).write_bytes(gzip.compress(raw))
            else:
                (folder / stem).write_bytes(raw)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_idx_files_load_gzipped_or_not(tmp_path, gz):
    arrays = write_idx_dataset(tmp_path, gz=gz)
    dataset = load_dataset(tmp_path, check_counts=False)
    np.testing.assert_array_equal(dataset.train.images, arrays["train"][0])
    np.testing.assert_array_equal(dataset.train.labels, arrays["train"][1])
    np.testing.assert_array_equal(dataset.test.images, arrays["test"][0])
    np.testing.assert_array_equal(dataset.test.labels, arrays["test"][1])
    assert set(dataset.file_hashes()) == {p.name for p in dataset.train.files + dataset.test.files}
    assert all(len(h) == 64 for h in dataset.file_hashes().values())


def test_kaggle_csv_pair_loads(tmp_path):
    rng = np.random.default_rng(1)
    expected = {}
    for split, n in (("train", 6), ("test", 4)):
        images = rng.integers(0, 256, (n, 28, 28))
        labels = rng.integers(0, 10, n)
        expected[split] = (images, labels)
        header = "label," + ",".join(f"pixel{i}" for i in range(1, 785))
        lines = [header] + [
            ",".join(map(str, [label, *img.ravel()])) for label, img in zip(labels, images, strict=True)
        ]
        (tmp_path / CSV_FILES[split]).write_text("\n".join(lines) + "\n")
    dataset = load_dataset(tmp_path, check_counts=False)
    np.testing.assert_array_equal(dataset.train.images, expected["train"][0])
    np.testing.assert_array_equal(dataset.test.labels, expected["test"][1])


def test_counts_are_checked_against_the_official_sizes(tmp_path):
    write_idx_dataset(tmp_path)
    with pytest.raises(DatasetError, match="expected 60000"):
        load_dataset(tmp_path)


def test_bad_magic_truncation_and_shape_are_reported():
    images = idx_images(np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(DatasetError, match="magic"):
        parse_idx_images(struct.pack(">I", 9999) + images[4:])
    with pytest.raises(DatasetError, match="truncated"):
        parse_idx_images(images[:-5])
    with pytest.raises(DatasetError, match="32x32"):
        parse_idx_images(idx_images(np.zeros((1, 32, 32), np.uint8)))
    with pytest.raises(DatasetError, match="magic"):
        parse_idx_labels(images)
    with pytest.raises(DatasetError, match="out of range"):
        parse_idx_labels(idx_labels(np.array([1, 12])))


def test_broken_gzip_is_a_dataset_error_not_a_traceback(tmp_path):
    write_idx_dataset(tmp_path)
    target = tmp_path / "train-images-idx3-ubyte.gz"
    target.write_bytes(target.read_bytes()[:50])
    with pytest.raises(DatasetError, match="train-images"):
        load_dataset(tmp_path, check_counts=False)


def test_missing_dataset_says_where_it_looked_and_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("FMNIST_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setattr("fmnist_batch.training.data.DEBIAN_DIR", tmp_path / "debian")
    monkeypatch.setattr("fmnist_batch.training.data.KERAS_CACHE_DIR", tmp_path / "keras")
    with pytest.raises(DatasetError) as info:
        load_dataset()
    message = str(info.value)
    assert str(tmp_path / "nowhere") in message and str(tmp_path / "debian") in message
    assert "apt-get install dataset-fashion-mnist" in message


def test_env_var_is_searched_before_the_debian_folder(tmp_path, monkeypatch):
    arrays = write_idx_dataset(tmp_path / "mine", n_train=60_000, n_test=10_000)
    monkeypatch.setenv("FMNIST_DATA", str(tmp_path / "mine"))
    dataset = load_dataset()
    assert dataset.source == tmp_path / "mine"
    np.testing.assert_array_equal(dataset.test.labels, arrays["test"][1])


def test_missing_dataset_exits_2_with_the_message(tmp_path, capsys):
    from fmnist_batch.cli import main

    pytest.importorskip("tensorflow", reason="retrain needs the [train] extra")
    status = main(["retrain", "--data", str(tmp_path), "--out", str(tmp_path / "m")])
    assert status == 2
    assert "apt-get install dataset-fashion-mnist" in capsys.readouterr().err


@pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_official_dataset_loads_with_the_expected_shapes():
    dataset = load_dataset(DEBIAN_DIR)
    assert dataset.train.images.shape == (60_000, 28, 28)
    assert dataset.test.images.shape == (10_000, 28, 28)
    assert np.bincount(dataset.test.labels).tolist() == [1000] * 10
