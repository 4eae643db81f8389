"""Behaviour of each preprocessing step on generated images, file handling, and the round trip
Fashion-MNIST image -> catalog photo -> preprocess -> close to the original."""

from __future__ import annotations

import pickle
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from photos import (
    CATALOG_GREY,
    WHITE,
    load_fmnist_test_sample,
    png_claiming_size,
    render_catalog_photo,
    render_garment_photo,
    save_photo,
)
from PIL import Image, ImageDraw
from unprivileged import run_unprivileged

from fmnist_batch.convert import (
    CATALOG_LEVEL,
    CONTRAST_LEVELS,
    ImageError,
    PreprocessSettings,
    auto_contrast,
    background_colour,
    centre_on_canvas,
    convert_image,
    fit_longest_edge,
    grabcut_mask,
    has_plain_background,
    is_dark_background,
    largest_component,
    load_image,
    negate,
    paste_on_catalog_background,
    plain_border_share,
    preprocess_image,
    preprocess_path,
    remove_shadows,
    save_preview,
    segment_garment,
    sharpen,
    soften_texture,
    stretch_to_full_range,
    to_grayscale,
    to_rgb,
    trim_background,
)

NAVY = (30, 40, 90)


def garment_array() -> np.ndarray:
    """A 28x28 dataset-like garment: bright, textured, taller than wide, black background."""
    array = np.zeros((28, 28), dtype=np.uint8)
    array[:, 7:21] = 120
    array[4:24, 9:19] = 230
    array[::3, 7:21] = 60  # stripes, so orientation and scale errors show
    return array


def photo_with_box(size=(100, 80), box=(10, 20, 40, 60), background=WHITE, colour=(200, 30, 30)):
    img = Image.new("RGB", size, background)
    ImageDraw.Draw(img).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=colour)
    return img


def first_row(img: Image.Image) -> list:
    return [img.getpixel((x, 0)) for x in range(img.width)]


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(np.float64).ravel(), b.astype(np.float64).ravel())[0, 1])


# --- trimming ---------------------------------------------------------------------------------------


def test_trim_removes_a_plain_border_exactly():
    img = photo_with_box(box=(10, 20, 40, 60))
    trimmed = trim_background(img, 0.05)
    assert trimmed.size == (30, 40)
    assert np.array_equal(np.asarray(trimmed), np.asarray(img.crop((10, 20, 40, 60))))


@pytest.mark.parametrize(
    ("colour", "kept"),
    [
        ((212, 212, 212), False),  # RMS difference 12 <= 12.75 (5% of 255): background
        ((214, 214, 214), True),  # RMS 14: garment
        ((222, 200, 200), False),  # one channel off by 22: RMS 12.7, still within 5%
        ((223, 200, 200), True),  # RMS 12.9: beyond
    ],
)
def test_trim_tolerance_is_rms_colour_distance(colour, kept):
    img = photo_with_box(size=(60, 60), box=(5, 5, 55, 55), background=(200, 200, 200), colour=(20, 20, 20))
    ImageDraw.Draw(img).rectangle((0, 28, 2, 30), fill=colour)  # a patch left of the garment
    assert trim_background(img, 0.05).size == ((55, 50) if kept else (50, 50))


def test_trim_finds_a_colourful_garment_of_background_brightness():
    grey = (128, 128, 128)
    img = photo_with_box(size=(80, 80), box=(20, 10, 50, 70), background=grey, colour=(200, 92, 92))
    assert abs(to_grayscale(img).getpixel((30, 30)) - 128) < 0.05 * 255  # invisible in greyscale
    assert trim_background(img, 0.05).size == (30, 60)


def test_trim_of_a_blank_image_returns_it_unchanged():
    img = Image.new("RGB", (50, 40), CATALOG_GREY)
    assert trim_background(img, 0.05).size == (50, 40)


def test_background_colour_ignores_a_garment_in_one_corner():
    img = photo_with_box(size=(60, 60), box=(0, 30, 30, 60), background=CATALOG_GREY)
    assert background_colour(img) == CATALOG_GREY


