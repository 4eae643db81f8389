"""The model registry (model/registry.py): every model a run may read is declared by its card, resolved
relative to it and verified before any photo is read, in classify and serve alike; each one's sha256 is
part of the settings --resume compares."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from fmnist_batch.cli import Environment, main
from fmnist_batch.model import card as card_module
from fmnist_batch.model import registry
from fmnist_batch.model.card import CARD_FILE, ModelCard, bundled_model_dir
from fmnist_batch.model.card_records import file_sha256
from fmnist_batch.model.runtime import load_model

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def copy_of_bundled(folder: Path) -> Path:
    shutil.copytree(bundled_model_dir(), folder, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return folder


def declared_names() -> list[str]:
    return [declared.name for declared in load_model().declared]


def tamper(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def run(*args: str) -> tuple[int, str]:
    env = Environment(stdout=io.StringIO(), stderr=io.StringIO())
    return main(list(args), env), env.stderr.getvalue()


def test_the_bundled_card_declares_every_model_with_its_licence_and_input():
    declared = {d.name: d for d in load_model().declared}
    assert {"main", "photo", "garment reader", "person face", "person segment"} <= set(declared)
    for model in declared.values():
        assert registry.verify(model) == model.path and model.sha256 == file_sha256(model.path)
        if model.name != "photo card":
            assert model.licence and model.input, model.name


@pytest.mark.parametrize("name", declared_names())
def test_a_tampered_model_in_a_model_folder_stops_classify_and_serve_before_any_row(tmp_path, name):
    folder = copy_of_bundled(tmp_path / "model")
    (path,) = [d.path for d in load_model(folder).declared if d.name == name]
    tamper(path)
    out = tmp_path / "out.csv"
    status, stderr = run("classify", str(SAMPLES), "-o", str(out), "--model", str(folder))
    assert status == 2 and path.name in stderr and "does not match its model card" in stderr
    assert not out.exists() and not Path(f"{out}.partial").exists()
    status, stderr = run("serve", "--model", str(folder), "--port", "0")
    assert status == 2 and path.name in stderr


@pytest.mark.parametrize("name", declared_names())
def test_a_tampered_bundled_model_stops_a_run_of_the_bundled_model(tmp_path, monkeypatch, name):
    folder = copy_of_bundled(tmp_path / "installed")
    monkeypatch.setattr(card_module, "bundled_model_dir", lambda: folder)
    (path,) = [d.path for d in load_model().declared if d.name == name]
    assert path.is_relative_to(folder)
    tamper(path)
    status, stderr = run("classify", str(SAMPLES), "-o", str(tmp_path / "out.csv"))
    assert status == 2 and path.name in stderr


def test_a_model_folder_may_use_the_bundled_person_models_and_they_are_still_checked(tmp_path, monkeypatch):
    installed = copy_of_bundled(tmp_path / "installed")
    monkeypatch.setattr(card_module, "bundled_model_dir", lambda: installed)
    folder = copy_of_bundled(tmp_path / "model")
    shutil.rmtree(folder / "person")
    raw = json.loads((folder / CARD_FILE).read_text())
    raw["person_models"] = {**raw["person_models"], "bundled": True}
    del raw["person_models"]["folder"]
    (folder / CARD_FILE).write_text(json.dumps(raw))
    paths = {d.name: d.path for d in load_model(folder).declared}
    assert paths["person face"].is_relative_to(installed / "person")
    tamper(paths["person face"])
    status, stderr = run("classify", str(SAMPLES), "-o", str(tmp_path / "out.csv"), "--model", str(folder))
    assert status == 2 and "face_detection_short_range.tflite" in stderr


def test_a_model_folder_with_other_person_models_is_read_with_them_and_resume_sees_the_change(tmp_path):
    folder = copy_of_bundled(tmp_path / "model")
    out = tmp_path / "out.csv"
    assert run("classify", str(SAMPLES), "-o", str(out), "--model", str(folder))[0] == 0
    # another valid model file in the face detector's place, its card updated to match
    face = folder / "person" / "face_detection_short_range.tflite"
    shutil.copyfile(folder / "photo" / "model.tflite", face)
    raw = json.loads((folder / CARD_FILE).read_text())
    raw["person_models"]["face"]["sha256"] = file_sha256(face)
    (folder / CARD_FILE).write_text(json.dumps(raw))
    assert load_model(folder).model_hashes["person face"] == file_sha256(face)
    status, stderr = run("classify", str(SAMPLES), "-o", str(out), "--model", str(folder), "--resume")
    assert status == 2 and "settings" in stderr


def test_a_card_without_a_person_entry_uses_the_bundled_ones_checked_against_the_bundled_card(tmp_path):
    folder = copy_of_bundled(tmp_path / "model")
    raw = json.loads((folder / CARD_FILE).read_text())
    del raw["person_models"]
    (folder / CARD_FILE).write_text(json.dumps(raw))
    card = ModelCard.load(folder / CARD_FILE)
    bundled = ModelCard.load(bundled_model_dir() / CARD_FILE)
    assert card.person_file("face") == bundled.person_file("face")
    assert card.person_sha256("segment") == bundled.person_sha256("segment")
