from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from fmnist_batch.model.card import ModelError, bundled_model_dir
from fmnist_batch.model.logits import softmax
from fmnist_batch.model.runtime import load_model
from fmnist_batch.training.data import DEBIAN_DIR, load_dataset

needs_dataset = pytest.mark.skipif(
    not DEBIAN_DIR.is_dir(), reason="Debian's dataset-fashion-mnist is not installed"
)


@pytest.fixture(scope="module")
def test_set():
    if not DEBIAN_DIR.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    return load_dataset(DEBIAN_DIR).test


@pytest.fixture
def model_copy(tmp_path):
    target = tmp_path / "model"
    shutil.copytree(bundled_model_dir(), target, ignore=shutil.ignore_patterns("__init__.py", "__pycache__"))
    return target


def test_bundled_model_loads_and_returns_calibrated_probabilities():
    model = load_model()
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    probabilities = model.predict_proba(images)
    assert probabilities.shape == (5, 10)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-5)
    expected = softmax(model.predict_logits(images), model.card.temperature)
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)


def test_batches_of_different_sizes_give_the_same_answers():
    model = load_model()
    images = np.random.default_rng(1).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    whole = model.predict_proba(images)
    parts = np.concatenate([model.predict_proba(images[:3]), model.predict_proba(images[3:])])
    np.testing.assert_allclose(whole, parts, atol=1e-6)
    assert model.predict_proba(images[:0]).shape == (0, 10)


@pytest.mark.parametrize("precision, name", [("float", "model.tflite"), ("int8", "model.int8.tflite")])
def test_a_tampered_model_is_refused(model_copy, precision, name):
    tflite = model_copy / name
    flip_a_byte(tflite)
    with pytest.raises(ModelError, match="does not match its model card"):
        load_model(model_copy, backend="litert", precision=precision)
    with pytest.raises(ModelError, match="does not match its model card"):
        load_model(tflite, backend="litert")  # naming the file runs that file


def flip_a_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("backend", "name"), [("auto", "model.tflite"), ("keras", "model.keras")])
def test_a_tampered_photo_model_is_refused_at_load_before_any_photo(model_copy, backend, name):
    if backend == "keras":
        pytest.importorskip("keras", reason="the Keras fallback needs the [train] extra")
    flip_a_byte(model_copy / "photo" / name)
    with pytest.raises(ModelError, match=f"photo/{name} does not match its model card"):
        load_model(model_copy, backend=backend)
    load_model(model_copy, backend=backend, use_photo_model=False)  # the main model alone is intact


def _break_keras(monkeypatch, error: Exception) -> None:
    """Make `import keras` raise `error`, as a half-upgraded or mismatched install does."""
    import builtins

    real_import = builtins.__import__

    def broken(name, *args, **kwargs):
        if name == "keras" or name.startswith("keras."):
            raise error
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", broken)


@pytest.mark.parametrize(
    "error", [AttributeError("module 'tensorflow' has no attribute 'experimental'"), RuntimeError("ABI")]
)
def test_a_broken_keras_install_is_a_model_error_that_says_so(model_copy, monkeypatch, error):
    _break_keras(monkeypatch, error)
    with pytest.raises(ModelError, match=f"Keras is installed but broken: .*{type(error).__name__}"):
        load_model(model_copy, backend="keras")
    # also when Keras is the fallback because LiteRT is missing
    monkeypatch.setattr("fmnist_batch.model.runtime.litert_available", lambda: False)
    with pytest.raises(ModelError, match="Keras is installed but broken"):
        load_model(model_copy)


def test_asking_for_keras_without_it_is_a_model_error(model_copy, monkeypatch):
    monkeypatch.setitem(sys.modules, "keras", None)  # makes `import keras` raise ImportError
    with pytest.raises(ModelError, match=r"needs Keras.*pip install 'fmnist-batch\[train\]'"):
        load_model(model_copy, backend="keras")
    monkeypatch.setattr("fmnist_batch.model.runtime.litert_available", lambda: False)
    with pytest.raises(ModelError, match="no model runtime installed"):
        load_model(model_copy)


def test_naming_a_tflite_file_runs_that_file(model_copy):
    assert load_model(model_copy / "model.tflite", backend="litert").litert_file == "tflite"
    assert load_model(model_copy / "model.int8.tflite", backend="litert").litert_file == "tflite_int8"