# --- geometry ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((300, 100), (28, 9)),
        ((100, 300), (9, 28)),
        ((1000, 2), (28, 1)),
        ((10, 5), (28, 14)),
        ((28, 28), (28, 28)),
    ],
)
def test_fit_longest_edge_keeps_aspect_ratio(size, expected):
    assert fit_longest_edge(Image.new("L", size, 0), 28).size == expected


def test_fit_longest_edge_does_not_alias_fine_stripes():
    stripes = np.zeros((600, 600), dtype=np.uint8)
    stripes[:, ::2] = 255  # 1-px stripes: subsampling would give solid black or white
    fitted = np.asarray(fit_longest_edge(Image.fromarray(stripes), 28))
    assert np.abs(fitted.astype(int) - 128).max() <= 8  # subsampled: 0 or 255


def test_centre_on_canvas_centres_with_the_datasets_rounding():
    canvas = np.asarray(centre_on_canvas(Image.new("L", (28, 10), 255), 28, 7))
    assert (canvas[9:19] == 255).all() and (canvas[:9] == 7).all() and (canvas[19:] == 7).all()
    odd = np.asarray(centre_on_canvas(Image.new("L", (9, 28), 255), 28, 0))
    columns = np.flatnonzero(odd.any(axis=0))
    assert (columns[0], 27 - columns[-1]) == (10, 9)  # the extra margin pixel goes left, like the dataset


def test_sharpen_increases_contrast_only_at_outlines():
    step = np.full((28, 28), 100, dtype=np.uint8)
    step[:, 14:] = 150
    sharpened = np.asarray(sharpen(Image.fromarray(step))).astype(int)
    assert sharpened[:, 13].max() < 100 and sharpened[:, 14].min() > 150
    assert (sharpened[:, :10] == 100).all() and (sharpened[:, 18:] == 150).all()


def test_preprocess_image_sharpens_unless_told_not_to():
    photo = render_catalog_photo(garment_array(), size=400)
    sharp = preprocess_image(photo).astype(int)
    soft = preprocess_image(photo, PreprocessSettings(sharpen=False)).astype(int)
    assert np.abs(np.diff(sharp, axis=0)).sum() > 1.1 * np.abs(np.diff(soft, axis=0)).sum()


# --- intensities ------------------------------------------------------------------------------------


def test_negate():
    values = np.array([[0, 1, 128, 255]], dtype=np.uint8)
    assert np.asarray(negate(Image.fromarray(values))).tolist() == [[255, 254, 127, 0]]


@pytest.mark.parametrize(
    ("colour", "dark"),
    [
        ((0, 0, 0), True),
        ((127, 127, 127), True),
        ((128, 128, 128), False),
        (WHITE, False),
        ((200, 30, 30), True),
    ],
)
def test_is_dark_background(colour, dark):
    assert is_dark_background(colour) is dark


# --- modes ------------------------------------------------------------------------------------------


def test_to_rgb_composites_transparency_onto_white():
    rgba = Image.new("RGBA", (4, 1), (0, 0, 0, 0))
    rgba.putpixel((1, 0), (0, 0, 0, 255))
    rgba.putpixel((2, 0), (0, 0, 0, 128))
    rgba.putpixel((3, 0), (200, 0, 0, 255))
    rgb = to_rgb(rgba)
    assert rgb.mode == "RGB"
    assert first_row(rgb) == [WHITE, (0, 0, 0), (127, 127, 127), (200, 0, 0)]


def test_to_rgb_la():
    la = Image.new("LA", (2, 1), (0, 0))
    la.putpixel((1, 0), (50, 255))
    assert first_row(to_rgb(la)) == [WHITE, (50, 50, 50)]


def test_to_rgb_palette_with_transparent_index():
    p = Image.new("P", (2, 1), 0)
    p.putpalette([0, 0, 0, 10, 200, 10] + [0] * 762)
    p.putpixel((1, 0), 1)
    p.info["transparency"] = 0
    assert first_row(to_rgb(p)) == [WHITE, (10, 200, 10)]


def test_to_rgb_cmyk():
    cmyk = Image.new("CMYK", (3, 1), (0, 0, 0, 0))
    cmyk.putpixel((1, 0), (0, 0, 0, 255))
    cmyk.putpixel((2, 0), (255, 0, 0, 0))
    assert first_row(to_rgb(cmyk)) == [WHITE, (0, 0, 0), (0, 255, 255)]


