"""The dataset reference: a catalog shot whose garment reads as a Fashion-MNIST image is never other, and
its in_scope says how near it is to the training images."""

from __future__ import annotations

import dataclasses
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from photos import load_fmnist_test_sample, render_catalog_photo
from PIL import Image

from fmnist_batch import Classifier
from fmnist_batch.convert.ink import ink_spread
from fmnist_batch.convert.source import convert_source
from fmnist_batch.engines.predict import stack
from fmnist_batch.model.card import CARD_FILE, ModelCard, ModelError, bundled_model_dir
from fmnist_batch.model.combine import answer
from fmnist_batch.model.dataset_reference import (
    CHUNK,
    DatasetReference,
    in_scope_within,
    load_reference,
    unit_rows,
)
from fmnist_batch.model.runtime import Model


def test_in_scope_within_the_radius_falls_from_one_to_the_floor_at_its_edge():
    assert in_scope_within(0.0, 0.14, 0.27) == 1.0
    assert in_scope_within(0.07, 0.14, 0.27) == pytest.approx(0.635)
    assert in_scope_within(0.14, 0.14, 0.27) == pytest.approx(0.27)
    assert in_scope_within(0.2, 0.14, 0.27) == pytest.approx(0.27)  # never under the floor


def test_distances_are_to_the_nearest_point_whatever_the_logits_length(tmp_path):
    points = np.eye(10, dtype=np.float16)
    np.save(tmp_path / "r.npy", points)
    reference = DatasetReference(tmp_path / "r.npy")
    logits = np.zeros((CHUNK * 2 + 3, 10), np.float32)
    logits[:, 3] = 7.0  # on the point e3, 7 times as long
    logits[1] = [1, 1] + [0] * 8  # halfway between e0 and e1
    logits[2] = -np.eye(10)[5]  # opposite e5: every point is at least sqrt(2) away
    distances = reference.nearest(logits)
    assert distances[0] == pytest.approx(0, abs=1e-3) and distances[-1] == pytest.approx(0, abs=1e-3)
    assert distances[1] == pytest.approx(np.linalg.norm(unit_rows(logits[1:2])[0] - np.eye(10)[0]), abs=1e-3)
    assert distances[2] == pytest.approx(np.sqrt(2), abs=1e-3)
    assert (distances <= 0.1).tolist() == [True, False, False] + [True] * (CHUNK * 2)  # across chunks


def test_a_reference_file_that_is_not_an_array_of_points_is_refused(tmp_path):
    (tmp_path / "r.npy").write_bytes(b"not an array")
    with pytest.raises(ValueError):
        DatasetReference(tmp_path / "r.npy")
    np.save(tmp_path / "p.npy", np.array([{"a": 1}], dtype=object))  # pickles are never loaded
    with pytest.raises(ValueError):
        DatasetReference(tmp_path / "p.npy")


def test_a_reference_made_with_another_network_is_refused(tmp_path):
    card = ModelCard.load(bundled_model_dir() / CARD_FILE)
    assert card.dataset_reference is not None, "the bundled card has a dataset reference"
    raw = {**card.raw, "dataset_reference": {**card.dataset_reference, "network_sha256": "0" * 64}}
    other = ModelCard.from_dict(raw, card.path)
    path = card.path.parent / card.dataset_reference["folder"] / card.dataset_reference["file"]
    with pytest.raises(ModelError, match="another network"):
        load_reference(other, path)


@pytest.fixture(scope="module")
def renders():
    """Fashion-MNIST test images rendered as catalog shots, in varied tints and places, and their labels."""
    sample = load_fmnist_test_sample(120, seed=21)
    if sample is None:
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    rng = np.random.default_rng(3)
    tints = (None, (40, 60, 120), (120, 30, 30), (30, 90, 50), (90, 70, 40))
    photos = [
        render_catalog_photo(
            image,
            size=400,
            tint=tints[i % 5],
            offset=tuple(rng.uniform(-0.1, 0.1, 2)),
            garment_fraction=float(rng.uniform(0.5, 0.8)),
            noise=1.0,
            seed=i,
        )
        for i, image in enumerate(sample[0])
    ]
    return photos, sample[1]


