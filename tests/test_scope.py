"""Photos of none of the 10 classes are answered other (model/scope_judge.py, convert/scope.py,
model/combine.py, outputs/rows.py): in every output, in resume and merge, in evaluate; Fashion-MNIST's
own images and in-scope photos are not; --no-other gives the rows of a run without a judge, byte for
byte; the conversion workers judge the photos, as the in-process conversion does, and the main process
never loads the judge."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skimage.data
from photos import cc0_photos, load_fmnist_test_sample
from PIL import Image

from fmnist_batch import Classifier
from fmnist_batch.cli import Environment, main
from fmnist_batch.convert import ConversionSettings
from fmnist_batch.convert.decode import load_image, to_rgb
from fmnist_batch.convert.garment import judge_picture, judge_subject, on_white_square
from fmnist_batch.convert.source import convert_source
from fmnist_batch.labels import CLASS_NAMES
from fmnist_batch.model import scope_judge
from fmnist_batch.model.card import CARD_FILE, ModelCard, ModelError, bundled_model_dir
from fmnist_batch.model.scope_judge import ScopeJudge
from fmnist_batch.options import ClassifyOptions
from fmnist_batch.outputs.formats import read_rows

#: photos scikit-image ships (public domain, CC0), of none of the 10 classes: a clock and coins (the
#: folders below), and a cup of coffee, a rocket and a cat
OUT_OF_SCOPE = ("clock", "coins")
LICENSED_OTHER = (*OUT_OF_SCOPE, "coffee", "rocket", "chelsea")


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier()


@pytest.fixture(scope="module")
def threshold() -> float:
    card = ModelCard.load(bundled_model_dir() / CARD_FILE)
    assert card.scope_judge is not None, "the bundled card names a scope judge"
    return float(card.scope_judge["threshold"])


@pytest.fixture
def mixed(tmp_path) -> Path:
    """A folder of two out-of-scope photos and three Fashion-MNIST test images as 28x28 PNGs."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in OUT_OF_SCOPE:
        Image.fromarray(getattr(skimage.data, name)()).save(folder / f"{name}.png")
    sample = load_fmnist_test_sample(3, seed=4)
    if sample is None:
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    for i, image in enumerate(sample[0]):
        Image.fromarray(image).save(folder / f"fmnist-{i}.png")
    return folder


def run(*args: str) -> int:
    return main(list(args), Environment(stdout=io.StringIO(), stderr=io.StringIO()))


def test_licensed_out_of_scope_photos_are_answered_other(clf, threshold):
    for name in LICENSED_OTHER:
        result = clf(getattr(skimage.data, name)())
        assert (result["label"], result["status"]) == ("other", "other"), name
        assert 0 <= result["in_scope"] < threshold and result["score"] == pytest.approx(
            1 - result["in_scope"]
        )
        assert result["top_k"][0]["label"] in CLASS_NAMES  # the 10 classes still ranked