@pytest.mark.parametrize("mode", ["I;16", "I;16B"])
def test_to_rgb_scales_16_bit_instead_of_clipping(mode):
    img = Image.new(mode, (3, 1), 0)
    img.putpixel((1, 0), 32896)  # 128 * 257
    img.putpixel((2, 0), 65535)
    assert [p[0] for p in first_row(to_rgb(img))] == [0, 128, 255]


def test_to_rgb_32_bit_and_float_greyscale():
    wide = Image.fromarray(np.array([[0, 1000, 65535]], dtype=np.int32))
    assert wide.mode == "I"
    assert [p[0] for p in first_row(to_rgb(wide))] == [0, 4, 255]
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert [p[0] for p in first_row(to_rgb(unit))] == [0, 128, 255]


def test_to_rgb_one_bit():
    bits = Image.new("1", (2, 1), 0)
    bits.putpixel((1, 0), 1)
    assert first_row(to_rgb(bits)) == [(0, 0, 0), WHITE]


@pytest.mark.parametrize(
    ("fmt", "mode"),
    [
        ("JPEG", "RGB"),
        ("JPEG", "L"),
        ("JPEG", "CMYK"),
        ("PNG", "RGBA"),
        ("PNG", "LA"),
        ("PNG", "P"),
        ("PNG", "I;16"),
        ("WEBP", "RGB"),
        ("WEBP", "RGBA"),
        ("BMP", "RGB"),
        ("GIF", "P"),
        ("TIFF", "CMYK"),
        ("TIFF", "RGB"),
    ],
)
def test_every_format_and_mode_gives_the_same_input(tmp_path, fmt, mode):
    photo = render_catalog_photo(garment_array(), size=300, tint=NAVY, offset=(0.1, -0.05))
    reference = preprocess_path(save_photo(photo, tmp_path / "ref.png", "PNG"))
    # RGBA files hide black under their transparent background: only compositing onto white matches.
    out = preprocess_path(save_photo(photo, tmp_path / f"photo.{fmt.lower()}", fmt, mode))
    assert out.dtype == np.uint8 and out.shape == (28, 28)
    assert correlation(out, reference) > 0.97
    assert np.abs(out.astype(int) - reference).mean() < 6


# --- loading ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "TIFF"])
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied(tmp_path, fmt, orientation):
    photo = render_catalog_photo(garment_array(), size=200, offset=(0.2, 0.1))
    upright = load_image(save_photo(photo, tmp_path / f"upright.{fmt}", fmt))
    rotated_file = save_photo(photo, tmp_path / f"rotated.{fmt}", fmt, exif_rotation=orientation)
    assert Image.open(rotated_file).getexif()[0x0112] == orientation
    restored = np.asarray(load_image(rotated_file)).astype(int)
    assert np.abs(restored - np.asarray(upright)).mean() < 2
    if fmt != "TIFF":  # Pillow's TIFF loader turns the pixels itself; the check above shows not twice
        raw = np.asarray(Image.open(rotated_file).convert("RGB")).astype(int)
        assert np.abs(raw - np.asarray(upright)).mean() > 10  # the stored pixels really were turned


def test_broken_exif_is_ignored(tmp_path):
    path = save_photo(render_catalog_photo(garment_array(), size=100), tmp_path / "a.jpg", "JPEG")
    img = Image.open(path)
    img.save(path, exif=b"Exif\x00\x00II*\x00\xff\xff\xff\x7f")  # first IFD offset far past the end
    assert load_image(path).size == (100, 100)


def test_animated_gif_gives_the_first_frame(tmp_path):
    first = photo_with_box(size=(60, 60), box=(10, 10, 30, 50), colour=(0, 0, 0))
    second = Image.new("RGB", (60, 60), (0, 0, 0))
    path = tmp_path / "anim.gif"
    first.save(path, save_all=True, append_images=[second], duration=100, loop=0)
    assert Image.open(path).n_frames == 2
    loaded = to_rgb(load_image(path))
    assert np.array_equal(np.asarray(loaded), np.asarray(first))