@pytest.mark.parametrize("name", ["model.tflite", "model.int8.tflite"])
def test_a_models_precision_loads_the_same_file_from_its_card(model_copy, name):
    # how the Ray engine's actors, given the card, run the file the main process was told to run
    named = load_model(model_copy / name, backend="litert")
    again = load_model(model_copy / "model_card.json", backend="litert", precision=named.precision)
    assert again.litert_file == named.litert_file


def test_a_truncated_model_is_refused(model_copy):
    tflite = model_copy / "model.tflite"
    tflite.write_bytes(tflite.read_bytes()[:1000])
    with pytest.raises(ModelError, match="truncated, corrupted or was replaced"):
        load_model(model_copy / "model.tflite", backend="litert")


def test_missing_model_file_card_or_folder_is_a_clear_error(model_copy, tmp_path):
    (model_copy / "model.tflite").unlink()
    (model_copy / "model.int8.tflite").unlink()
    with pytest.raises(ModelError, match="model file not found"):
        load_model(model_copy, backend="litert")
    with pytest.raises(ModelError, match="model not found"):
        load_model(tmp_path / "nope.tflite")
    (model_copy / "model_card.json").unlink()
    with pytest.raises(ModelError, match="model card not found"):
        load_model(model_copy)


def test_a_card_without_a_checksum_is_refused(model_copy):
    card = json.loads((model_copy / "model_card.json").read_text())
    del card["files"]["tflite"]["sha256"]
    (model_copy / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="no sha256"):
        load_model(model_copy, backend="litert", precision="float")


def test_inference_does_not_import_tensorflow():
    code = (
        "import sys, numpy as np\n"
        "from fmnist_batch.model.runtime import load_model\n"
        "m = load_model()\n"
        "m.predict_proba(np.zeros((2, 28, 28), np.uint8))\n"
        "assert m.backend == 'litert', m.backend\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=600)


def test_litert_and_keras_agree_on_512_test_images(test_set):
    pytest.importorskip("keras", reason="the Keras fallback needs the [train] extra")
    images = test_set.images[:512]
    litert = load_model(backend="litert", precision="float").predict_proba(images)
    fallback = load_model(backend="keras")
    assert fallback.litert_file is None  # the Keras model is the float one, whatever the card chose
    keras = fallback.predict_proba(images)
    assert np.abs(litert - keras).max() <= 1e-4


def test_the_int8_file_runs_by_default_when_the_card_chose_it_and_agrees_with_float(test_set):
    card = json.loads((bundled_model_dir() / "model_card.json").read_text())
    default, int8 = load_model(backend="litert"), load_model(backend="litert", precision="int8")
    assert default.litert_file == card["preprocessing"].get("litert_file", "tflite")
    assert int8.litert_file == "tflite_int8"
    images = test_set.images[:512]
    quantized = int8.predict_proba(images)
    exact = load_model(backend="litert", precision="float").predict_proba(images)
    assert np.mean(quantized.argmax(1) == exact.argmax(1)) >= 0.995  # measured: all 512 agree
    assert np.abs(quantized - exact).mean() < 0.01
    assert np.abs(quantized - exact).max() > 0  # really another file


def test_asking_for_int8_from_a_card_without_it_is_a_clear_error(model_copy):
    card_path = model_copy / "model_card.json"
    card = json.loads(card_path.read_text())
    card["files"].pop("tflite_int8", None)
    card["preprocessing"]["litert_file"] = "tflite"
    card_path.write_text(json.dumps(card))
    assert load_model(model_copy, backend="litert").litert_file == "tflite"
    with pytest.raises(ModelError, match="names no tflite_int8 file"):
        load_model(model_copy, backend="litert", precision="int8")
    with pytest.raises(ModelError, match="unknown precision"):
        load_model(model_copy, backend="litert", precision="int4")


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["auto", "float"])
def test_bundled_tflite_reproduces_its_card_test_accuracy(test_set, precision):
    model = load_model(backend="litert", precision=precision)
    predicted = np.concatenate(
        [model.predict_proba(test_set.images[i : i + 1000]).argmax(1) for i in range(0, 10_000, 1000)]
    )
    accuracy = float(np.mean(predicted == test_set.labels))
    # test_accuracy is the card's figure for the very file this model runs (what serve and --html show)
    metrics = model.card.metrics
    expected = {"tflite_int8": metrics.int8_test_accuracy, "tflite": metrics.tflite_test_accuracy}
    assert model.test_accuracy == expected[model.litert_file]
    assert accuracy == pytest.approx(model.test_accuracy, abs=0.001)


