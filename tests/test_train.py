from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from photos import render_garment_photo

from fmnist_batch.training.data import DEBIAN_DIR
from fmnist_batch.training.prepare import stratified_split


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
    from fmnist_batch.model.runtime import load_model

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
    from test_card import absolute_paths

    assert absolute_paths(card) == []  # the --out and dataset paths were absolute

    from fmnist_batch.training.figures_evaluation import EVALUATION_FILES

    for name in EVALUATION_FILES:  # retrain draws its model's evaluation
        assert (out / "figures" / name).stat().st_size > 0

    with open(out / "history.csv") as f:
        history = list(csv.DictReader(f))
    assert len(history) == 1 and {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(history[0])

    # both exported files load through the runtime (which checks their sha256 against the card) and agree
    images = np.random.default_rng(0).integers(0, 256, (16, 28, 28), dtype=np.uint8)
    litert = load_model(out, backend="litert", precision="float").predict_proba(images)
    keras = load_model(out, backend="keras").predict_proba(images)
    np.testing.assert_allclose(litert, keras, atol=1e-4)


@pytest.mark.slow
def test_the_int8_file_is_chosen_by_validation_and_recorded(short_run):
    from fmnist_batch.model.runtime import load_model
    from fmnist_batch.training.config import INT8_TOLERANCE

    out, printed = short_run
    card = json.loads((out / "model_card.json").read_text())
    record = card["quantization"]
    assert record["setting"] == "auto" and "int8 file: validation accuracy" in printed
    chosen = record["validation_accuracy_int8"] >= record["validation_accuracy_float"] - INT8_TOLERANCE
    assert card["preprocessing"]["litert_file"] == ("tflite_int8" if chosen else "tflite")
    assert load_model(out, backend="litert").litert_file == card["preprocessing"]["litert_file"]
    # the recorded test accuracy is the int8 file's, through the runtime
    from fmnist_batch.training.data import load_dataset

    test = load_dataset(DEBIAN_DIR).test
    int8 = load_model(out, backend="litert", precision="int8")
    predicted = np.concatenate(
        [int8.predict_proba(test.images[i : i + 2000]).argmax(1) for i in range(0, 10_000, 2000)]
    )
    assert float(np.mean(predicted == test.labels)) == pytest.approx(card["metrics"]["int8_test_accuracy"])


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


def test_photo_augmentation_keeps_shapes_range_and_a_black_background():
    tf = pytest.importorskip("tensorflow", reason="augmentation needs the [train] extra")
    import keras

    from fmnist_batch.training.augment import make_augment
    from fmnist_batch.training.config import TrainConfig

    keras.utils.set_random_seed(0)
    images = np.zeros((16, 28, 28, 1), np.float32)
    images[:8, 10:18, 10:18, 0] = np.linspace(0.2, 1.0, 8, dtype=np.float32)  # centred garments
    every_step = TrainConfig(augment="photo", erase_prob=1.0, photometric_prob=1.0, blur_prob=1.0)
    augmented, labels = make_augment(every_step)(tf.constant(images), tf.constant(np.arange(16)))
    augmented = np.asarray(augmented)

    assert augmented.shape == images.shape and augmented.dtype == np.float32
    assert augmented.min() >= 0.0 and augmented.max() <= 1.0
    np.testing.assert_array_equal(np.asarray(labels), np.arange(16))
    assert not augmented[8:].any()  # empty images stay empty: nothing is painted on the background
    # zoom <= 15%, shift <= 2 px, rotation 5 degrees and blur 2 px keep the border black
    border = np.ones((28, 28), bool)
    border[3:-3, 3:-3] = False
    assert not augmented[:8, border].any()
    assert not np.allclose(augmented[:8], images[:8])


def test_partial_label_loss_is_cross_entropy_for_one_class_and_rewards_mass_on_accepted_classes():
    pytest.importorskip("tensorflow", reason="the loss needs the [train] extra")
    from fmnist_batch.training.fit import accepted_class_accuracy, partial_label_loss

    logits = np.random.default_rng(0).normal(size=(10, 10)).astype(np.float32)
    one_hot = np.eye(10, dtype=np.float32)
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    cross_entropy = -log_softmax[np.arange(10), np.arange(10)]
    np.testing.assert_allclose(np.asarray(partial_label_loss(one_hot, logits)), cross_entropy, rtol=1e-5)

    shoes = np.zeros((1, 10), np.float32)
    shoes[0, [5, 7, 9]] = 1.0  # Sandal | Sneaker | Ankle boot
    probabilities = np.exp(log_softmax[:1])
    expected = -np.log(probabilities[0, [5, 7, 9]].sum())
    assert float(partial_label_loss(shoes, logits[:1])[0]) == pytest.approx(expected, rel=1e-5)
    on_sneaker, on_shirt = np.zeros((1, 10), np.float32), np.zeros((1, 10), np.float32)
    on_sneaker[0, 7] = on_shirt[0, 6] = 5.0
    assert float(partial_label_loss(shoes, on_sneaker)[0]) < float(partial_label_loss(shoes, on_shirt)[0])
    assert float(accepted_class_accuracy(shoes, on_sneaker)[0]) == 1.0
    assert float(accepted_class_accuracy(shoes, on_shirt)[0]) == 0.0


def test_real_photos_are_split_per_folder_and_repeated_to_their_share():
    from fmnist_batch.training.labelled_photos import split_by_folder
    from fmnist_batch.training.prepare import extra_repeat

    folders = np.repeat([0, 1, 2], [10, 20, 3])
    train, val = split_by_folder(folders, 0.2, seed=1)
    assert np.bincount(folders[val]).tolist() == [2, 4, 1]
    assert sorted([*train, *val]) == list(range(33))
    np.testing.assert_array_equal(val, split_by_folder(folders, 0.2, seed=1)[1])
    assert extra_repeat(50_000, 2_000, 0.15) == 4  # 8,000 of 58,000: 14% of each epoch
    assert extra_repeat(1_000, 5_000, 0.15) == 1  # at least once


SHOES = ("Sandal", "Sneaker", "Ankle boot")


@pytest.fixture(scope="module")
def real_photos(tmp_path_factory):
    """A labelled folder of rendered photos (the test set's images; only a smoke test trains on them):
    one folder per class, except one "shoes" folder for all three shoe classes and a "bags" folder the
    mapping leaves out; plus a file that cannot be converted. Returns (folder, mapping CSV)."""
    import shutil

    from conftest import render_photos

    root = tmp_path_factory.mktemp("real") / "photos"
    for path, label in render_photos(root / "_all", 40, seed=11):
        name = "shoes" if label in SHOES else "bags" if label == "Bag" else f"f-{label.replace('/', '-')}"
        (root / name).mkdir(exist_ok=True)
        shutil.move(str(path), root / name / path.name)
    shutil.rmtree(root / "_all")
    (root / "shoes" / "broken.jpg").write_text("not a photo\n")
    # amateur shots on a cluttered floor, which the conversion segments
    for seed in range(15):
        render_garment_photo(background="clutter", seed=seed)[0].save(
            root / "f-T-shirt-top" / f"floor-{seed}.jpg"
        )
    mapping = root.parent / "mapping.csv"
    rows = ["folder,fmnist_labels", "shoes,Sandal|Sneaker|Ankle boot", "bags,"]
    rows += [f"{p.name},{p.name[2:]}" for p in root.iterdir() if p.name.startswith("f-")]  # loose names
    mapping.write_text("\n".join(rows) + "\n")
    return root, mapping


@pytest.fixture(scope="module")
def photo_run(real_photos, tmp_path_factory):
    """A short retrain with `real_photos` mixed in: (out folder, what it printed)."""
    if not DEBIAN_DIR.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    pytest.importorskip("tensorflow", reason="retrain needs the [train] extra")
    from fmnist_batch.cli import Environment, main

    root, mapping = real_photos
    out, err = tmp_path_factory.mktemp("photo-run") / "model", io.StringIO()
    args = ["retrain", "--limit", "1000", "--epochs", "1", "--augment", "photo", "--workers", "2"]
    args += ["--extra-data", str(root), "--mapping", str(mapping), "--out", str(out)]
    # from the folder above the photos, which the card then records them relative to
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(photos_base(real_photos))
        assert main(args, Environment(stderr=err)) == 0, err.getvalue()
    return out, err.getvalue()


def photos_base(real_photos) -> Path:
    return real_photos[0].parent.parent


@pytest.mark.slow
def test_retrain_mixes_real_photos_into_training_only_and_records_them(real_photos, photo_run):
    import hashlib

    root, mapping = real_photos
    out, printed = photo_run
    err = io.StringIO(printed)
    assert "could not be converted" in err.getvalue()
    assert "real-photo validation accuracy" in err.getvalue()

    card = json.loads((out / "model_card.json").read_text())
    extra, metrics = card["training"]["extra_data"], card["metrics"]
    photos = {p.name: sorted(p.iterdir()) for p in root.iterdir()}
    base = photos_base(real_photos)
    assert extra["folder"] == str(root.relative_to(base)) and extra["mapping"] == str(
        mapping.relative_to(base)
    )
    assert extra["skipped_folders"] == {"bags": len(photos["bags"])}
    assert extra["folders"]["shoes"]["accepted"] == list(SHOES)
    assert extra["folders"]["shoes"]["failed"] == 1
    assert extra["folders"]["shoes"]["photos"] == len(photos["shoes"]) - 1
    used = sum(len(files) for name, files in photos.items() if name != "bags") - 1
    assert extra["train_photos"] + extra["validation_photos"] == used
    assert extra["repeat"] >= 1 and 0 < extra["share_of_epoch"] < 1
    listing = "".join(
        f"{hashlib.sha256((root / relative).read_bytes()).hexdigest()}  {relative}\n"
        for relative in sorted(
            f"{name}/{path.name}" for name, files in photos.items() if name != "bags" for path in files
        )
    )
    assert extra["files_sha256"] == hashlib.sha256(listing.encode()).hexdigest()

    # the dataset's validation and test splits are what they are without photos
    assert card["training"]["train_images"] + metrics["validation_size"] == 1000
    assert metrics["test_size"] == 10_000
    assert metrics["real_photo_validation_size"] == extra["validation_photos"] > 0
    assert 0.0 <= metrics["real_photo_validation_accuracy"] <= 1.0
    assert card["training"]["augmentation"]["level"] == "photo"
    assert card["training"]["augmentation"]["zoom_range"] == [-0.15, 0.15]
    with open(out / "history.csv") as f:
        assert "real_photo_val_accuracy" in next(csv.DictReader(f))


@pytest.mark.parametrize(
    ("problem", "named"),
    [("missing folder", "no-such-folder"), ("unknown class", "'shoes'"), ("mapping alone", "--extra-data")],
)
def test_retrain_refuses_unusable_real_photos(problem, named, tmp_path, capsys):
    if not DEBIAN_DIR.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    pytest.importorskip("tensorflow", reason="retrain needs the [train] extra")
    from fmnist_batch.cli import main

    (tmp_path / "photos" / "shoes").mkdir(parents=True)
    mapping = tmp_path / "mapping.csv"
    mapping.write_text("folder,fmnist_labels\nshoes,Sandal|Boot\n")
    extra = {
        "missing folder": ["--extra-data", str(tmp_path / "no-such-folder")],
        "unknown class": ["--extra-data", str(tmp_path / "photos"), "--mapping", str(mapping)],
        "mapping alone": ["--mapping", str(mapping)],
    }[problem]
    assert main(["retrain", *extra, "--out", str(tmp_path / "model")]) == 2
    assert named in capsys.readouterr().err
    assert not (tmp_path / "model").exists()


@pytest.mark.slow
def test_flip_averaging_is_decided_on_validation_and_recorded(short_run):
    out, printed = short_run
    card = json.loads((out / "model_card.json").read_text())
    record = card["flip_average"]
    assert record["setting"] == "auto"
    # "auto" turns it on exactly when the mirrored second look is more accurate on validation
    chosen = record["validation_accuracy_flip"] > record["validation_accuracy_single"]
    assert card["preprocessing"]["flip_average"] is chosen
    # when on, only images below the first gate as accurate as mirroring all are mirrored
    below = card["preprocessing"]["flip_average_below"]
    assert below == record.get("below")
    if chosen and below is not None:
        from fmnist_batch.model.logits import FLIP_GATES

        assert (
            below in FLIP_GATES and record["validation_accuracy_gated"] >= record["validation_accuracy_flip"]
        )
        assert 0 < record["validation_mirrored_share"] <= 1  # all, for a weak model
        expected = record["validation_accuracy_gated"]
    else:
        expected = record["validation_accuracy_flip"] if chosen else record["validation_accuracy_single"]
    assert card["metrics"]["validation_accuracy"] == pytest.approx(expected)
    assert "flip averaging " + ("on" if chosen else "off") in printed


@pytest.mark.slow
def test_epochs_0_re_exports_a_model_with_other_inference_settings(short_run, tmp_path):
    from fmnist_batch.cli import Environment, main
    from fmnist_batch.model.runtime import load_model

    source, _ = short_run
    source_card = json.loads((source / "model_card.json").read_text())
    assert (
        main(["retrain", "--epochs", "0", "--out", str(tmp_path / "x")], Environment(stderr=io.StringIO()))
        == 2
    )

    out = tmp_path / "flipped"
    args = [
        "retrain",
        "--init-from",
        str(source),
        "--epochs",
        "0",
        "--flip-average",
        "all",
        "--augment",
        "none",
    ]
    assert main([*args, "--limit", "2000", "--seed", "7", "--out", str(out)]) == 0
    card = json.loads((out / "model_card.json").read_text())
    # no training here: the augmentation recorded is the one that trained the weights, not --augment's
    assert card["training"]["augmentation"] == source_card["training"]["augmentation"]
    assert card["training"]["learning_rate"] == source_card["training"]["learning_rate"]
    assert card["preprocessing"]["flip_average"] is True
    assert card["preprocessing"]["flip_average_below"] is None
    assert card["training"]["epochs_run"] == 0 and card["training"]["best_epoch"] is None
    # no training: the same weights, so the validation accuracy is the source's flip-averaged one
    assert card["metrics"]["validation_accuracy"] == pytest.approx(
        source_card["flip_average"]["validation_accuracy_flip"]
    )
    assert (out / "history.csv").read_text() == (source / "history.csv").read_text()
    # the runtime applies what the card says, in both backends
    images = np.random.default_rng(1).integers(0, 256, (8, 28, 28), dtype=np.uint8)
    plain = load_model(source, backend="litert", precision="float")
    expected = (plain.predict_logits(images) + plain.predict_logits(images[:, :, ::-1])) / 2
    for backend in ("litert", "keras"):
        np.testing.assert_allclose(
            load_model(out, backend=backend, precision="float").predict_logits(images), expected, atol=1e-4
        )


@pytest.mark.slow
def test_a_photo_model_is_paired_by_its_held_out_segmented_photos(
    real_photos, photo_run, short_run, tmp_path
):
    from fmnist_batch.cli import Environment, main
    from fmnist_batch.model.runtime import load_model
    from fmnist_batch.training.labelled_photos import accepted_accuracy, load_labelled_photos, split_by_folder

    root, mapping = real_photos
    photo, _ = photo_run
    out, err = tmp_path / "paired", io.StringIO()
    args = ["pair-photo-model", str(photo), "--out", str(out)]
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path)  # the photo model's card names its photos relative to another folder
        assert main(args, Environment(stderr=err)) == 2
        assert "relative to the folder retrain ran in" in err.getvalue()
        patch.chdir(photos_base(real_photos))
        assert main(args, Environment(stderr=err)) == 0, err.getvalue()
    card = json.loads((out / "model_card.json").read_text())
    decision = card["photo_model_decision"]

    # the decision's figures, recomputed: the held-out photos of the photo run that were segmented
    photos = load_labelled_photos(root, mapping, log=lambda _: None)
    seed = json.loads((photo / "model_card.json").read_text())["training"]["seed"]
    _, held_out = split_by_folder(photos.folder_index, 0.2, seed)
    segmented = held_out[photos.segmented[held_out]]
    assert len(segmented) == decision["segmented_photos"] > 0
    assert {Path(photos.files[i]).name[:5] for i in segmented} == {"floor"}
    for name, folder in (("main", None), ("photo", photo)):
        logits = load_model(folder, use_photo_model=False).predict_logits(photos.images[segmented])
        expected = accepted_accuracy(logits, photos.accepted[segmented])
        assert decision[f"segmented_accuracy_{name}"] == pytest.approx(expected)
    attached = decision["segmented_accuracy_photo"] > decision["segmented_accuracy_main"]
    assert decision["attached"] is attached
    assert ("photo_model" in card) is attached and (out / "photo").is_dir() is attached
    paired = load_model(out)
    assert (paired.photo_model is not None) is attached

    # a model trained without real photos has nothing to be judged by
    err = io.StringIO()
    args = ["pair-photo-model", str(short_run[0]), "--out", str(tmp_path / "x")]
    assert main(args, Environment(stderr=err)) == 2
    assert "not trained with --extra-data" in err.getvalue()
    assert not (tmp_path / "x").exists()


