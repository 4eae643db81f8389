"""The model card: what a card may hold, what a reader refuses, and what a written card looks like."""

from __future__ import annotations

import json
import math
import re
from dataclasses import fields
from pathlib import Path

import pytest

from fmnist_batch.convert import ConversionSettings
from fmnist_batch.model import registry
from fmnist_batch.model.card import (
    CARD_FILE,
    CONVERSION_KEYS,
    FlipRecord,
    Metrics,
    ModelCard,
    ModelError,
    PhotoModelDecision,
    Quantization,
    TrainingRecord,
    bundled_model_dir,
)
from fmnist_batch.model.card_build import build_card
from fmnist_batch.model.card_records import portable_path

BUNDLED_CARDS = [bundled_model_dir() / CARD_FILE, bundled_model_dir() / "photo" / CARD_FILE]
#: a word of a string that is an absolute path, or an --option=/absolute/path
ABSOLUTE = re.compile(r"(?:^|\s|=)/[^\s/]")


def absolute_paths(value, where: str = "card") -> list[str]:
    """Every string in a card's JSON (keys too) that holds an absolute path, with where it is."""
    if isinstance(value, str):
        return [f"{where}: {value}"] if ABSOLUTE.search(value) else []
    if isinstance(value, dict):
        return [
            hit
            for key, item in value.items()
            for hit in absolute_paths(key, where) + absolute_paths(item, f"{where}.{key}")
        ]
    if isinstance(value, list):
        return [hit for i, item in enumerate(value) for hit in absolute_paths(item, f"{where}[{i}]")]
    return []


@pytest.fixture
def card_file(tmp_path):
    """A copy of the bundled card (without its photo model) to break."""
    raw = json.loads(BUNDLED_CARDS[0].read_text())
    raw.pop("photo_model")
    path = tmp_path / CARD_FILE
    path.write_text(json.dumps(raw))
    return path


def rewrite(path: Path, change) -> Path:
    raw = json.loads(path.read_text())
    change(raw)
    path.write_text(json.dumps(raw))  # NaN and Infinity are written as JSON's extensions, which json reads
    return path


@pytest.mark.parametrize("path", BUNDLED_CARDS, ids=["main", "photo"])
def test_no_bundled_card_holds_an_absolute_path(path):
    assert absolute_paths(json.loads(path.read_text())) == []


@pytest.mark.parametrize("path", BUNDLED_CARDS, ids=["main", "photo"])
def test_bundled_cards_load_and_their_conversion_builds_the_conversion_settings(path):
    card = ModelCard.load(path)
    assert card.conversion_settings() == {"trim_tolerance": 0.05, "sharpen": True, "invert": "auto"}
    settings = ConversionSettings(**card.conversion_settings())
    assert (settings.trim_tolerance, settings.sharpen, settings.invert) == (0.05, True, "auto")
    assert card.training is not None and card.training.seed == 42
    assert card.metrics.test_accuracy > 0.9


def test_conversion_keys_are_conversion_settings():
    assert set(CONVERSION_KEYS) <= {f.name for f in fields(ConversionSettings)}


def test_a_card_records_other_conversion_settings_too(card_file):
    rewrite(card_file, lambda raw: raw["preprocessing"].update(background="plain", resample="bilinear"))
    conversion = ModelCard.load(card_file).conversion_settings()
    assert conversion["background"] == "plain" and conversion["resample"] == "bilinear"
    assert "input_scale" not in conversion and "flip_average" not in conversion


@pytest.mark.parametrize("temperature", [math.nan, math.inf, -math.inf, 0.0, -1.0, "1.0", True, None])
def test_a_temperature_that_is_not_a_finite_positive_number_is_refused_at_load(card_file, temperature):
    rewrite(card_file, lambda raw: raw.update(temperature=temperature))
    with pytest.raises(ModelError, match="temperature"):
        ModelCard.load(card_file)