def test_big_jpeg_decodes_at_reduced_scale(tmp_path):
    settings = PreprocessSettings()
    path = tmp_path / "big.jpg"
    photo_with_box(size=(4000, 3000), box=(1000, 500, 2000, 2500)).save(path, quality=90)
    loaded = load_image(path, settings)
    # decoded at 1/8 scale (500x375), then box-reduced by 3: the short side stays >= draft_factor * size
    target = settings.draft_factor * settings.size
    assert loaded.size == (167, 125)
    assert target <= min(loaded.size) < 2 * target
    out = preprocess_path(path, settings)
    assert out[:, :6].max() == 0 and out[:, 8:20].min() > 100  # still the garment, 14x28, centred


def test_big_png_is_box_reduced_and_converts_like_the_full_size_image(tmp_path):
    path = tmp_path / "big.png"
    full = photo_with_box(size=(1200, 900), box=(100, 100, 300, 800))
    full.save(path)
    loaded = load_image(path)
    assert loaded.size == (150, 113)  # reduced by 8 = 900 // 112 (draft_factor 4 * 28), rounding up
    # (without the final stretch, which would scale by whichever has the brighter sharpening halo)
    plain = PreprocessSettings(full_range=False)
    reduced, unreduced = preprocess_path(path, plain), preprocess_image(full, plain)
    # the same silhouette; only the edge pixels differ (a box edge falls mid-pixel after reducing by 8)
    assert np.array_equal(reduced > 0, unreduced > 0)
    assert np.abs(reduced.astype(int) - unreduced).mean() < 5
    assert correlation(reduced, unreduced) > 0.98


def test_small_and_transparent_pngs_are_not_reduced(tmp_path):
    small = tmp_path / "small.png"
    photo_with_box(size=(200, 150), box=(50, 20, 120, 130)).save(small)
    assert load_image(small).size == (200, 150)
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (1200, 900), (0, 0, 0, 0)).save(rgba)
    assert load_image(rgba).size == (1200, 900)


def test_decompression_bomb_is_refused_quickly_without_allocating(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming_size(50_000, 50_000))
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(
        ImageError, match=r"^image too large: 2,500,000,000 pixels exceeds the limit of 144,000,000$"
    ):
        preprocess_path(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 50_000  # kB; decoding = 2.5 GB


def test_max_pixels_is_checked_before_decoding(tmp_path):
    path = tmp_path / "claims.png"
    path.write_bytes(png_claiming_size(10_000, 5_000))  # under Pillow's own limit: our check decides
    settings = PreprocessSettings(max_pixels=1_000_000)
    expected = "image too large: 10000x5000 = 50,000,000 pixels exceeds the limit of 1,000,000"
    with pytest.raises(ImageError) as caught:
        load_image(path, settings)
    assert str(caught.value) == expected


def test_empty_file(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match=r"^empty file$"):
        load_image(tmp_path / "empty.jpg")


def test_text_named_jpg(tmp_path):
    (tmp_path / "notes.jpg").write_text("not a photo\n")
    with pytest.raises(ImageError, match=r"^not an image file \(cannot identify image format\)$"):
        load_image(tmp_path / "notes.jpg")


def test_truncated_jpeg(tmp_path):
    whole = save_photo(render_catalog_photo(garment_array(), size=300), tmp_path / "whole.jpg", "JPEG")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(ImageError, match=r"^truncated or corrupt image: ") as caught:
        load_image(cut)
    assert "\n" not in str(caught.value)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageError, match=r"^file not found$"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match=r"^is a directory$"):
        load_image(tmp_path)


def test_unreadable_file(open_tmp):
    path = save_photo(Image.new("RGB", (10, 10)), open_tmp / "locked.png", "PNG")
    path.chmod(0)
    with pytest.raises(ImageError, match=r"^permission denied$"):
        run_unprivileged(load_image, path)


# --- the whole chain --------------------------------------------------------------------------------


def test_white_background_photo_gives_black_background_and_a_garment_filling_its_height():
    out = preprocess_image(render_catalog_photo(garment_array(), size=400, offset=(-0.2, 0.15)))
    assert out.dtype == np.uint8 and out.shape == (28, 28)
    assert out[0].max() > 0 and out[27].max() > 0  # touches top and bottom
    assert (out[:, :5] == 0).all() and (out[:, 23:] == 0).all()  # exact 0 around it
    assert out.max() > 200