def test_a_re_export_records_the_training_settings_that_made_its_weights():
    from types import SimpleNamespace

    from fmnist_batch.model import registry
    from fmnist_batch.model.card import Metrics, ModelCard, bundled_model_dir
    from fmnist_batch.training.config import TrainConfig
    from fmnist_batch.training.export import Trained, training_record
    from fmnist_batch.training.fit import Fitted

    source = ModelCard.load(bundled_model_dir() / "model_card.json")
    photo_source = ModelCard.load(registry.verify(registry.photo_card(source)))

    def record(source_card: ModelCard, epochs: int):
        config = TrainConfig(epochs=epochs, init_from="models", augment="full", learning_rate=0.1)
        trained = Trained(
            model=SimpleNamespace(count_params=lambda: 10),
            config=config,
            splits=SimpleNamespace(x_train=np.zeros((5, 28, 28, 1))),
            fitted=Fitted({"loss": [0.5] * epochs, "val_loss": [0.5] * epochs}, 1.0),
            choice=None,
            source=source_card,
            mix=None,
            photo_metrics=Metrics(),
        )
        return training_record(trained)

    again = record(source, epochs=0)
    assert again.augmentation == source.training.augmentation and again.augmentation["level"] == "light"
    assert (again.learning_rate, again.batch_size) == (source.training.learning_rate, 256)
    assert again.init_from.keras_sha256 == source.files["keras"]["sha256"]
    # the photos a photo model was trained with go with it, so a re-export of it can still be paired
    assert record(photo_source, epochs=0).extra_data == photo_source.training.extra_data
    trained_here = record(source, epochs=1)
    assert trained_here.augmentation["level"] == "full" and trained_here.learning_rate == 0.1
    assert trained_here.extra_data is None


