"""The ink spread: a grey image painted in one ink stays on one colour line; a real product leaves it."""

from __future__ import annotations

import io

import numpy as np
import pytest
import skimage.data
from photos import CATALOG_GREY, WHITE, load_fmnist_test_sample, render_catalog_photo
from PIL import Image

from fmnist_batch.convert.ink import ink_spread
from fmnist_batch.model.card import CARD_FILE, ModelCard, bundled_model_dir

TOLERANCE = 0.05  # the conversion's default trim tolerance


def _jpeg(img: Image.Image, quality: int = 85) -> Image.Image:
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _ink_limit() -> float:
    entry = ModelCard.load(bundled_model_dir() / CARD_FILE).dataset_reference
    assert entry is not None and "ink_limit" in entry, "the bundled card's reference has an ink limit"
    return float(entry["ink_limit"])


def test_one_ink_on_one_background_has_no_spread_and_one_colour_shaded_leaves_the_line():
    ramp = np.linspace(0, 1, 120)[None, :, None] * np.ones((80, 1, 1))
    background, ink = np.array([253, 253, 253]), np.array([150, 40, 30])
    one_ink = (background * (1 - ramp) + ink * ramp).round().astype(np.uint8)
    assert ink_spread(Image.fromarray(one_ink), TOLERANCE) < 0.01
    # the same red lit from dark to light: the colour is the ink's times the light, which no mix of
    # the background with one ink gives
    shaded = (ink * (0.3 + 0.7 * ramp)).round().astype(np.uint8)
    frame = np.full((120, 160, 3), 253, np.uint8)
    frame[20:100, 20:140] = shaded
    assert ink_spread(Image.fromarray(frame), TOLERANCE) > _ink_limit()


def test_a_blank_photo_and_a_faint_one_have_nothing_to_measure():
    assert ink_spread(Image.new("RGB", (300, 200), (250, 250, 250)), TOLERANCE) == 0.0
    faint = Image.new("RGB", (300, 200), WHITE)
    faint.paste((245, 240, 250), (100, 50, 200, 150))  # within the tolerance of the background
    assert ink_spread(faint, TOLERANCE) == 0.0


def test_fashion_mnist_renders_keep_within_the_cards_ink_limit_and_real_products_do_not():
    sample = load_fmnist_test_sample(40, seed=5)
    if sample is None:
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    limit = _ink_limit()
    tints = (None, (40, 60, 120), (120, 30, 30), (30, 90, 50), (90, 70, 40))
    for i, image in enumerate(sample[0]):
        photo = render_catalog_photo(
            image, size=300 + 10 * i, background=(WHITE, CATALOG_GREY)[i % 2], tint=tints[i % 5]
        )
        assert ink_spread(_jpeg(photo), TOLERANCE) <= limit, i
    for name in ("rocket", "coffee", "astronaut"):
        product = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        frame = Image.new("RGB", (500, 500), WHITE)
        frame.paste(product.resize((300, 200)), (100, 150))
        assert ink_spread(_jpeg(frame), TOLERANCE) > limit, name


def test_a_negative_ink_limit_is_refused_by_the_settings():
    from fmnist_batch.convert.settings import ConversionSettings

    with pytest.raises(ValueError, match="dataset_ink_limit"):
        ConversionSettings(dataset_ink_limit=-0.1)
    assert ConversionSettings(dataset_ink_limit=0.0).record()["dataset_ink_limit"] == 0.0