def test_grey_background_becomes_exactly_zero():
    photo = render_catalog_photo(garment_array(), background=(200, 200, 200))
    assert (preprocess_image(photo)[:, :5] == 0).all()
    unstretched = preprocess_image(photo, PreprocessSettings(zero_background=False))
    assert (unstretched[:, :5] == 55).all()


def test_stretch_to_full_range_brings_the_brightest_pixel_to_255_and_keeps_black():
    pixels = np.array([[0, 50], [100, 200]], dtype=np.uint8)
    stretched = stretch_to_full_range(pixels)
    assert stretched.dtype == np.uint8
    np.testing.assert_array_equal(stretched, [[0, 64], [128, 255]])
    assert stretch_to_full_range(np.zeros((4, 4), np.uint8)).max() == 0
    full = np.array([[0, 255]], dtype=np.uint8)
    assert stretch_to_full_range(full) is full


def test_a_navy_catalog_garment_reaches_full_range_like_the_dataset_but_a_segmented_one_does_not_change():
    # a tinted garment is dimmer than black ink: without the stretch its brightest pixel stays far below
    # the 250+ that every training image of the dataset reaches
    photo = render_catalog_photo(garment_array(), size=300, tint=NAVY)
    dim = preprocess_image(photo, PreprocessSettings(full_range=False))
    out = preprocess_image(photo)
    assert dim.max() < 240 and out.max() == 255
    assert (out == 0).sum() == (dim == 0).sum()  # the background stays exactly 0
    assert correlation(out, dim) > 0.99
    cluttered, _ = render_garment_photo(background="clutter", seed=2)
    np.testing.assert_array_equal(
        preprocess_image(cluttered), preprocess_image(cluttered, PreprocessSettings(full_range=False))
    )


def test_dark_background_photo_is_not_inverted_under_auto():
    light_on_dark = Image.fromarray(garment_array()).resize((300, 300)).convert("RGB")
    out = preprocess_image(light_on_dark)
    assert (out[:, :5] == 0).all() and out.max() > 200
    assert correlation(out, garment_array()) > 0.9


def test_invert_always_and_never():
    photo = render_catalog_photo(garment_array(), size=300)
    auto = preprocess_image(photo)
    never = preprocess_image(photo, PreprocessSettings(invert="never"))
    always_dark = preprocess_image(
        Image.fromarray(garment_array()).convert("RGB"), PreprocessSettings(invert="always")
    )
    assert (never[:, :5] == 255).all()
    assert np.array_equal(never, 255 - auto)
    assert (always_dark[:, :5] == 255).all()


def test_settings_are_validated():
    with pytest.raises(ValueError, match="invert"):
        PreprocessSettings(invert="sometimes")
    with pytest.raises(ValueError, match="resample"):
        PreprocessSettings(resample="cubic-ish")
    with pytest.raises(ValueError, match="background"):
        PreprocessSettings(background="busy")
    with pytest.raises(ValueError, match="segment_size"):
        PreprocessSettings(segment_size=8)


def test_save_preview_round_trips(tmp_path):
    array = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)
    save_preview(array, tmp_path / "preview.png")
    with Image.open(tmp_path / "preview.png") as img:
        assert img.format == "PNG" and img.mode == "L"
        assert np.array_equal(np.asarray(img), array)


def test_worker_friendly_import_and_pickling():
    assert pickle.loads(pickle.dumps(preprocess_path)) is preprocess_path
    assert str(pickle.loads(pickle.dumps(ImageError("empty file")))) == "empty file"  # crosses processes
    settings = PreprocessSettings(invert="never", max_pixels=10)
    assert pickle.loads(pickle.dumps(settings)) == settings
    code = (
        "import sys, fmnist_batch.convert; "
        "heavy = {'tensorflow', 'keras', 'torch', 'matplotlib', 'rich', 'pandas'} & set(sys.modules); "
        "print(sorted(heavy))"
    )
    assert run_python(code).strip() == "[]"


# --- photos that are not catalog shots --------------------------------------------------------------