def test_bundled_model_meets_the_094_test_accuracy_target():
    # the card's figure is checked against the official test set by the test above
    card = json.loads((bundled_model_dir() / "model_card.json").read_text())
    assert card["metrics"]["tflite_test_accuracy"] >= 0.94
    if card["preprocessing"].get("litert_file") == "tflite_int8":  # the file classify runs
        assert card["metrics"]["int8_test_accuracy"] >= 0.94


def test_keras_files_are_loaded_in_safe_mode_so_they_cannot_run_code(model_copy, tmp_path):
    keras = pytest.importorskip("keras", reason="the Keras fallback needs the [train] extra")
    import hashlib

    marker = str(tmp_path / "executed")

    def payload(x):
        with open(marker, "w"):
            return x[:, 0, :10, 0]

    inputs = keras.Input((28, 28, 1))
    # a Lambda layer carries Python bytecode: loading it would run arbitrary code
    outputs = keras.layers.Lambda(payload)(inputs)
    keras.Model(inputs, outputs).save(model_copy / "model.keras")
    card = json.loads((model_copy / "model_card.json").read_text())
    card["files"]["keras"]["sha256"] = hashlib.sha256((model_copy / "model.keras").read_bytes()).hexdigest()
    (model_copy / "model_card.json").write_text(json.dumps(card))
    os.unlink(marker)
    with pytest.raises(ModelError, match="cannot load"):
        load_model(model_copy, backend="keras")
    assert not os.path.exists(marker)


def test_a_card_with_flip_averaging_makes_the_runtime_average_each_image_with_its_mirror(model_copy):
    images = np.random.default_rng(3).integers(0, 256, (6, 28, 28), dtype=np.uint8)
    plain = load_model(model_copy)
    card_path = model_copy / "model_card.json"
    card = json.loads(card_path.read_text())
    card["preprocessing"]["flip_average"] = not card["preprocessing"].get("flip_average", False)
    card_path.write_text(json.dumps(card))
    flipped = load_model(model_copy)
    assert flipped.card.flip_average is not plain.card.flip_average
    averaged, single = (flipped, plain) if flipped.card.flip_average else (plain, flipped)
    expected = (single.predict_logits(images) + single.predict_logits(images[:, :, ::-1])) / 2
    np.testing.assert_allclose(averaged.predict_logits(images), expected, atol=1e-5)
    # a mirrored photo gets the same answer as the photo itself
    np.testing.assert_allclose(
        averaged.predict_logits(images[:, :, ::-1]), averaged.predict_logits(images), atol=1e-5
    )


def test_a_flip_gate_mirrors_only_the_images_the_model_is_unsure_of(model_copy):
    from fmnist_batch.model.logits import top_probability

    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    card_path = model_copy / "model_card.json"
    card = json.loads(card_path.read_text())
    card["preprocessing"]["flip_average"] = False
    card_path.write_text(json.dumps(card))
    single = load_model(model_copy).predict_logits(images)
    mirrored = load_model(model_copy).predict_logits(images[:, :, ::-1])
    gate = float(np.median(top_probability(single)))  # half the images fall below it
    card["preprocessing"].update(flip_average=True, flip_average_below=gate)
    card_path.write_text(json.dumps(card))
    gated = load_model(model_copy)
    assert gated.card.flip_average_below == gate
    unsure = top_probability(single) < gate
    assert 0 < unsure.sum() < len(images)
    logits = gated.predict_logits(images)
    np.testing.assert_allclose(logits[~unsure], single[~unsure], atol=1e-5)
    np.testing.assert_allclose(logits[unsure], (single[unsure] + mirrored[unsure]) / 2, atol=1e-5)
    # an image alone in its batch gets the answer it gets among others
    np.testing.assert_allclose(
        np.concatenate([gated.predict_logits(images[i : i + 1]) for i in range(len(images))]),
        logits,
        atol=1e-5,
    )