def test_the_training_package_names_its_commands_without_importing_tensorflow():
    code = (
        "import sys\n"
        "from fmnist_batch.training import (TrainConfig, TrainSetupError, train, load_dataset,\n"
        "    PairingError, pair_with_photo_model, write_eda_figures, write_evaluation_figures)\n"
        "from fmnist_batch.training import train as again\n"
        "assert callable(train) and again is train, train\n"
        "heavy = {'tensorflow', 'keras', 'matplotlib'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=600)


#: what TensorFlow, absl and the converter print when nobody stops them
TENSORFLOW_NOISE = ("TensorSpec", "cuInit", "absl", "WARNING", "UserWarning", "I0000", "W0000", "E0000")


@pytest.mark.slow
def test_retrain_prints_its_own_lines_only_and_nothing_with_quiet(short_run, tmp_path):
    source, _ = short_run
    command = [sys.executable, "-m", "fmnist_batch", "retrain", "--init-from", str(source), *SHORT_RUN[:2]]
    command += ["--seed", "7", "--epochs", "0"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    run = subprocess.run(
        [*command, "--out", str(tmp_path / "a")], env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr
    lines = (run.stdout + run.stderr).splitlines()
    assert not [line for line in lines if any(noise in line for noise in TENSORFLOW_NOISE)], lines
    assert len(lines) < 20 and lines[-1].startswith("done: validation accuracy")
    quiet = subprocess.run(
        [*command, "-q", "--out", str(tmp_path / "b")], env=env, capture_output=True, text=True, timeout=600
    )
    assert quiet.returncode == 0 and quiet.stdout == quiet.stderr == ""