@pytest.mark.parametrize("scale", [0.0, math.nan, math.inf, "0.5"])
def test_an_input_scale_that_is_zero_or_not_finite_is_refused(card_file, scale):
    rewrite(card_file, lambda raw: raw["preprocessing"].update(input_scale=scale))
    with pytest.raises(ModelError, match="input_scale"):
        ModelCard.load(card_file)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda raw: raw.pop("format"), "no format"),
        (lambda raw: raw.update(format="fmnist-batch model card v2"), "unsupported format"),
        (lambda raw: raw.pop("temperature"), "missing temperature"),
        (lambda raw: raw.pop("files"), "missing files"),
        (lambda raw: raw["class_names"].reverse(), "other classes"),
        (lambda raw: raw["files"]["tflite"].update(name="../../model.tflite"), "plain name"),
        (lambda raw: raw["files"].pop("tflite_int8"), "litert_file names 'tflite_int8'"),
        (lambda raw: raw.update(photo_model={"folder": "/elsewhere", "card_sha256": "0"}), "plain name"),
        (lambda raw: raw.update(photo_model={"folder": "photo"}), "folder and a card_sha256"),
        (lambda raw: raw.update(training={"seed": 1}), None),  # checked when read, below
    ],
)
def test_a_broken_card_is_refused_with_what_is_wrong(card_file, change, message):
    rewrite(card_file, change)
    if message is None:
        with pytest.raises(ModelError, match="training record is incomplete"):
            _ = ModelCard.load(card_file).training
        return
    with pytest.raises(ModelError, match=re.escape(message)):
        ModelCard.load(card_file)


def test_a_card_that_is_not_json_is_a_model_error(tmp_path):
    (tmp_path / CARD_FILE).write_text("{not json")
    with pytest.raises(ModelError, match="unreadable"):
        ModelCard.load(tmp_path / CARD_FILE)


def test_portable_path_keeps_relative_paths_and_shortens_absolute_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert portable_path("runs/a") == "runs/a"
    assert portable_path(tmp_path / "runs" / "a") == "runs/a"
    assert portable_path("/home/someone/data/photos/train") == "photos/train"
    assert portable_path("/x") == "x"


def _record(**changes) -> TrainingRecord:
    values = dict(
        epochs_requested=1,
        epochs_run=1,
        best_epoch=1,
        train_seconds=1.0,
        train_images=10,
        seed=7,
        batch_size=4,
        learning_rate=0.01,
        augmentation={"level": "light"},
        parameters=100,
        command="fmnist-batch retrain --data /usr/share/datasets/fashion-mnist --out=/srv/models/x",
        limit=None,
        init_from=None,
        extra_data=None,
    )
    return TrainingRecord(**{**values, **changes})