def test_a_shot_read_as_a_dataset_image_is_in_scope_by_its_distance_not_judged(renders, tmp_path):
    rocket = tmp_path / "rocket.png"  # a product on white, which reads as no dataset image
    frame = Image.new("RGB", (400, 400), "white")
    frame.paste(Image.fromarray(skimage.data.rocket()).resize((180, 120)), (110, 140))
    frame.save(rocket)
    photos = [*renders[0], str(rocket)]
    clf = Classifier()
    settings, model = clf.settings, clf.model
    assert settings.reference_files is not None and settings.dataset_radius > 0
    reference = load_reference(model.card, Path(settings.reference_files.points))
    every_photo_judged = dataclasses.replace(settings, dataset_radius=0.0)
    floor = model.other_below(clf.options)
    assert settings.dataset_in_scope_floor == floor, "the floor is the card's operating point"
    reads, read_values = [], []
    for photo, result in zip(photos, clf(photos), strict=True):
        converted = convert_source(photo, every_photo_judged)
        image = np.frombuffer(converted.data, np.uint8).reshape(1, 28, 28)
        distance = reference.nearest(model.predict_logits(image))[0]
        one_ink = ink_spread(_rgb(photo), settings.trim_tolerance) <= settings.dataset_ink_limit
        reads.append(converted.view == "catalog" and distance <= settings.dataset_radius and one_ink)
        if reads[-1]:
            expected = in_scope_within(distance, settings.dataset_radius, floor)
            assert result["in_scope"] == pytest.approx(expected, abs=1e-6) and result["status"] != "other"
            read_values.append((distance, result["in_scope"]))
        else:
            assert result["in_scope"] == pytest.approx(converted.in_scope, abs=1e-6)
    assert len(read_values) >= 2 and not reads[-1]
    # the nearer a shot's image to the training images', the higher its in_scope, never under the floor
    read_values.sort()
    assert all(a[1] >= b[1] >= floor for a, b in itertools.pairwise(read_values))
    assert read_values[0][1] > read_values[-1][1]
    assert clf(str(rocket))["status"] == "other"
    # a stricter point holds for these shots as for any photo: the farthest one becomes other first
    between = (read_values[-1][1] + read_values[-2][1]) / 2
    stricter = Classifier(model=model, other_threshold=between)
    statuses = [r["status"] for r, read in zip(stricter(photos), reads, strict=True) if read]
    assert statuses.count("other") >= 1 and statuses.count("other") < len(statuses)


def _reads_as_dataset_image(clf: Classifier, photo) -> bool:
    """Whether the photo's in_scope is the reference's (in_scope_within its distance), not the judge's."""
    settings, model = clf.settings, clf.model
    converted = convert_source(photo, settings)
    pixels = np.frombuffer(converted.data, np.uint8).reshape(1, 28, 28)
    distance = load_reference(model.card, Path(settings.reference_files.points)).nearest(
        model.predict_logits(pixels)
    )[0]
    if distance > settings.dataset_radius:
        return False
    expected = in_scope_within(distance, settings.dataset_radius, settings.dataset_in_scope_floor)
    judge = convert_source(photo, dataclasses.replace(settings, dataset_radius=0.0)).in_scope
    assert judge is not None and abs(judge - expected) > 1e-6, "the judge and the reference agree: no test"
    return abs(converted.in_scope - expected) <= 1e-6


def _rgb(photo) -> Image.Image:
    return (photo if isinstance(photo, Image.Image) else Image.open(photo)).convert("RGB")


def _in_two_inks(array28: np.ndarray) -> Image.Image:
    """The garment in two colour blocks, red on its left and teal on its right, two inks of about the
    same grey: its 28x28 image is a one-ink render's, its colours no one ink's."""
    red = render_catalog_photo(array28, size=400, tint=(160, 40, 40))
    teal = render_catalog_photo(array28, size=400, tint=(20, 90, 110))
    right_half = Image.new("L", (400, 400), 0)
    right_half.paste(255, (200, 0, 400, 400))
    return Image.composite(teal, red, right_half)


