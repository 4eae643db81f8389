"""The person path (convert/person.py, convert/person_models.py): a photo of a garment worn by a person is
read as that garment, and nothing else ever is.

Photos: scikit-image's `astronaut` (NASA, public domain) and figures drawn here; catalog shots rendered
from the Fashion-MNIST test set (conftest.py)."""

from __future__ import annotations

import functools
import io
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from photos import CATALOG_GREY, WHITE, load_fmnist_test_sample, render_catalog_photo
from PIL import Image, ImageDraw

from fmnist_batch import Classifier
from fmnist_batch.cli import Environment, main
from fmnist_batch.convert import (
    ConversionSettings,
    convert_image,
    convert_path,
    load_image,
    person,
    to_rgb,
)
from fmnist_batch.convert.settings import VIEW_CLASSES
from fmnist_batch.labels import CLASS_NAMES
from fmnist_batch.model import person_models
from fmnist_batch.model.combine import predict_where
from fmnist_batch.model.person_models import Face, PersonFiles
from fmnist_batch.model.registry import bundled_person_files
from fmnist_batch.model.runtime import load_model
from fmnist_batch.training.data import DEBIAN_DIR, DatasetError, load_dataset

AUTO = ConversionSettings()
PERSON = ConversionSettings(background="person")
PLAIN = ConversionSettings(background="plain")


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    data = pytest.importorskip("skimage.data")
    return Image.fromarray(data.astronaut())


