"""fmnist_batch.Classifier: every input kind, the same answer as the CLI's row, and the job from Python."""

from __future__ import annotations

import csv
import io
import os
import re

import numpy as np
import pytest
from photos import cc0_photos
from PIL import Image

import fmnist_batch
from fmnist_batch import Classifier, ClassifyOptions
from fmnist_batch.cli import Environment, main
from fmnist_batch.labels import CLASS_NAMES


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier(top_k=3)


def cli_rows(tmp_path, *args: str) -> list[dict]:
    out = tmp_path / "out.csv"
    env = Environment(stdout=io.StringIO(), stderr=io.StringIO())
    assert main(["classify", *args, "-o", str(out), "-q"], env) == 0
    with open(out, newline="") as file:
        return list(csv.DictReader(file))


def test_every_input_kind_gets_the_cli_rows_answer(catalog, tmp_path):
    # the scope judge aside: an image the caller decoded at full scale gives it other pixels than the
    # file's reduced decode, which may cross its operating point (the PIL test below covers the judge)
    clf = Classifier(top_k=3, other=False)
    photos = [path for path, _ in catalog[:8]]
    rows = cli_rows(tmp_path, *map(str, photos), "--no-other")
    for path, row in zip(photos, rows, strict=True):
        with Image.open(path) as opened:
            image = opened.copy()
        kinds = {"path": str(path), "pathlib": path, "bytes": path.read_bytes(), "PIL": image}
        if image.mode in ("L", "RGB", "RGBA"):  # H x W, H x W x 3, H x W x 4
            kinds["array"] = np.asarray(image)
        for kind, value in kinds.items():
            result = clf(value)
            assert result["label"] == row["label"], kind
            # A file is decoded as the CLI decodes it: the same numbers. An image the caller decoded (a
            # JPEG at full scale, not at the reduced scale classify decodes it) may differ in the pixels.
            exact = kind in ("path", "pathlib", "bytes") or path.suffix not in (".jpg", ".jpeg")
            tolerance = 1e-6 if exact else 0.02
            assert result["score"] == pytest.approx(float(row["confidence"]), abs=tolerance), kind
            if exact:
                assert [t["label"] for t in result["top_k"]] == [row[f"top{k}_label"] for k in (1, 2, 3)]
            assert result["status"] == row["status"] and result["segmented"] in (True, False)


def test_a_photo_opened_with_pil_gets_the_cli_rows_answer(clf, tmp_path):
    photos = cc0_photos("validation", 40, seed=3)  # real JPEGs of every kind: catalog, segmented, worn
    rows = cli_rows(tmp_path, *map(str, photos))
    for path, row in zip(photos, rows, strict=True):
        with Image.open(path) as opened:
            result = clf(opened)
        assert (result["label"], result["view"] or "") == (row["label"], row["view"]), path
        assert result["score"] == pytest.approx(float(row["confidence"]), abs=0.01), path


def test_arrays_of_each_shape_are_read_as_their_image(clf, catalog):
    with Image.open(catalog[0][0]) as image:
        rgb = image.convert("RGB")
    for converted in (rgb, rgb.convert("L"), rgb.convert("RGBA")):
        assert clf(np.asarray(converted))["score"] == pytest.approx(clf(converted)["score"], abs=1e-6)


def test_a_list_gives_a_list_in_order_and_a_bad_input_an_error_result(clf, catalog):
    photos = [str(p) for p, _ in catalog[:3]]
    results = clf([photos[0], b"not an image", photos[2]])
    assert [r["label"] for r in results[::2]] == [clf(photos[0])["label"], clf(photos[2])["label"]]
    assert results[1]["status"] == "error" and results[1]["label"] is None and results[1]["error"]


def test_bad_inputs_in_a_list_get_error_results_with_the_reason(clf, catalog):
    bad = {
        "give a path, a PIL image": 42,
        "uint8": np.zeros((28, 28), np.float32),
        r"H x W": np.zeros((2, 28, 28, 3), np.uint8),
        r"empty image \(0 x 0": np.zeros((0, 0), np.uint8),
        r"empty image \(0 x 5": np.zeros((5, 0, 3), np.uint8),
        r"empty image \(0 x 0 pixels": Image.new("RGB", (0, 0)),
        "not an image": b"not an image",
    }
    good = str(catalog[0][0])
    results = clf([good, *bad.values(), good])
    assert results[0] == results[-1] and results[0]["status"] == "ok"
    for reason, result in zip(bad, results[1:-1], strict=True):
        assert result["status"] == "error" and result["label"] is None, reason
        assert re.search(reason, result["error"]), (reason, result["error"])


def test_a_fifo_times_out_as_in_the_cli(tmp_path):
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)  # open() blocks until a writer comes, which never does
    result = Classifier(timeout=0.5)(str(fifo))
    assert result["status"] == "error" and "took longer than 0.5 s" in result["error"]