AUTO, PLAIN, SEGMENT = (PreprocessSettings(background=b) for b in ("auto", "plain", "segment"))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def shrink_mask(mask: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(mask).resize((size, size), Image.Resampling.BOX))


def test_plain_border_share_counts_the_outer_ring():
    img = Image.new("RGB", (100, 100), WHITE)
    ImageDraw.Draw(img).line((0, 10, 0, 90), fill=(200, 30, 30))  # 81 px of the 396 in the ring
    assert plain_border_share(img, 0.05) == pytest.approx(315 / 396)


@pytest.mark.parametrize(
    ("background", "tint", "fraction", "offset"),
    [
        (WHITE, None, 0.55, (0.0, 0.0)),
        (CATALOG_GREY, NAVY, 0.85, (0.1, -0.1)),
        (WHITE, (110, 30, 30), 0.95, (-0.1, 0.1)),  # the garment touches the top, bottom and left edges
        ((0, 0, 0), None, 0.6, (0.05, 0.0)),  # a dark plain background is plain too
    ],
)
def test_catalog_shots_have_a_plain_background(tmp_path, background, tint, fraction, offset):
    photo = render_catalog_photo(
        garment_array(), size=300, background=background, tint=tint, garment_fraction=fraction, offset=offset
    )
    jpeg = to_rgb(load_image(save_photo(photo, tmp_path / "p.jpg", "JPEG")))
    assert has_plain_background(jpeg)


@pytest.mark.parametrize("scene", [{}, {"light_gradient": 0.5}, {"garment_fraction": 0.3, "seed": 3}])
def test_photos_on_clutter_do_not_have_a_plain_background(scene):
    photo, _ = render_garment_photo(**scene)
    assert not has_plain_background(photo)


def test_auto_gives_catalog_photos_exactly_the_plain_conversion(catalog):
    """The fast path is the old conversion, untouched: every rendered catalog photo (all formats and
    modes, white or #fdfdfd, tinted, off-centre) and every sample gives the very same array."""
    samples = sorted(p for p in (Path(__file__).parent.parent / "samples").rglob("*") if p.is_file())
    for path in [path for path, _ in catalog] + samples:
        assert np.array_equal(preprocess_path(path, AUTO), preprocess_path(path, PLAIN)), path


@pytest.mark.parametrize(
    "scene",
    [
        {},
        {"seed": 1, "colour": (150, 40, 110)},
        {"garment_fraction": 0.35, "offset": (0.25, -0.2), "seed": 2},
        {"light_gradient": 0.6, "seed": 3},
        {"shadow": True, "seed": 4},
    ],
)
def test_grabcut_mask_covers_the_garment(scene):
    photo, silhouette = render_garment_photo(size=160, **scene)
    mask = grabcut_mask(np.asarray(photo))
    assert mask[silhouette].mean() > 0.97  # objects on the floor may come too: largest_component drops them
    assert iou(largest_component(mask), silhouette) >= 0.9


def test_grabcut_mask_is_the_same_on_every_call():
    pixels = np.asarray(render_garment_photo(size=160, seed=5)[0])
    assert np.array_equal(grabcut_mask(pixels), grabcut_mask(pixels))


@pytest.mark.parametrize("background", ["plain", "clutter"])
def test_remove_shadows_drops_the_cast_shadow_and_keeps_the_garment(background):
    photo, silhouette = render_garment_photo(size=160, background=background, shadow=True, seed=1)
    pixels = np.asarray(photo)
    cast = np.roll(silhouette, (8, 8), axis=(0, 1)) & ~silhouette  # the shadow's core, beside the garment
    floor = np.median(pixels[:5].reshape(-1, 3), axis=0)
    kept = remove_shadows(pixels, silhouette | cast, floor)
    assert kept[silhouette].mean() > 0.99
    assert kept[cast].mean() < (0.2 if background == "plain" else 0.5)  # objects on the floor keep colour


def test_largest_component_keeps_one_region_and_fills_its_holes():
    mask = np.zeros((60, 60), dtype=bool)
    mask[10:50, 10:40] = True
    mask[20:30, 20:30] = False  # a hole (a print taken for background)
    mask[5:9, 50:55] = True  # a stray bit of floor
    region = largest_component(mask)
    expected = np.zeros_like(mask)
    expected[10:50, 10:40] = True
    assert np.array_equal(region, expected)
    assert not largest_component(np.zeros((5, 5), dtype=bool)).any()


