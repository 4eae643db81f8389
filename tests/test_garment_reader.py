"""The garment reader: the colour model that joins the answer for worn garments (model/garment_reader.py).

Photos: scikit-image's `astronaut` (NASA, public domain) on a drawn studio canvas, and catalog shots
rendered from the Fashion-MNIST test set (conftest.py)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fmnist_batch import Classifier
from fmnist_batch.convert import ConversionSettings, convert_path, find_worn_garment, load_image, to_rgb
from fmnist_batch.convert.garment import GARMENT_INPUT, square_on_white
from fmnist_batch.convert.settings import VIEW_CLASSES
from fmnist_batch.labels import CLASS_NAMES
from fmnist_batch.model import runtime
from fmnist_batch.model.card import ModelCard, ModelError, bundled_model_dir
from fmnist_batch.model.combine import within_view_classes
from fmnist_batch.model.garment_reader import joined
from fmnist_batch.model.runtime import load_model

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
WORN = [CLASS_NAMES.index(name) for name in VIEW_CLASSES["worn"]]


@pytest.fixture(scope="module")
def astronaut_on_canvas() -> Image.Image:
    data = pytest.importorskip("skimage.data")
    photo = Image.fromarray(data.astronaut())
    canvas = Image.new("RGB", (600, 700), (247, 247, 247))
    canvas.paste(photo, (44, 94))
    return canvas


def test_joined_is_the_weighted_geometric_mean_over_the_classes_both_allow():
    model = np.array([[0.6, 0.3, 0.1, 0.0], [0.5, 0.5, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]], np.float32)
    reader = np.array([[0.2, 0.2, 0.1, 0.5], [0.1, 0.9, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]], np.float32)
    even = joined(model, reader, 0.5)
    expected = np.sqrt(model[0] * reader[0])
    assert np.allclose(even[0], expected / expected.sum())
    assert even[0, 3] == 0  # the model ruled it out, however sure the reader is
    assert even[1].argmax() == 1  # the model is torn, the reader is sure
    assert np.array_equal(even[2], model[2])  # no class both allow: the 28x28 model's answer stands
    assert np.allclose(joined(model, reader, 0.0)[:2], model[:2])
    assert np.allclose(joined(model, reader, 1.0)[1], reader[1])
    assert np.allclose(even.sum(axis=1), 1, atol=1e-6)


def test_square_on_white_keeps_the_masked_garment_in_colour_and_whitens_the_rest():
    rgb = np.zeros((300, 100, 3), np.uint8)
    rgb[...] = (10, 120, 200)
    mask = np.zeros((300, 100), bool)
    mask[50:250, 20:80] = True
    rgb[:, :20] = (0, 0, 0)  # outside the mask: must not show
    picture = square_on_white(rgb, mask)
    assert picture.shape == (GARMENT_INPUT, GARMENT_INPUT, 3) and picture.dtype == np.uint8
    assert (picture[GARMENT_INPUT // 2, GARMENT_INPUT // 2] == (10, 120, 200)).all()
    assert (picture[:, :40] == 255).all() and (picture[:, -40:] == 255).all()  # a tall crop, centred
    assert picture.min(axis=(0, 1)).tolist() == [10, 120, 200]


def test_a_worn_photo_is_answered_by_both_models(astronaut_on_canvas, tmp_path):
    photo = tmp_path / "on-model.png"
    astronaut_on_canvas.save(photo)
    model = load_model()
    settings = ConversionSettings(**model.card.conversion_settings())
    conversion = convert_path(photo, settings)
    worn = find_worn_garment(to_rgb(load_image(photo, settings)))
    assert conversion.view == "worn" and np.array_equal(conversion.colour, worn.colour)
    assert (conversion.colour[0, 0] == 255).all() and conversion.colour.std() > 20  # a garment, on white

    image = conversion.image[None]
    alone = within_view_classes(model.predict_proba(image, np.array([True])), np.array(["worn"], object))
    reader = model.garment_reader.read(conversion.colour[None])
    assert np.allclose(reader[0, WORN].sum(), 1, atol=1e-5) and (np.delete(reader[0], WORN) == 0).all()
    expected = joined(alone, reader, model.garment_weight)[0]
    assert not np.allclose(expected, alone[0], atol=1e-3)  # the reader changes the answer's numbers

    row = Classifier(top_k=10)(photo)
    got = {item["label"]: item["score"] for item in row["top_k"]}
    assert np.allclose([got[name] for name in CLASS_NAMES], expected, atol=1e-5)

    # the same photo with a card that names no reader: the 28x28 model's answer alone
    folder = copy_of_bundled_model(tmp_path)
    card = json.loads((folder / "model_card.json").read_text())
    del card["garment_reader"]
    (folder / "model_card.json").write_text(json.dumps(card))
    row = Classifier(model=folder, top_k=10)(photo)
    got = {item["label"]: item["score"] for item in row["top_k"]}
    assert np.allclose([got[name] for name in CLASS_NAMES], alone[0], atol=1e-5)


def test_catalog_photos_never_load_the_reader(monkeypatch, catalog):
    def refuse(*args, **kwargs):
        raise AssertionError("the garment reader was loaded for a catalog shot")

    monkeypatch.setattr(runtime, "GarmentReader", refuse)
    rows = Classifier()([path for path, _ in catalog[:20]])
    assert {row["view"] for row in rows} == {"catalog"}
    assert all(row["status"] != "error" for row in rows)


def copy_of_bundled_model(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(bundled_model_dir(), folder, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return folder


def test_a_replaced_reader_file_is_refused_when_the_model_loads(tmp_path):
    folder = copy_of_bundled_model(tmp_path)
    card = ModelCard.load(folder / "model_card.json")
    reader = folder / card.garment_reader["folder"] / card.garment_reader["file"]
    reader.write_bytes(reader.read_bytes()[:-1])
    with pytest.raises(ModelError, match="sha256"):
        load_model(folder)
    reader.unlink()
    with pytest.raises(ModelError, match="not found"):
        load_model(folder)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"folder": "../elsewhere"}, "plain name"),
        ({"file": "/etc/passwd"}, "plain name"),
        ({"weight": 1.5}, r"\[0, 1\]"),
        ({"weight": True}, "finite number"),
        ({"classes": ["Hat"]}, "class names"),
        ({"sha256": None}, None),
    ],
)
def test_a_card_with_a_bad_reader_entry_is_refused(change, message):
    raw = ModelCard.load(bundled_model_dir() / "model_card.json").to_dict()
    entry = {**raw["garment_reader"], **change}
    if change.get("sha256", "") is None:
        del entry["sha256"]
        message = "needs a folder, a file, its sha256"
    raw["garment_reader"] = entry
    with pytest.raises(ModelError, match=message):
        ModelCard.from_dict(raw, Path("card.json"))


def test_the_build_script_reads_worn_classes_from_the_mapping_and_prefers_the_simpler_head(tmp_path):
    build = pytest.importorskip("build_garment_model")
    (tmp_path / "mapping.csv").write_text(
        "folder,fmnist_labels\nt-shirt,T-shirt/top\npants,Trouser\nlongsleeve,Pullover|T-shirt/top\n"
        "outwear,Coat\nhat,\nshoes,Sandal|Sneaker|Ankle boot\n"
    )
    expected = {"t-shirt": "T-shirt/top", "longsleeve": "Pullover", "outwear": "Coat"}
    assert build.worn_folders(tmp_path) == expected
    # 200 photos: one standard error at 0.90 is 0.021
    assert build.one_standard_error([0.85, 0.88, 0.90, 0.89], 200) == 1
    assert build.one_standard_error([0.80, 0.90], 200) == 1
    assert build.one_standard_error([0.90, 0.70], 200) == 0


@pytest.mark.filterwarnings("ignore:.*experimental_preserve_all_tensors:UserWarning")
def test_the_ceiling_script_taps_the_features_the_reader_head_reads(astronaut_on_canvas):
    ceiling = pytest.importorskip("worn_ceiling")
    from ai_edge_litert.interpreter import Interpreter

    model = load_model()
    worn = find_worn_garment(astronaut_on_canvas)
    pictures = np.stack([worn.colour, worn.colour[:, ::-1], 255 - worn.colour])
    features = ceiling.reader_features(model.declared_path("garment reader"), pictures)
    assert features.shape[0] == 3 and not np.allclose(features[0], features[2])

    # the head, read from the file (its weights are float16 constants that a DEQUANTIZE op feeds it):
    # softmax(features . weights + bias) is the reader's own answer
    reader_file = str(model.declared_path("garment reader"))
    interpreter = Interpreter(reader_file, experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    ops = interpreter._get_ops_details()
    stored = {int(op["outputs"][0]): int(op["inputs"][0]) for op in ops if op["op_name"] == "DEQUANTIZE"}
    (head,) = [op for op in ops if op["op_name"] == "FULLY_CONNECTED"]
    weights, bias = (interpreter.get_tensor(stored.get(int(i), int(i))) for i in head["inputs"][1:])
    logits = features @ weights.T.astype(np.float32) + bias.astype(np.float32)
    softmax = np.exp(logits - logits.max(1, keepdims=True))
    softmax /= softmax.sum(1, keepdims=True)
    assert np.allclose(softmax, model.garment_reader.read(pictures)[:, WORN], atol=1e-4)


def test_the_ceiling_scripts_fitted_head_answers_each_photo_from_the_other_folds():
    ceiling = pytest.importorskip("worn_ceiling")
    rng = np.random.default_rng(0)
    labels = np.repeat(WORN, 12)
    centres = rng.normal(size=(len(CLASS_NAMES), 16)) * 4
    features = centres[labels] + rng.normal(size=(len(labels), 16))
    answers = ceiling.fitted_head(features, labels, c=1.0, folds=4, seed=0)
    assert answers.shape == (len(labels), len(CLASS_NAMES))
    assert (np.delete(answers, WORN, axis=1) == 0).all()  # the columns are the classes, not 0..4
    assert ceiling.right(answers, labels) >= 0.9 * len(labels)
    # labels unrelated to the features: the held-out folds read them at about chance
    shuffled = rng.permutation(labels)
    assert ceiling.right(ceiling.fitted_head(features, shuffled, 1.0, 4, 0), shuffled) < 0.45 * len(labels)