def test_wrong_keywords_are_refused_with_the_reason():
    with pytest.raises(TypeError, match="unknown classify option"):
        Classifier(colour="red")
    with pytest.raises(TypeError, match=r"fmnist_batch\.Classifier"):
        list(fmnist_batch.classify(Image.new("RGB", (8, 8))))


def test_every_option_that_shapes_a_result_is_a_keyword(catalog):
    path = str(catalog[0][0])
    assert len(Classifier(top_k=5)(path)["top_k"]) == 5
    assert Classifier(min_confidence=1.0)(path)["status"] == "uncertain"
    assert Classifier(background="segment")(path)["segmented"] is True
    assert Classifier(background="plain")(path)["segmented"] is False


def test_classify_folder_streams_the_cli_rows(clf, catalog, tmp_path):
    folder = catalog[0][0].parent
    expected = cli_rows(tmp_path, str(folder))
    rows = list(clf.classify_folder(folder))
    assert [r["path"] for r in rows] == [r["path"] for r in expected]
    assert [r["label"] for r in rows] == [r["label"] for r in expected]


def test_classify_folder_with_an_output_runs_the_whole_job(clf, catalog, tmp_path):
    folder = catalog[0][0].parent
    out = tmp_path / "labels.jsonl"
    result = clf.classify_folder(folder, output=str(out))
    assert result.summary.total == len(list(folder.iterdir())) == len(out.read_text().splitlines())
    again = clf.classify_folder(folder, output=str(out), resume=True)
    # the summary covers the whole output: every row carried over, none classified again
    assert again.summary.total == again.summary.carried == result.summary.total


def test_the_module_level_classify_keeps_its_keywords(catalog):
    path = str(catalog[0][0])
    (row,) = fmnist_batch.classify(path, top_k=2, background="plain")
    assert row["label"] in CLASS_NAMES and "top2_label" in row and "top3_label" not in row
    assert fmnist_batch.ClassifyOptions is ClassifyOptions


def test_options_resolve_conversion_settings_argument_then_card_then_default():
    card = {"invert": "never", "trim_tolerance": 0.1}
    assert ClassifyOptions().conversion_settings(card).invert == "never"
    assert ClassifyOptions(invert="always").conversion_settings(card).invert == "always"
    assert ClassifyOptions().conversion_settings(card).trim_tolerance == 0.1
    assert ClassifyOptions().conversion_settings({}).trim_tolerance == 0.05


@pytest.mark.parametrize(
    ("size", "colour"), [((600, 800), (224, 172, 140)), ((20000, 1), (255, 255, 255)), ((1, 1), (0, 0, 0))]
)
def test_a_blank_or_uniform_image_is_never_a_confident_class(size, colour, tmp_path):
    path = tmp_path / "blank.png"
    Image.new("RGB", size, colour).save(path)
    plain = Classifier(other=False, min_confidence=0.0)(str(path))
    assert plain["status"] == "uncertain" and plain["label"] in CLASS_NAMES
    rows = cli_rows(tmp_path, str(path), "--no-other", "--min-confidence", "0")
    assert rows[0]["status"] == "uncertain"


def test_the_default_min_confidence_is_the_cards_and_zero_gives_none(tmp_path):
    from fmnist_batch.model.card import ModelCard, bundled_model_dir

    record = ModelCard.load(bundled_model_dir() / "model_card.json").uncertain_below
    assert record is not None and 0 < record.value < 1 and "wrong" in record.rule
    photos = cc0_photos("validation", 30, seed=5)
    default = cli_rows(tmp_path, *map(str, photos), "--no-other")
    zero = cli_rows(tmp_path, *map(str, photos), "--no-other", "--min-confidence", "0")
    assert [r["label"] for r in default] == [r["label"] for r in zero]
    assert {r["status"] for r in zero} == {"ok"}
    for row in default:
        assert row["status"] == ("uncertain" if float(row["confidence"]) < record.value else "ok")
    assert any(row["status"] == "uncertain" for row in default)


def test_uncertain_below_is_where_answers_become_more_often_wrong_than_right():
    from fmnist_batch.training.choose import uncertain_below

    confidence = np.array([0.2, 0.3, 0.42, 0.45, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99])
    right = np.array([0, 0, 1, 0, 1, 1, 1, 1, 0, 1], bool)
    # below 0.45: 1 of 3 right; below 0.5: 1 of 4; below 0.55: 2 of 5 (still < half); below 0.75: 3 of 6
    # (half: not less); above, more and more right. No answer falls between 0.5 and 0.7, so the rule takes
    assert uncertain_below(confidence, right)[:2] == (0.7, 0.4)  # the grid's last value before 0.7
    assert uncertain_below(confidence, np.ones(10, bool))[0] == 0.0