def test_soften_texture_flattens_fine_stripes_and_keeps_the_level():
    stripes = np.full((80, 80), 100.0, dtype=np.float32)
    stripes[:, ::2] = 140
    softened = soften_texture(stripes, 2.0)
    assert softened[10:-10, 10:-10].std() < 0.05 * stripes.std()
    assert softened.mean() == pytest.approx(stripes.mean(), abs=0.5)


def test_auto_contrast_gives_a_dim_and_a_bright_garment_the_same_levels():
    _, silhouette = render_garment_photo(size=120)
    rng = np.random.default_rng(0)
    garment = rng.uniform(0, 1, silhouette.shape).astype(np.float32)
    dim, bright = 20 + 40 * garment, 120 + 120 * garment
    stretched = auto_contrast(dim, silhouette)
    assert np.percentile(stretched[silhouette], (5, 95)) == pytest.approx(CONTRAST_LEVELS, abs=0.5)
    assert np.abs(stretched - auto_contrast(bright, silhouette))[silhouette].max() < 0.01


def test_paste_on_catalog_background():
    grey = np.array([[-5.0, 100.4, 300.0]], dtype=np.float32)
    mask = np.array([[True, True, False]])
    img = paste_on_catalog_background(grey, mask)
    assert img.mode == "RGB"
    assert [p[0] for p in first_row(img)] == [0, 100, CATALOG_LEVEL]


def test_segment_garment_puts_the_garment_alone_on_the_catalog_background():
    photo, silhouette = render_garment_photo(size=400, shadow=True, light_gradient=0.4, seed=6)
    segmented = segment_garment(photo, 160)
    assert segmented.size == (160, 160)
    garment = np.asarray(segmented.convert("L")) != CATALOG_LEVEL
    assert iou(garment, shrink_mask(silhouette, 160)) >= 0.85
    assert segment_garment(Image.new("RGB", (12, 40), WHITE), 160) is None  # too small to segment


@pytest.mark.parametrize(
    "scene",
    [
        {},
        {"garment_fraction": 0.3, "offset": (-0.25, 0.2), "seed": 2},  # small, off-centre
        {"light_gradient": 0.6, "seed": 3},  # uneven light
        {"shadow": True, "seed": 4},
        {"shadow": True, "light_gradient": 0.4, "colour": (150, 40, 110), "seed": 5},
    ],
)
def test_a_garment_on_clutter_looks_like_the_same_garment_on_a_plain_background(scene):
    """Compared with the same garment on #fdfdfd through the same conversion (measured: correlation
    0.94-0.995, silhouette IoU 0.86-0.99) and through the catalog one (correlation 0.93-0.97; the
    auto-contrast is the difference); the plain conversion of the cluttered photo correlates below 0.1."""
    photo, _ = render_garment_photo(**scene)
    catalog_shot, _ = render_garment_photo(background="plain", colour=scene.get("colour", (30, 40, 90)))
    out = preprocess_image(photo)
    assert not np.array_equal(out, preprocess_image(photo, PLAIN))  # auto did segment it
    reference = preprocess_image(catalog_shot, SEGMENT)
    assert correlation(out, reference) > 0.9
    assert iou(out > 0, reference > 0) > 0.8  # the same silhouette at 28x28
    assert correlation(out, preprocess_image(catalog_shot, PLAIN)) > 0.85


FULL_SIZE_CUT = PreprocessSettings(cut_size=160, cut_iterations=4)  # GrabCut on the whole working image


@pytest.mark.parametrize(
    "scene",
    [
        {},
        {"garment_fraction": 0.3, "offset": (-0.25, 0.2), "seed": 2},
        {"light_gradient": 0.6, "seed": 3},
        {"shadow": True, "light_gradient": 0.4, "colour": (150, 40, 110), "seed": 5},
        {"background": "plain", "seed": 6},
    ],
)
def test_the_small_cut_gives_the_full_size_cuts_view_and_nearly_its_image(scene):
    """GrabCut on a 96 px copy (the default, a third of the time) against GrabCut at the full 160 px
    working size with 4 iterations: the same decision (segmented or a catalog shot) and a 28x28 image
    that correlates above 0.95 (measured 0.97-0.999) with the same silhouette."""
    photo, _ = render_garment_photo(**scene)
    fast, full = convert_image(photo), convert_image(photo, FULL_SIZE_CUT)
    assert fast.view == full.view
    assert correlation(fast.image, full.image) > 0.95
    assert iou(fast.image > 0, full.image > 0) > 0.85


