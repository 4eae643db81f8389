"""A model card's photo model: segmented photos go to it, everything else to the main model."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil

import numpy as np
import pytest
from photos import render_garment_photo

from fmnist_batch.cli import Environment, main
from fmnist_batch.convert import ConversionSettings, convert_image
from fmnist_batch.model.card import ModelError, bundled_model_dir
from fmnist_batch.model.combine import predict_where
from fmnist_batch.model.logits import softmax
from fmnist_batch.model.runtime import load_model

#: The stand-in photo model is the bundled one at this temperature: nearly uniform probabilities, so a
#: row's confidence shows which model classified it.
FLAT = 50.0


def _copy_bundled(target):
    shutil.copytree(bundled_model_dir(), target, ignore=shutil.ignore_patterns("__init__.py", "__pycache__"))
    shutil.rmtree(target / "photo", ignore_errors=True)
    card = json.loads((target / "model_card.json").read_text())
    card.pop("photo_model", None)
    (target / "model_card.json").write_text(json.dumps(card))
    return target


@pytest.fixture
def paired(tmp_path):
    """The bundled model with a photo model that is itself at temperature FLAT."""
    main_dir = _copy_bundled(tmp_path / "paired")
    photo_dir = _copy_bundled(main_dir / "photo")
    photo_card = json.loads((photo_dir / "model_card.json").read_text())
    photo_card["temperature"] = FLAT
    (photo_dir / "model_card.json").write_text(json.dumps(photo_card))
    card = json.loads((main_dir / "model_card.json").read_text())
    digest = hashlib.sha256((photo_dir / "model_card.json").read_bytes()).hexdigest()
    card["photo_model"] = {"folder": "photo", "card_sha256": digest}
    (main_dir / "model_card.json").write_text(json.dumps(card))
    return main_dir


def test_convert_image_says_whether_it_segmented_the_photo():
    cluttered, _ = render_garment_photo(background="clutter", seed=3)
    catalog, _ = render_garment_photo(background="plain", seed=3)
    assert convert_image(cluttered).segmented
    assert not convert_image(catalog).segmented
    assert not convert_image(cluttered, ConversionSettings(background="plain")).segmented
    assert convert_image(catalog, ConversionSettings(background="segment")).segmented


def test_segmented_rows_go_to_the_photo_model_and_the_rest_to_the_main_one(paired):
    images = np.random.default_rng(0).integers(0, 256, (6, 28, 28), dtype=np.uint8)
    segmented = np.array([True, False, False, True, False, True])
    model = load_model(paired, backend="litert")
    single = load_model(paired, backend="litert", use_photo_model=False)
    main_probs = single.predict_proba(images)
    # catalog-only batches never load the photo model
    np.testing.assert_allclose(model.predict_proba(images, np.zeros(6, bool)), main_probs, atol=1e-6)
    assert model._photo_model is None

    routed = model.predict_proba(images, segmented)
    np.testing.assert_allclose(routed[~segmented], main_probs[~segmented], atol=1e-6)
    flat = softmax(model.photo_model.predict_logits(images[segmented]), FLAT)
    np.testing.assert_allclose(routed[segmented], flat, atol=1e-6)
    assert routed[segmented].max() < 0.2 < main_probs.max()
    # without the photo model, or without flags, every row is the main model's
    np.testing.assert_allclose(single.predict_proba(images, segmented), main_probs, atol=1e-6)
    np.testing.assert_allclose(model.predict_proba(images), main_probs, atol=1e-6)
    with pytest.raises(ValueError, match="one flag per image"):
        model.predict_proba(images, segmented[:3])


def test_a_photo_model_other_than_the_cards_is_refused_at_load(paired):
    photo_card = paired / "photo" / "model_card.json"
    photo_card.write_text(photo_card.read_text().replace(f"{FLAT}", "1.5"))
    with pytest.raises(ModelError, match="does not match its model card"):
        load_model(paired)
    load_model(paired, use_photo_model=False)  # still usable without it
    shutil.rmtree(paired / "photo")
    with pytest.raises(ModelError, match="not found"):
        load_model(paired)


def test_classify_sends_only_segmented_photos_to_the_photo_model(paired, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed in range(3):
        render_garment_photo(background="clutter", seed=seed)[0].save(folder / f"floor-{seed}.jpg")
        render_garment_photo(background="plain", seed=seed)[0].save(folder / f"catalog-{seed}.jpg")

    def confidences(*extra: str) -> dict[str, float]:
        out = tmp_path / f"out{len(extra)}.csv"
        # --no-other: the routing is the question here, not the scope judge
        args = ["classify", str(folder), "-o", str(out), "--model", str(paired), "--workers", "1"]
        args += ["--no-other", *extra]
        assert main(args, Environment(stderr=io.StringIO())) == 0
        with open(out) as f:
            return {row["path"].split("/")[-1]: float(row["confidence"]) for row in csv.DictReader(f)}

    routed, main_only = confidences(), confidences("--no-photo-model")
    for name, confidence in routed.items():
        if name.startswith("floor"):
            assert confidence < 0.2 < main_only[name], name
        else:
            assert confidence == pytest.approx(main_only[name]), name


def _set_views(folder, views):
    card = json.loads((folder / "model_card.json").read_text())
    card["photo_model"]["views"] = views
    (folder / "model_card.json").write_text(json.dumps(card))


def test_worn_rows_go_to_the_photo_model_only_when_its_card_entry_lists_them(paired):
    images = np.random.default_rng(2).integers(0, 256, (4, 28, 28), dtype=np.uint8).reshape(4, -1)
    views = np.array(["worn", "segmented", "catalog", "worn"], dtype=object)
    ok = np.ones(4, bool)
    flat_rows = {}
    for listed in (None, ["segmented"], ["segmented", "worn"]):
        if listed is not None:
            _set_views(paired, listed)
        model = load_model(paired, backend="litert")
        flat_rows[str(listed)] = list(predict_where(model, images, ok, views).max(axis=1) < 0.25)
    # a card from before the key, or one listing segmented only: worn rows are the main model's
    assert flat_rows["None"] == flat_rows["['segmented']"] == [False, True, False, False]
    assert flat_rows["['segmented', 'worn']"] == [True, True, False, True]
    assert load_model(paired).photo_views == ("segmented", "worn")
    assert load_model(paired, use_photo_model=False).photo_views == ()


@pytest.mark.parametrize("views", [[], ["catalog"], "worn", ["worn", "person"]])
def test_a_photo_model_entry_with_views_it_cannot_read_is_refused(paired, views):
    _set_views(paired, views)
    with pytest.raises(ModelError, match=r"photo_model\.views"):
        load_model(paired)


def test_the_worn_view_goes_to_the_model_that_reads_worn_photos_better(tmp_path):
    """judge_worn on labelled photos: only those the person path reads count, each model's answers are
    classify's (limited to what a worn crop can show), and the card routes worn rows as it decided."""
    data = pytest.importorskip("skimage.data")
    from photos import WHITE, render_catalog_photo
    from PIL import Image

    from fmnist_batch.labels import CLASS_NAMES
    from fmnist_batch.model.card import ModelCard
    from fmnist_batch.model.combine import within_view_classes
    from fmnist_batch.training.photo_model import PairingError, judge_worn, worn_crops

    astronaut = Image.fromarray(data.astronaut())
    for name, box in (("coat", (0, 0, 512, 512)), ("shirt", (60, 0, 512, 512))):
        canvas = Image.new("RGB", (600, 700), WHITE)
        canvas.paste(astronaut.crop(box), (40, 94))
        (tmp_path / "photos" / name).mkdir(parents=True)
        canvas.save(tmp_path / "photos" / name / "on-model.jpg", quality=92)
    (tmp_path / "photos" / "bag").mkdir()
    render_catalog_photo(np.eye(28, dtype=np.uint8) * 255, size=200).save(
        tmp_path / "photos" / "bag" / "p.png"
    )

    main_card = ModelCard.load(bundled_model_dir() / "model_card.json")
    images, accepted, folders = worn_crops(tmp_path / "photos", main_card)
    assert folders == ["coat", "shirt"] and len(images) == 2  # the product shot is not worn
    assert accepted == [frozenset({CLASS_NAMES.index("Coat")}), frozenset({CLASS_NAMES.index("Shirt")})]
    photo = bundled_model_dir() / "photo"
    log = []
    decision = judge_worn(None, photo, tmp_path / "photos", log.append)
    for key, source in (("main", None), ("photo", photo)):
        probabilities = load_model(source, use_photo_model=False).predict_proba(images)
        answers = within_view_classes(probabilities, np.full(2, "worn", dtype=object)).argmax(axis=1)
        hits = [CLASS_NAMES[a].lower() == name for a, name in zip(answers, folders, strict=True)]
        assert (
            getattr(decision, f"accuracy_{key}")
            == getattr(decision, f"balanced_accuracy_{key}")
            == np.mean(hits)
        )
    better = decision.balanced_accuracy_photo > decision.balanced_accuracy_main
    assert decision.read_by == ("photo" if better else "main") and decision.worn_photos == 2
    assert "take the worn view" in log[0]

    photo_card = ModelCard.load(photo / "model_card.json")
    for read_by, views in (("photo", ("segmented", "worn")), ("main", ("segmented",))):
        worn = type(decision)(**{**decision.to_dict(), "read_by": read_by})
        card = main_card.with_photo_model(main_card.photo_model_decision, photo_card, worn)
        assert card.photo_views == views and card.worn_decision == worn
    products = tmp_path / "products" / "bag"
    products.mkdir(parents=True)
    (tmp_path / "photos" / "bag" / "p.png").rename(products / "p.png")
    with pytest.raises(PairingError, match="shows a person"):
        judge_worn(None, photo, products.parent, log.append)