def on_studio_canvas(photo: Image.Image, size: tuple[int, int] = (600, 700), top: int = 94) -> Image.Image:
    """The photo on a white canvas, as a shop's studio shot has a white border all round."""
    canvas = Image.new("RGB", size, WHITE)
    canvas.paste(photo, ((size[0] - photo.width) // 2, top))
    return canvas


@pytest.fixture
def no_person_models(tmp_path):
    """A folder for person detector files of our choosing; the detectors load again afterwards."""
    person_models.forget_person_models()
    yield tmp_path
    person_models.forget_person_models()


def test_a_person_on_a_studio_canvas_is_read_as_the_garment_she_wears(astronaut):
    canvas = on_studio_canvas(astronaut)
    worn = person.find_worn_garment(canvas)
    assert worn is not None and worn.region == "full"  # the photo ends at her waist: no second garment
    work = person.work_copy(canvas)
    face = person_models.shared_person_models(bundled_person_files()).detect_face(work)
    assert worn.image.height <= work.shape[0] - face.chin + 1  # nothing above the chin: no head, no hair
    for settings in (AUTO, PERSON):
        conversion = convert_image(canvas, settings)
        assert conversion.view == "worn"
        assert np.array_equal(conversion.image, convert_image(worn.image, PLAIN).image)
    assert convert_image(canvas, PLAIN).view == "catalog"


@pytest.mark.parametrize(
    ("framing", "region"),
    [
        ("head and torso, as shot", "full"),
        ("legs only, no face", None),
        ("head only, no body below", None),
    ],
)
def test_framings_of_the_astronaut(astronaut, framing, region):
    photo = {
        "head and torso, as shot": astronaut,
        "legs only, no face": on_studio_canvas(astronaut.crop((0, 300, 512, 512)), top=200),
        "head only, no body below": on_studio_canvas(astronaut.crop((0, 0, 512, 200)), (600, 300), 50),
    }[framing]
    worn = person.find_worn_garment(photo)
    assert (worn and worn.region) == region
    assert convert_image(photo, PERSON).view == ("worn" if region else "catalog")


def drawn_figure(top: tuple[int, int, int], bottom: tuple[int, int, int], height: int = 160):
    """A person drawn at the person path's working size: a skin-coloured head (its face box 24 px high),
    a torso garment in ``top`` and legs in ``bottom``, on white; with the Face and the person mask the
    detectors would give. Returns (rgb, face, person)."""
    img = Image.new("RGB", (120, 160), WHITE)
    draw = ImageDraw.Draw(img)
    draw.ellipse((46, 6, 74, 36), fill=(224, 172, 140))
    draw.rectangle((30, 36, 90, 116), fill=top)
    draw.rectangle((36, 116, 58, 159), fill=bottom)
    draw.rectangle((62, 116, 84, 159), fill=bottom)
    rgb = np.ascontiguousarray(np.asarray(img)[:height])
    keypoints = np.array([[54, 18], [66, 18], [60, 24], [60, 29], [48, 20], [72, 20]], dtype=np.float32)
    face = Face((48.0, 10.0, 72.0, 34.0), 0.9, keypoints)
    return rgb, face, (rgb != 255).any(axis=-1).astype(np.float32)


def test_a_second_garment_below_the_hips_is_cut_away():
    rgb, face, mask = drawn_figure(top=(30, 40, 90), bottom=(150, 150, 150))
    region, garment = person.sold_garment(rgb, face, mask)
    assert region == "upper"
    rows = np.flatnonzero(garment.any(axis=1))
    assert rows[0] >= face.chin and rows[-1] < 117  # the torso, not the legs
    assert garment[40:110, 35:85].all()


def test_nothing_below_the_hem_is_read_as_the_top():
    # a strip of the top's colour down one leg (a hand, a print, a patch on the jeans), joined to the top
    rgb, face, mask = drawn_figure(top=(30, 40, 90), bottom=(150, 150, 150))
    rgb = rgb.copy()
    rgb[116:150, 40:46] = (30, 40, 90)
    region, garment = person.sold_garment(rgb, face, mask)
    assert region == "upper"
    assert garment[40:110, 35:85].all()
    assert np.flatnonzero(garment.any(axis=1))[-1] < 117


@pytest.mark.parametrize(
    ("case", "bottom", "height"),
    [("a dress: one colour from chest to feet", (30, 40, 90), 160), ("cut off above the hips", None, 100)],
)
def test_one_garment_below_the_chin_is_read_whole(case, bottom, height):
    rgb, face, mask = drawn_figure(top=(30, 40, 90), bottom=bottom or (150, 150, 150), height=height)
    region, garment = person.sold_garment(rgb, face, mask)
    assert region == "full"
    assert np.flatnonzero(garment.any(axis=1))[-1] == height - 1


SKIN = (224, 172, 140)  # drawn_figure's face
BEIGE = (215, 175, 150)  # a garment's tone: passes the skin rule, within the face's chroma tolerance


def test_a_skin_coloured_garment_is_kept_and_bare_legs_are_not():
    rgb, face, mask = drawn_figure(top=BEIGE, bottom=SKIN)
    region, garment = person.sold_garment(rgb, face, mask)
    assert region == "full"
    assert garment[40:110, 35:85].all()  # the whole torso garment, not a few fragments
    assert not garment[120:].any()  # the legs are skin, told from the garment by the face's tone


def test_a_garment_unlike_skin_still_loses_the_skin_beside_it():
    rgb, face, mask = drawn_figure(top=(30, 40, 90), bottom=SKIN)
    region, garment = person.sold_garment(rgb, face, mask)
    assert region == "full"
    assert garment[40:110, 35:85].all() and not garment[120:].any()


def test_rendered_catalog_shots_never_take_the_worn_path(catalog):
    for path, _ in catalog:
        assert convert_path(path, AUTO).view != "worn", path
        assert convert_path(path, PERSON).view == "catalog", path  # the fallback: the plain conversion


def test_dataset_images_never_take_the_worn_path():
    sample = load_fmnist_test_sample(200, seed=3)
    if sample is None:
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    for image in sample[0]:
        as_is = Image.fromarray(image)
        as_photo = Image.fromarray(255 - image).resize((224, 224), Image.Resampling.BICUBIC)
        for img in (as_is, as_photo):
            assert not person.might_show_person(to_rgb(img))
            assert convert_image(img, PERSON).view == "catalog"


def test_products_never_checks_for_a_person_and_otherwise_reads_as_auto(astronaut, catalog, monkeypatch):
    """--background products: a photo of a person is read as any photo of its background is, and every
    other photo exactly as under auto (renders as catalog shots, a photo on a busy background segmented)."""
    products = ConversionSettings(background="products")
    canvas = on_studio_canvas(astronaut)
    busy = astronaut.crop((0, 0, 512, 512))  # the person on no plain border
    tinted = [render_catalog_photo(np.eye(28, dtype=np.uint8) * 255, size=300, tint=(110, 30, 30))]
    photos = [load_image(path) for path, _ in catalog[:12]] + tinted
    expected = [convert_image(photo, AUTO) for photo in photos]
    assert convert_image(canvas, AUTO).view == convert_image(busy, AUTO).view == "worn"

    def refuse():
        raise AssertionError("the detectors were loaded under --background products")

    monkeypatch.setattr(person, "shared_person_models", refuse)
    assert convert_image(canvas, products).view == "catalog"
    assert convert_image(busy, products).view == "segmented"
    for photo, auto in zip(photos, expected, strict=True):
        conversion = convert_image(photo, products)
        assert conversion.view == auto.view and np.array_equal(conversion.image, auto.image)


def test_skin_coloured_shoes_do_not_load_the_detectors_and_a_person_still_does(astronaut, monkeypatch):
    """Tan and red footwear passes the skin test where a head would be; lying wider than tall on a plain
    background (most shoes: a high-heeled sandal can stand as tall as wide), it is still no person. The
    astronaut on a studio canvas (square) is one."""
    sample = load_fmnist_test_sample(300, seed=5)
    if sample is None:
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    images, labels = sample
    footwear = images[np.isin(labels, [CLASS_NAMES.index(n) for n in ("Sandal", "Sneaker")])][:24]
    photos = [
        render_catalog_photo(image, size=300, background=WHITE, tint=tint, seed=i)
        for i, image in enumerate(footwear)
        for tint in ((110, 30, 30), (150, 100, 60))
    ]
    skin_at_top = [
        photo for photo in photos if person.GATE_MIN_SKIN <= head_skin(photo) < person.GATE_MAX_SKIN
    ]
    lying = [photo for photo in skin_at_top if aspect(photo) < 1]
    assert len(lying) >= 10  # the skin test alone would send these to the face detector
    assert person.might_show_person(on_studio_canvas(astronaut))

    def refuse():
        raise AssertionError("the detectors were loaded for a shoe")

    monkeypatch.setattr(person, "shared_person_models", refuse)
    for photo in lying:
        assert not person.might_show_person(photo)
        assert convert_image(photo, AUTO).view == "catalog"


@functools.cache
def _train_images() -> np.ndarray | None:
    try:
        return load_dataset(DEBIAN_DIR).train.images
    except DatasetError:
        return None


def boot_thumbnail(image: np.ndarray, tint: tuple[int, int, int], stretch: float) -> Image.Image:
    """A shop's 60x80 JPEG thumbnail of a leather boot: the dataset image in ``tint``, its height scaled
    by ``stretch`` (a taller shaft), centred on white with a margin all round."""
    photo = render_catalog_photo(image, size=240, tint=tint, garment_fraction=0.9)
    boot = photo.crop(photo.point(lambda v: 255 if v < 245 else 0).getbbox())
    boot = boot.resize((boot.width, round(boot.height * stretch)), Image.Resampling.BICUBIC)
    scale = min(54 / boot.width, 74 / boot.height)
    boot = boot.resize((round(boot.width * scale), round(boot.height * scale)), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (60, 80), WHITE)
    canvas.paste(boot, ((60 - boot.width) // 2, (80 - boot.height) // 2))
    buffer = io.BytesIO()
    canvas.save(buffer, format="JPEG", quality=85)
    return Image.open(buffer).convert("RGB")


TAN, BROWN, COGNAC, BEIGE = (190, 140, 95), (120, 75, 45), (160, 95, 55), (215, 175, 140)


def test_a_boot_whose_shaft_reads_as_a_face_is_no_person():
    """Ankle boots standing as tall as wide, in leather tones, pass the gate; BlazeFace finds a face in the
    shaft's opening (skin-coloured, with room below), and the segmentation reads shaft and foot as head
    and shoulders. The boot ends at its sole, 2-3 face heights below that "chin", with the studio's white
    below it: a whole person reaches at least the hips. Training-set images (the test set is the model's)."""
    images = _train_images()
    if images is None:
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    cases = [(59035, BROWN, 1.0), (59035, TAN, 1.3), (2846, COGNAC, 1.0), (52924, BEIGE, 1.0)]
    photos = [boot_thumbnail(images[index], tint, stretch) for index, tint, stretch in cases]
    models = person_models.shared_person_models(bundled_person_files())
    head_and_shoulders = 0
    for photo in photos:
        rgb = person.work_copy(photo)
        face = models.detect_face(rgb)
        rows, cols = person.face_centre_box(face, rgb.shape) if face else (slice(0), slice(0))
        if face and person.skin_rule(rgb[rows, cols]).mean() >= person.MIN_FACE_SKIN:
            head_and_shoulders += person.has_shoulders(face, models.person_mask(rgb) > 0.5)
    assert head_and_shoulders >= 2  # the checks after the room below the chin would take them for people
    for photo in photos:
        assert person.might_show_person(photo)
        assert person.find_worn_garment(photo) is None
        assert convert_image(photo, AUTO).view == "catalog"


def subject_box(photo: Image.Image) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """The gate's thumbnail of a photo on white, and the box of what is not white on it."""
    small = photo.resize((person.GATE_SIZE, person.GATE_SIZE), Image.Resampling.NEAREST)
    return small, small.point(lambda v: 255 if v < 240 else 0).getbbox()


def head_skin(photo: Image.Image) -> float:
    """The skin share of the top of the subject, as might_show_person measures it."""
    small, (left, top, right, bottom) = subject_box(photo)
    return person.skin_share(small.crop((left, top, right, top + round(person.GATE_TOP * (bottom - top)))))


def aspect(photo: Image.Image) -> float:
    """Height over width of the subject."""
    _, (left, top, right, bottom) = subject_box(photo)
    return (bottom - top) / (right - left)


def test_product_shots_do_not_load_the_detectors(monkeypatch):
    sample = load_fmnist_test_sample(40, seed=4)
    if sample is None:
        pytest.skip("Debian's dataset-fashion-mnist is not installed")

    def refuse():
        raise AssertionError("the detectors were loaded for a product shot")

    monkeypatch.setattr(person, "shared_person_models", refuse)
    for i, image in enumerate(sample[0]):
        background = WHITE if i % 2 else CATALOG_GREY
        photo = render_catalog_photo(image, size=300, background=background, tint=(30, 50, 110), seed=i)
        assert convert_image(photo, AUTO).view == "catalog"


@pytest.mark.parametrize("broken", ["missing", "not a model"])
def test_without_usable_model_files_the_person_path_is_off(astronaut, no_person_models, broken):
    files = PersonFiles(str(no_person_models / "face.tflite"), str(no_person_models / "segment.tflite"))
    if broken == "not a model":
        for name in (files.face, files.segment):
            Path(name).write_bytes(b"TFL3 but not really")
    assert person_models.shared_person_models(files) is None
    canvas = on_studio_canvas(astronaut)
    for settings in (AUTO, PERSON):
        conversion = convert_image(canvas, replace(settings, person_models=files))
        assert conversion.view == "catalog"
        assert np.array_equal(conversion.image, convert_image(canvas, PLAIN).image)


class Captured(Environment):
    def __init__(self):
        super().__init__(stdin=io.StringIO(), stdout=io.StringIO(), stderr=io.StringIO())


def in_dark_trousers(photo: Image.Image) -> Image.Image:
    """The photo high on a studio canvas, with dark trousers drawn below it: a second garment."""
    canvas = on_studio_canvas(photo, top=20)
    left, right, top = 174, 444, 532
    middle = (left + right) // 2
    legs = [(left, top), (right, top), (right - 5, 700), (middle + 8, 700), (middle, top + 40)]
    ImageDraw.Draw(canvas).polygon([*legs, (middle - 8, 700), (left + 5, 700)], fill=(20, 20, 20))
    return canvas


def test_classify_rows_and_previews_say_worn(astronaut, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    on_studio_canvas(astronaut).save(photos / "on-model.jpg", quality=92)
    in_dark_trousers(astronaut).save(photos / "top-and-trousers.jpg", quality=92)
    render_catalog_photo(np.eye(28, dtype=np.uint8) * 255, size=200).save(photos / "product.png")
    previews = tmp_path / "previews"
    args = ["classify", str(photos), "-o", str(tmp_path / "out.csv"), "--save-preprocessed", str(previews)]
    assert main(args, Captured()) == 0
    rows = pd.read_csv(tmp_path / "out.csv", keep_default_na=False).set_index("path")
    views = {path.rsplit("/", 1)[-1]: view for path, view in rows["view"].items()}
    assert views == {"on-model.jpg": "worn", "top-and-trousers.jpg": "worn", "product.png": "catalog"}
    # which part of the person was read: the top alone when a second garment was left out
    regions = {path.rsplit("/", 1)[-1]: region for path, region in rows["region"].items()}
    assert regions == {"on-model.jpg": "full", "top-and-trousers.jpg": "upper", "product.png": ""}

    (preview,) = previews.rglob("on-model.jpg.png")
    worn = person.find_worn_garment(to_rgb(load_image(photos / "on-model.jpg")))
    assert np.array_equal(np.asarray(Image.open(preview)), convert_image(worn.image, PLAIN).image)

    args = ["classify", str(photos), "--format", "jsonl", "-o", str(tmp_path / "out.jsonl")]
    assert main([*args, "--background", "person"], Captured()) == 0
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert {line["path"].rsplit("/", 1)[-1]: line["view"] for line in lines} == views
    assert {line["path"].rsplit("/", 1)[-1]: line["region"] or "" for line in lines} == regions


def test_the_classifier_says_worn(astronaut):
    result = Classifier()(on_studio_canvas(astronaut))
    assert result["view"] == "worn" and result["region"] == "full" and result["status"] != "error"


def test_a_worn_crop_is_answered_with_a_garment_worn_below_the_chin():
    """The same 28x28 images read as a catalog shot and as a worn crop: the worn rows name only classes
    in VIEW_CLASSES["worn"], with probabilities summing to 1; the catalog rows keep the model's answer."""
    sample = load_fmnist_test_sample(200, seed=3)
    if sample is None:
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    images, labels = sample
    footwear = np.isin(labels, [CLASS_NAMES.index(name) for name in ("Sandal", "Sneaker", "Bag")])
    images = images[footwear].reshape(len(images[footwear]), -1)
    model = load_model()
    ok = np.ones(len(images), bool)
    catalog = predict_where(model, images, ok, np.full(len(images), "catalog", object))
    worn = predict_where(model, images, ok, np.full(len(images), "worn", object))
    wearable = [CLASS_NAMES.index(name) for name in VIEW_CLASSES["worn"]]
    assert np.isin(catalog.argmax(axis=1), wearable).mean() < 0.1  # the model sees shoes and bags
    assert np.isin(worn.argmax(axis=1), wearable).all()
    assert np.allclose(worn.sum(axis=1), 1, atol=1e-5)
    unworn = np.setdiff1d(np.arange(len(CLASS_NAMES)), wearable)
    assert (worn[:, unworn] == 0).all()


def test_the_worn_figure_draws_each_person_with_the_answer_classify_gives(astronaut, tmp_path):
    worn_figure = pytest.importorskip("worn_figure")
    photos = tmp_path / "photos"
    (photos / "coat").mkdir(parents=True)
    (photos / "bag").mkdir()
    on_studio_canvas(astronaut).save(photos / "coat" / "on-model.jpg", quality=92)
    render_catalog_photo(np.eye(28, dtype=np.uint8) * 255, size=200).save(photos / "bag" / "product.png")
    model = load_model()
    (item,) = worn_figure.readings(worn_figure.folder_photos(photos), model)  # the product shot is left out
    row = Classifier()(photos / "coat" / "on-model.jpg")
    assert item["name"] == "coat/on-model.jpg" and item["truth"] == CLASS_NAMES.index("Coat")
    conversion = convert_path(photos / "coat" / "on-model.jpg")
    assert np.array_equal(item["after"][0], conversion.image)
    assert np.array_equal(item["colour"], conversion.colour)  # what the garment reader read
    assert CLASS_NAMES[item["after"][1]] == row["label"] and row["view"] == "worn"

    out = tmp_path / "figure.png"
    script = [sys.executable, worn_figure.__file__, str(photos), "-o", str(out)]
    done = subprocess.run(script, capture_output=True, text=True, timeout=120, env=repo_env())
    assert done.returncode == 0, done.stderr
    assert "1 of 2 photos took the person path" in done.stdout
    assert Image.open(out).size[0] > 3 * worn_figure.TILE
    (photos / "coat" / "on-model.jpg").unlink()
    done = subprocess.run(script, capture_output=True, text=True, timeout=120, env=repo_env())
    assert done.returncode == 1 and "none of the 1 photos shows a person" in done.stderr


def repo_env() -> dict[str, str]:
    """The environment with the repository first on the import path (the script is run as a file)."""
    root = str(Path(__file__).resolve().parent.parent)
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