@pytest.fixture
def built(tmp_path, monkeypatch) -> ModelCard:
    """A card built for two made-up model files, from the folder above them."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "m.tflite").write_bytes(b"tflite")
    (folder / "m.keras").write_bytes(b"keras")
    return build_card(
        folder,
        files={"tflite": "m.tflite", "keras": "m.keras"},
        input_scale=1 / 255,
        input_offset=0.0,
        temperature=1.5,
        flip_on=True,
        flip_below=0.9,
        flip=FlipRecord(setting="auto", validation_accuracy_single=0.5, validation_accuracy_flip=0.6),
        conversion={"trim_tolerance": 0.05, "sharpen": True, "invert": "auto"},
        metrics=Metrics(validation_accuracy=0.6, test_accuracy=0.55),
        training=_record(),
        versions={"python": "3"},
        dataset_source="/usr/share/datasets/fashion-mnist",
        dataset_sha256={"a.gz": "0" * 64},
    )


def test_a_built_card_is_written_atomically_without_absolute_paths_and_reads_back(built, tmp_path):
    written = built.write()
    assert sorted(p.name for p in written.path.parent.iterdir()) == ["m.keras", "m.tflite", CARD_FILE]
    raw = json.loads(written.path.read_text())
    assert absolute_paths(raw) == []
    assert raw["training"]["command"] == ("fmnist-batch retrain --data datasets/fashion-mnist --out=models/x")
    loaded = ModelCard.load(written.path)
    assert loaded.to_dict() == raw
    assert registry.verify(registry.network(loaded, "tflite", "main")) == tmp_path / "out" / "m.tflite"
    assert loaded.flip_record.validation_accuracy_flip == 0.6 and loaded.flip_record.below is None
    assert "below" not in raw["flip_average"]  # keys later cards added stay out while unset
    assert raw["training"]["best_epoch"] == 1 and raw["training"]["init_from"] is None
    assert loaded.training == _record(command=raw["training"]["command"])


def test_a_card_refuses_to_be_built_with_a_bad_temperature_or_unknown_conversion(built):
    with pytest.raises(ModelError, match="temperature"):
        ModelCard.from_dict({**built.to_dict(), "temperature": math.nan}, built.path)
    with pytest.raises(ValueError, match="not conversion settings: colour"):
        build_card(
            built.path.parent,
            files={"tflite": "m.tflite"},
            input_scale=1.0,
            input_offset=0.0,
            temperature=1.0,
            flip_on=False,
            flip_below=None,
            flip=built.flip_record,
            conversion={"colour": "red"},
            metrics=Metrics(),
            training=_record(),
            versions={},
            dataset_source="d",
            dataset_sha256={},
        )


def test_derived_cards_leave_the_original_as_it_was(built):
    before = json.dumps(built.to_dict())
    (built.path.parent / "m.int8.tflite").write_bytes(b"int8")
    record = Quantization(
        setting="auto",
        method="m",
        tolerance=0.001,
        validation_accuracy_float=0.5,
        validation_accuracy_int8=0.5,
    )
    card = (
        built.with_files(tflite_int8="m.int8.tflite")
        .with_quantization(record, "tflite_int8")
        .with_metrics(int8_test_accuracy=0.54)
    )
    assert json.dumps(built.to_dict()) == before
    assert card.litert_file == "tflite_int8" and card.quantization == record
    assert card.metrics.int8_test_accuracy == 0.54 and card.metrics.test_accuracy == 0.55
    assert card.test_accuracy("tflite_int8") == 0.54 and card.test_accuracy("tflite") == 0.55
    registry.verify(registry.network(card, "tflite_int8", "main"))
    with pytest.raises(TypeError):
        built.with_metrics(accuracy_of_everything=1.0)


def test_a_photo_model_is_named_by_its_card_hash_and_dropped_when_not_attached(built):
    folder = built.path.parent / "photo"
    folder.mkdir()
    (folder / "m.tflite").write_bytes(b"photo tflite")
    photo = build_card(folder, files={"tflite": "m.tflite"}, **_same_as(built)).write()
    decision = PhotoModelDecision(
        photo_model_command="fmnist-batch retrain --extra-data /data/photos/train",
        held_out_photos=10,
        segmented_photos=8,
        segmented_accuracy_main=0.5,
        segmented_accuracy_photo=0.75,
        not_segmented_photos=2,
        not_segmented_accuracy_main=0.5,
        not_segmented_accuracy_photo=0.5,
        attached=True,
    )
    paired = built.with_photo_model(decision, photo).write()
    assert registry.verify(registry.photo_card(paired)) == photo.path
    assert paired.photo_model_decision.segmented_photos == 8
    assert paired.photo_model_decision.photo_model_command.endswith("--extra-data photos/train")
    unpaired = paired.with_photo_model(decision, None)
    assert unpaired.photo_model is None and "photo_model" not in unpaired.to_dict()


def _same_as(card: ModelCard) -> dict:
    return dict(
        input_scale=card.input_scale,
        input_offset=card.input_offset,
        temperature=card.temperature,
        flip_on=card.flip_average,
        flip_below=card.flip_average_below,
        flip=card.flip_record,
        conversion=card.conversion_settings(),
        metrics=card.metrics,
        training=card.training,
        versions={},
        dataset_source="d",
        dataset_sha256={},
    )
