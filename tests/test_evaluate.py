from __future__ import annotations

import json
import shutil

import pytest
from conftest import render_photos

import fmnist_batch
from fmnist_batch import ClassifyOptions
from fmnist_batch.cli import main
from fmnist_batch.evaluate import (
    EvaluationError,
    OutOfScope,
    evaluate,
    folder_classes,
    read_mapping,
)
from fmnist_batch.labels import CLASS_NAMES, class_index


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """A labelled folder: rendered test photos sorted into subfolders named after their class."""
    root = tmp_path_factory.mktemp("labelled") / "photos"
    for path, label in render_photos(root / "_all", 40, seed=11):
        folder = root / label.lower().replace("/", "-").replace(" ", "-")
        folder.mkdir(exist_ok=True)
        shutil.move(str(path), folder / path.name)
    shutil.rmtree(root / "_all")
    return root


def test_folder_names_match_class_names_loosely(labelled):
    classes = folder_classes(labelled, None)
    assert classes["t-shirt-top"] == {class_index("T-shirt/top")}
    assert all(len(c) == 1 for c in classes.values())


def test_evaluate_scores_each_photo_against_its_folder(labelled):
    # the 10 classes' scoring alone: what the scope judge adds is tests/test_scope.py's
    result = evaluate(labelled, options=ClassifyOptions(other=False))
    rows = list(fmnist_batch.classify(labelled, other=False))
    assert result.files == len(rows) == 40
    expected_correct = sum(
        row["label"].lower().replace("/", "-").replace(" ", "-") in row["path"] for row in rows
    )
    assert result.accuracy == pytest.approx(expected_correct / 40)
    assert result.confusion().sum() == 40
    assert result.accuracy >= 0.95  # rendered catalog photos, the easy case: 39 of 40 measured


def test_a_mapping_accepts_several_classes_and_skips_folders_no_class_fits(labelled, tmp_path):
    root = tmp_path / "photos"
    shutil.copytree(labelled, root)
    shoes = root / "shoes"
    shoes.mkdir()
    for name in ("sandal", "sneaker", "ankle-boot"):
        if (root / name).exists():
            for photo in (root / name).iterdir():
                shutil.move(str(photo), shoes / f"{name}-{photo.name}")
            (root / name).rmdir()
    (root / "hats").mkdir()
    shutil.copy(next(shoes.iterdir()), root / "hats" / "hat.jpg")
    mapping = tmp_path / "mapping.csv"
    lines = ["folder,fmnist_labels", "shoes,Sandal|Sneaker|Ankle boot", "hats,"]
    lines += [
        f"{p.name},{CLASS_NAMES[next(iter(folder_classes(labelled, None)[p.name]))]}"
        for p in labelled.iterdir()
    ]
    mapping.write_text("\n".join(lines) + "\n")
    result = evaluate(root, mapping=mapping)
    assert result.skipped == {"hats": 1}
    shoes_result = next(f for f in result.folders if f.name == "shoes")
    assert shoes_result.accepted == {class_index(n) for n in ("Sandal", "Sneaker", "Ankle boot")}
    assert result.files == 40


def test_bad_folders_and_mappings_are_clear_errors(tmp_path):
    (tmp_path / "gloves").mkdir()
    with pytest.raises(EvaluationError, match=r"gloves.*--mapping"):
        folder_classes(tmp_path, None)
    bad = tmp_path / "bad.csv"
    bad.write_text("folder,fmnist_labels\ngloves,Mittens\n")
    with pytest.raises(EvaluationError, match="unknown class 'Mittens'"):
        read_mapping(bad)
    bad.write_text("name,label\n")
    with pytest.raises(EvaluationError, match="folder,fmnist_labels"):
        read_mapping(bad)
    with pytest.raises(EvaluationError, match="no row for the folder"):
        folder_classes(tmp_path, {"other": frozenset()})


def test_the_evaluate_command_prints_tables_and_writes_json(labelled, tmp_path, capsys):
    assert main(["evaluate", str(labelled), "--json", str(tmp_path / "e.json")]) == 0
    printed = capsys.readouterr()
    assert "accuracy per folder" in printed.err and "confusion" in printed.err
    assert printed.out == ""  # tables are for people: stderr
    figures = json.loads((tmp_path / "e.json").read_text())
    assert figures["files"] == 40 and set(figures["folders"]) == {p.name for p in labelled.iterdir()}
    assert main(["evaluate", str(tmp_path / "nowhere")]) == 2


def test_evaluate_json_to_stdout_lists_the_misclassified_files(labelled, capsys):
    assert main(["evaluate", str(labelled), "--json", "-", "-q"]) == 0
    printed = capsys.readouterr()
    assert printed.err == ""  # -q: no tables
    figures = json.loads(printed.out)
    rows = list(fmnist_batch.classify(labelled))
    wrong = {
        row["path"]
        for row in rows
        if row["label"].lower().replace("/", "-").replace(" ", "-") not in row["path"]
    }
    assert {m["path"] for m in figures["misclassified"]} == wrong
    for mistake in figures["misclassified"]:
        assert mistake["folder"] in mistake["path"] and mistake["label"] in (*CLASS_NAMES, "other")


def test_the_auroc_ranks_in_scope_values_and_a_28x28_image_without_one_as_surely_in_scope():
    out = OutOfScope("other")
    out.in_scope_in += [0.9, 0.8, None]  # None: a 28x28 dataset image, which has no in_scope
    out.add("far", {"status": "ok", "in_scope": 0.85})
    out.add("far", {"status": "other", "in_scope": 0.2})
    out.add("far", {"status": "error", "in_scope": None})
    report = out.to_dict()
    assert report["files"] == 2 and report["errors"] == 1
    assert report["subfolders"]["far"] == {"files": 2, "answered_other": 1, "share": 0.5}
    # 0.9 and the dataset image beat both; 0.8 beats only 0.2
    assert report["auroc_in_scope"] == pytest.approx((2 + 1 + 2) / 6)
    assert report["auroc_in_scope_by_subfolder"] == {"far": pytest.approx(5 / 6)}
    without_judge = OutOfScope("other")
    without_judge.add("far", {"status": "ok"})  # a --no-other row has no in_scope field
    assert without_judge.auroc() is None