def on_white_frame(name: str, side: int = 300, share: float = 0.3) -> Image.Image:
    """scikit-image's photo `name` shot as a product is: small, in the middle of a plain white frame."""
    photo = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
    photo.thumbnail((int(side * share), int(side * share)))
    frame = Image.new("RGB", (side, side), (255, 255, 255))
    frame.paste(photo, ((side - photo.width) // 2, (side - photo.height) // 2))
    return frame


def test_the_judge_reads_a_product_on_white_cut_to_its_box_not_the_white_around_it(clf, threshold):
    frame = on_white_frame("coffee")
    judge = ScopeJudge(clf.model.scope_judge_file)
    cut = judge.in_scope(judge_picture(frame, judge.side))
    whole = judge.in_scope(on_white_square(frame, judge.side))  # a cup in a tenth of a picture of white
    assert cut < threshold < whole


def test_in_scope_ranks_other_photos_below_in_scope_ones(clf):
    garments = [r["in_scope"] for r in clf([str(p) for p in cc0_photos("validation", 30, seed=9)])]
    typical = float(np.median([value for value in garments if value is not None]))
    for name in LICENSED_OTHER:
        assert clf(getattr(skimage.data, name)())["in_scope"] < typical / 2, name


def test_fashion_mnist_images_are_never_other():
    sample = load_fmnist_test_sample(200, seed=11)
    if sample is None:
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    results = Classifier()(list(sample[0]))
    assert all(r["status"] != "other" and r["in_scope"] is None for r in results)  # not read by the judge
    accuracy = np.mean([r["label"] == CLASS_NAMES[y] for r, y in zip(results, sample[1], strict=True)])
    assert accuracy > 0.85


def test_in_scope_cc0_photos_are_rarely_other(clf):
    results = clf([str(p) for p in cc0_photos("validation", 40, seed=8) if "/hat/" not in str(p)])
    in_scope = [r for r in results if r["status"] != "error"]
    assert sum(r["status"] == "other" for r in in_scope) <= 0.1 * len(in_scope)


def test_a_blank_photo_is_other_with_in_scope_zero(clf):
    result = clf(np.full((800, 600, 3), (224, 172, 140), np.uint8))
    assert result["status"] == "other" and result["in_scope"] == 0.0


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_other_in_every_output_format(mixed, tmp_path, threshold, suffix):
    out = tmp_path / f"out{suffix}"
    assert run("classify", str(mixed), "-o", str(out), "-q") == 0
    rows = {Path(row["path"]).stem: row for row in read_rows(str(out))}
    for name in OUT_OF_SCOPE:
        row = rows[name]
        assert (row["label"], row["status"]) == ("other", "other") and float(row["in_scope"]) < threshold
        assert row["top1_label"] in CLASS_NAMES
    for i in range(3):
        assert rows[f"fmnist-{i}"]["label"] in CLASS_NAMES and rows[f"fmnist-{i}"]["in_scope"] in ("", None)


def test_the_summary_counts_other(mixed, tmp_path):
    env = Environment(stdout=io.StringIO(), stderr=io.StringIO())
    assert main(["classify", str(mixed), "-o", str(tmp_path / "out.csv")], env) == 0
    summary = env.stderr.getvalue()
    assert "other (none of the 10)" in summary and "│ other " in summary


def test_no_other_gives_the_rows_of_a_card_without_a_judge_byte_for_byte(mixed, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(bundled_model_dir(), folder, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    raw = json.loads((folder / CARD_FILE).read_text())
    del raw["scope_judge"]
    (folder / CARD_FILE).write_text(json.dumps(raw))
    photos = [str(p) for p in cc0_photos("validation", 12, seed=2)] + [str(mixed)]
    assert run("classify", *photos, "-o", str(tmp_path / "no-other.csv"), "--no-other", "-q") == 0
    assert run("classify", *photos, "-o", str(tmp_path / "without.csv"), "--model", str(folder), "-q") == 0
    without = (tmp_path / "without.csv").read_bytes()
    assert (tmp_path / "no-other.csv").read_bytes() == without and b"in_scope" not in without


def test_resume_keeps_other_rows_and_refuses_other_settings(mixed, tmp_path):
    out = tmp_path / "out.csv"
    assert run("classify", str(mixed), "-o", str(out), "-q") == 0
    before = out.read_bytes()
    assert run("classify", str(mixed), "-o", str(out), "-q", "--resume") == 0
    assert out.read_bytes() == before
    assert run("classify", str(mixed), "-o", str(out), "-q", "--resume", "--other-threshold", "0.9") == 2
    assert run("classify", str(mixed), "-o", str(out), "-q", "--resume", "--no-other") == 2
    # a higher operating point answers other more often, never less
    higher = tmp_path / "higher.csv"
    assert run("classify", str(mixed), "-o", str(higher), "-q", "--other-threshold", "0.99") == 0
    assert (pd.read_csv(higher)["status"] == "other").sum() >= (pd.read_csv(out)["status"] == "other").sum()


def test_shards_with_other_rows_merge(mixed, tmp_path):
    parts = [tmp_path / "l-1.jsonl", tmp_path / "l-2.jsonl"]
    for i, part in enumerate(parts, start=1):
        assert run("classify", str(mixed), "--shard", f"{i}/2", "-o", str(part), "-q") == 0
    merged = tmp_path / "merged.jsonl"
    assert run("merge", str(merged), *map(str, parts)) == 0
    rows = pd.read_json(merged, lines=True)
    assert len(rows) == 5 and (rows["status"] == "other").sum() == 2 and "in_scope" in rows


def test_evaluate_reports_the_other_folder(tmp_path, catalog):
    root = tmp_path / "labelled"
    for path, label in catalog[:12]:
        folder = root / label.replace("/", "-")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, folder)
    for name, group in zip(OUT_OF_SCOPE, ("clocks", "coins"), strict=True):
        (root / "other" / group).mkdir(parents=True)
        Image.fromarray(getattr(skimage.data, name)()).save(root / "other" / group / f"{name}.png")
    out = io.StringIO()
    assert (
        main(["evaluate", str(root), "--json", "-", "-q"], Environment(stdout=out, stderr=io.StringIO())) == 0
    )
    figures = json.loads(out.getvalue())
    scope = figures["out_of_scope"]
    assert scope["files"] == 2 and scope["share_answered_other"] == 1.0
    assert scope["subfolders"]["coins"] == {"files": 1, "answered_other": 1, "share": 1.0}
    assert 0.5 < scope["auroc_in_scope"] <= 1.0
    answered_other = sum(f["answered_other"] for f in figures["folders"].values())
    right = sum(f["accuracy"] * f["files"] for f in figures["folders"].values())
    assert figures["files"] == 12 and right <= 12 - answered_other + 1e-9  # other counts as wrong


@pytest.fixture
def pooled_folder(mixed) -> Path:
    """36 CC0 photos (among them hats, shorts and skirts) beside the mixed folder's five: enough files
    for classify to convert them in a pool of workers."""
    for i, photo in enumerate(cc0_photos("validation", 36, seed=5)):
        shutil.copy(photo, mixed / f"cc0-{i:02d}{photo.suffix}")
    return mixed


def in_scope_by_name(rows) -> dict[str, float | None]:
    return {
        Path(row["path"]).name: None if row["in_scope"] in ("", None) else float(row["in_scope"])
        for row in rows
    }


def test_a_pool_and_an_in_process_run_judge_every_photo_alike(pooled_folder, tmp_path, threshold):
    files = sorted(pooled_folder.iterdir())
    assert len(files) >= 32  # classify converts as many in its worker pool
    judged = {}
    for workers in ("2", "1"):
        out = tmp_path / f"workers-{workers}.csv"
        assert run("classify", str(pooled_folder), "-o", str(out), "--workers", workers, "-q") == 0
        judged[workers] = in_scope_by_name(read_rows(str(out)))
    results = Classifier(workers=1)([str(f) for f in files])  # the library, one photo at a time
    judged["classifier"] = {f.name: r["in_scope"] for f, r in zip(files, results, strict=True)}
    assert judged["2"] == judged["1"] == judged["classifier"]
    values = [v for v in judged["2"].values() if v is not None]
    assert len(values) == len(files) - 3  # the three 28x28 dataset images are never judged
    assert min(values) < threshold < max(values)


def test_the_judge_runs_in_the_workers_and_never_in_the_main_process(pooled_folder, tmp_path, monkeypatch):
    main_pid, in_main = os.getpid(), []
    load, read = scope_judge.ScopeJudge.__init__, scope_judge.ScopeJudge.read

    def loaded_here(self, *args, **kwargs):
        if os.getpid() == main_pid:
            in_main.append("load")
        load(self, *args, **kwargs)

    def read_here(self, pictures, look=scope_judge.FIRST_LOOK):
        if os.getpid() == main_pid:
            in_main.append("read")
        return read(self, pictures, look)

    monkeypatch.setattr(scope_judge.ScopeJudge, "__init__", loaded_here)
    monkeypatch.setattr(scope_judge.ScopeJudge, "read", read_here)
    scope_judge.forget_scope_judges()
    out = tmp_path / "out.csv"
    assert run("classify", str(pooled_folder), "-o", str(out), "--workers", "2", "-q") == 0
    assert in_main == []
    judged = [v for v in in_scope_by_name(read_rows(str(out))).values() if v is not None]
    assert len(judged) == len(list(pooled_folder.iterdir())) - 3  # ... yet every photo was judged


def judged_alone(path: str, photo: Path, side: int, look: int = scope_judge.FIRST_LOOK) -> float:
    """in_scope of a photo file by one look of a judge file, read as the conversion decodes it."""
    return ScopeJudge(path).in_scope(judge_picture(to_rgb(load_image(photo)), side), look)


def test_the_second_look_answers_for_the_photos_the_judge_doubts_and_only_for_them(clf, tmp_path):
    settings = clf.model.conversion_settings(ClassifyOptions())
    assert settings.scope_second_side > settings.scope_side
    doubted = tmp_path / "coffee.png"
    Image.fromarray(skimage.data.coffee()).save(doubted)
    trusted = next(p for p in cc0_photos("validation", 40, seed=3) if "/t-shirt/" in str(p))
    first = {photo: judged_alone(settings.scope_judge, photo, settings.scope_side)
             for photo in (doubted, trusted)}  # fmt: skip
    assert first[doubted] < settings.scope_ask_below <= first[trusted]
    second_look = (settings.scope_second_side, scope_judge.SECOND_LOOK)
    second = judged_alone(settings.scope_judge, doubted, *second_look)
    assert second != pytest.approx(first[doubted], abs=1e-3)  # a different answer, so which one is seen
    assert convert_source(str(doubted), settings).in_scope == pytest.approx(second, abs=1e-6)
    assert convert_source(str(trusted), settings).in_scope == pytest.approx(first[trusted], abs=1e-6)
    without = dataclasses.replace(settings, scope_second_side=0)
    assert convert_source(str(doubted), without).in_scope == pytest.approx(first[doubted], abs=1e-6)


def one_head_judge(folder: Path) -> ScopeJudge:
    """A judge file with a single look: a picture of any side in, one in_scope column out."""
    keras = pytest.importorskip("keras")
    tf = pytest.importorskip("tensorflow")
    inputs = keras.Input((16, 16, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(pooled))
    path = folder / "one_head.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return ScopeJudge(path)


def test_both_looks_are_one_network_read_at_two_sides_by_one_interpreter(clf, tmp_path):
    """The second look resizes the one interpreter and puts it back: a first look after it answers as
    before it, and a file with one head refuses a second look instead of reading another column."""
    settings = clf.model.conversion_settings(ClassifyOptions())
    judge = ScopeJudge(settings.scope_judge)
    assert judge.looks == 2 and judge.side == settings.scope_side
    photo = judge_subject(to_rgb(Image.fromarray(skimage.data.coffee())))
    sides = (settings.scope_side, settings.scope_second_side)
    small, large = (on_white_square(photo, side) for side in sides)
    before = judge.in_scope(small)
    second = judge.in_scope(large, scope_judge.SECOND_LOOK)
    assert judge.side == settings.scope_side and judge.in_scope(small) == before
    assert judge.in_scope(large) != pytest.approx(second, abs=1e-3)  # each look has its own head
    with pytest.raises(ModelError, match="1 look"):
        one_head_judge(tmp_path).in_scope(large, scope_judge.SECOND_LOOK)


def test_a_second_look_that_could_leave_a_photo_unasked_below_the_operating_point_is_refused(tmp_path):
    raw = json.loads((bundled_model_dir() / CARD_FILE).read_text())
    look = raw["scope_judge"]["second_look"]
    below_the_point = {**look, "ask_below": raw["scope_judge"]["threshold"] / 2}
    sideless = {k: v for k, v in look.items() if k != "side"}
    for broken, says in ((below_the_point, "ask_below must be"), (sideless, "needs its input side")):
        raw["scope_judge"]["second_look"] = broken
        (tmp_path / CARD_FILE).write_text(json.dumps(raw))
        with pytest.raises(ModelError, match=says):
            ModelCard.load(tmp_path / CARD_FILE)


def test_a_judge_that_cannot_be_loaded_is_each_photos_error_not_a_silent_pass(tmp_path):
    broken = tmp_path / "scope.tflite"
    broken.write_bytes(b"not a model")
    settings = ConversionSettings(scope_side=128, scope_judge=str(broken))
    photo = Image.fromarray(skimage.data.coffee())
    converted = convert_source(photo, settings)
    assert converted.data is None and converted.error.startswith(f"cannot load the scope judge {broken}")
    assert "scope_judge" not in settings.record() and settings.record()["scope_side"] == 128