def test_plain_conversion_of_clutter_is_what_segmenting_fixes():
    photo, _ = render_garment_photo()
    catalog_shot, _ = render_garment_photo(background="plain")
    reference = preprocess_image(catalog_shot)
    assert correlation(preprocess_image(photo, PLAIN), reference) < 0.3
    assert np.array_equal(preprocess_image(photo, SEGMENT), preprocess_image(photo, AUTO))


REPO = Path(__file__).parent.parent


def run_python(code: str) -> str:
    """stdout of `code` in a fresh interpreter (what a module imports shows only in a new process)."""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO, timeout=600
    )
    return result.stdout


def test_opencv_is_imported_only_for_photos_that_are_segmented():
    code = (
        "import sys; from PIL import Image; from fmnist_batch.convert import *; "
        "preprocess_image(Image.new('RGB', (60, 60), 'white')); print('cv2' in sys.modules); "
        "preprocess_image(Image.effect_noise((60, 60), 60).convert('RGB')); print('cv2' in sys.modules)"
    )
    assert run_python(code).split() == ["False", "True"]


# --- fidelity on the real dataset -------------------------------------------------------------------

FIDELITY_CASES = [
    (WHITE, None, "PNG"),
    (CATALOG_GREY, None, "JPEG"),
    (WHITE, NAVY, "WEBP"),
    (CATALOG_GREY, (110, 30, 40), "JPEG"),
    (WHITE, None, "JPEG"),
    (CATALOG_GREY, None, "PNG"),
]


@pytest.mark.dataset
def test_catalog_photos_of_test_images_come_back_close_to_the_originals(tmp_path):
    """Render test-set images as catalog photos (300-600 px, off-centre, white or #fdfdfd background,
    tinted or not, sensor noise, JPEG/PNG/WebP) and check preprocessing gives the originals back.

    The round trip cannot be exact: enlarging then shrinking blurs the dataset's fine texture, the 5%
    trim drops the faint outermost pixels (so scale and phase shift by a fraction of a pixel), and a
    tinted garment is less contrasted than a black one. Measured with this setup over seeds 0-5: mean
    correlation 0.93-0.95, lowest single image 0.82-0.88 (0.74 over 300 images), mean absolute
    difference 14-17 levels; a wrong pairing correlates 0.30-0.38. The thresholds leave margin below the
    former and stay far above the latter.
    """
    sample = load_fmnist_test_sample(48, seed=0)
    if sample is None:
        pytest.skip("Fashion-MNIST test set not installed (apt-get install dataset-fashion-mnist)")
    originals, _ = sample
    rng = np.random.default_rng(0)
    outputs = []
    for i, original in enumerate(originals):
        background, tint, fmt = FIDELITY_CASES[i % len(FIDELITY_CASES)]
        photo = render_catalog_photo(
            original,
            size=int(rng.integers(300, 600)),
            background=background,
            tint=tint,
            offset=tuple(rng.uniform(-0.15, 0.15, 2)),
            noise=1.0,
            seed=i,
        )
        outputs.append(preprocess_path(save_photo(photo, tmp_path / f"{i}.{fmt.lower()}", fmt)))

    correlations = np.array([correlation(out, orig) for out, orig in zip(outputs, originals, strict=True)])
    wrong_pairs = np.array(
        [correlation(out, orig) for out, orig in zip(outputs, np.roll(originals, 1, 0), strict=True)]
    )
    mean_abs_diff = np.abs(np.array(outputs, dtype=int) - originals).mean()
    assert correlations.mean() > 0.88, correlations
    assert correlations.min() > 0.6, correlations
    assert wrong_pairs.mean() < 0.5
    assert mean_abs_diff < 20