def test_a_shot_in_colours_no_one_ink_gives_is_judged_however_its_silhouette_reads():
    sample = load_fmnist_test_sample(12, seed=8)
    if sample is None:
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    clf = Classifier()
    settings, model = clf.settings, clf.model
    assert settings.dataset_ink_limit is not None, "the bundled card's reference asks the colours"
    reference = load_reference(model.card, Path(settings.reference_files.points))
    judged_within_radius = 0
    for image in sample[0]:
        one, two = render_catalog_photo(image, size=400, tint=(160, 40, 40)), _in_two_inks(image)
        converted = convert_source(two, settings)
        assert converted.in_scope is not None  # judged whatever the reference makes of its 28x28 image
        assert ink_spread(two, settings.trim_tolerance) > settings.dataset_ink_limit
        pixels = np.frombuffer(converted.data, np.uint8).reshape(1, 28, 28)
        if reference.nearest(model.predict_logits(pixels))[0] <= settings.dataset_radius:
            judged_within_radius += 1
            assert _reads_as_dataset_image(clf, one)  # in one ink: read as a dataset image
    assert judged_within_radius >= 3


def test_without_the_reference_in_the_card_the_judge_alone_decides(renders, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(bundled_model_dir(), folder, ignore=shutil.ignore_patterns("reference"))
    raw = json.loads((folder / CARD_FILE).read_text())
    del raw["dataset_reference"]
    (folder / CARD_FILE).write_text(json.dumps(raw))
    clf = Classifier(model=str(folder))
    threshold = clf.model.other_below(clf.options)
    for result in clf(renders[0]):
        assert (result["status"] == "other") == (result["in_scope"] < threshold)


def test_a_reference_that_cannot_be_loaded_is_each_catalog_shots_error_not_a_silent_judge(renders, tmp_path):
    settings = Classifier().settings
    broken = tmp_path / "reference.npy"
    broken.write_bytes(b"not an array")
    files = settings.reference_files._replace(points=str(broken))
    converted = convert_source(renders[0][0], dataclasses.replace(settings, reference_files=files))
    assert converted.data is None and converted.error.startswith(
        f"cannot load the dataset reference {broken}"
    )


def test_an_ink_limit_that_is_no_limit_is_refused_and_a_card_without_one_asks_no_colours(tmp_path):
    raw = json.loads((bundled_model_dir() / CARD_FILE).read_text())
    for broken, says in ((-0.01, "ink_limit must be >= 0"), ("0.05", "ink_limit must be a finite number")):
        raw["dataset_reference"] = {**raw["dataset_reference"], "ink_limit": broken}
        with pytest.raises(ModelError, match=says):
            ModelCard.from_dict(raw, tmp_path / CARD_FILE)
    folder = tmp_path / "model"
    shutil.copytree(bundled_model_dir(), folder)
    raw["dataset_reference"] = {k: v for k, v in raw["dataset_reference"].items() if k != "ink_limit"}
    (folder / CARD_FILE).write_text(json.dumps(raw))
    clf = Classifier(model=str(folder))
    settings = clf.settings
    assert settings.dataset_ink_limit is None and settings.dataset_radius > 0
    sample = load_fmnist_test_sample(12, seed=8)
    if sample is None:
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    reference = load_reference(clf.model.card, Path(settings.reference_files.points))
    read_by_silhouette = 0
    for image in sample[0]:
        converted = convert_source(_in_two_inks(image), settings)
        pixels = np.frombuffer(converted.data, np.uint8).reshape(1, 28, 28)
        within = reference.nearest(clf.model.predict_logits(pixels))[0] <= settings.dataset_radius
        assert _reads_as_dataset_image(clf, _in_two_inks(image)) == within  # the radius alone decides
        read_by_silhouette += within
    assert read_by_silhouette >= 3


def test_the_run_reuses_the_logits_the_reference_computed_and_answers_the_same(renders, monkeypatch):
    clf = Classifier()
    converted = [convert_source(photo, clf.settings) for photo in renders[0][:40]]
    assert sum(c.logits is not None for c in converted) >= 30  # catalog shots in one ink: all read
    batch = stack(converted)
    read = []
    network = Model.predict_logits
    monkeypatch.setattr(Model, "predict_logits", lambda self, x: read.append(len(x)) or network(self, x))
    reused = answer(clf.model, *batch)
    assert sum(read) == sum(c.logits is None for c in converted)  # the network read only the others
    read.clear()
    afresh = answer(clf.model, *batch._replace(logits=[None] * len(converted)))
    assert sum(read) == len(converted)
    np.testing.assert_array_equal(reused.probabilities, afresh.probabilities)
