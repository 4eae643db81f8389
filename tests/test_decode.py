"""Decoding (fmnist_batch/convert/decode.py): every image mode to RGB, every format to the same input, EXIF
orientation, reduced decoding of big files, and each unreadable file as a one-line error."""

from __future__ import annotations

import resource

import numpy as np
import pytest
from photos import (
    NAVY,
    WHITE,
    correlation,
    first_row,
    garment_array,
    photo_with_box,
    png_claiming_size,
    render_catalog_photo,
    save_photo,
)
from PIL import Image
from unprivileged import run_unprivileged

from fmnist_batch.convert import (
    ConversionSettings,
    ImageError,
    convert_image,
    convert_path,
    load_image,
    to_rgb,
)

# --- modes ----------------------------------------------------------------------------------------


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
    reference = convert_path(save_photo(photo, tmp_path / "ref.png", "PNG")).image
    # RGBA files hide black under their transparent background: only compositing onto white matches.
    out = convert_path(save_photo(photo, tmp_path / f"photo.{fmt.lower()}", fmt, mode)).image
    assert out.dtype == np.uint8 and out.shape == (28, 28)
    assert correlation(out, reference) > 0.97
    assert np.abs(out.astype(int) - reference).mean() < 6


# --- loading --------------------------------------------------------------------------------------


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
    settings = ConversionSettings()
    path = tmp_path / "big.jpg"
    photo_with_box(size=(4000, 3000), box=(1000, 500, 2000, 2500)).save(path, quality=90)
    loaded = load_image(path, settings)
    # decoded at 1/8 scale (500x375), then box-reduced by 3: the short side stays >= draft_factor * size
    target = settings.draft_factor * settings.size
    assert loaded.size == (167, 125)
    assert target <= min(loaded.size) < 2 * target
    out = convert_path(path, settings).image
    assert out[:, :6].max() == 0 and out[:, 8:20].min() > 100  # still the garment, 14x28, centred


def test_big_png_is_box_reduced_and_converts_like_the_full_size_image(tmp_path):
    path = tmp_path / "big.png"
    full = photo_with_box(size=(1200, 900), box=(100, 100, 300, 800))
    full.save(path)
    loaded = load_image(path)
    assert loaded.size == (150, 113)  # reduced by 8 = 900 // 112 (draft_factor 4 * 28), rounding up
    # (without the final stretch, which would scale by whichever has the brighter sharpening halo)
    plain = ConversionSettings(full_range=False)
    reduced, unreduced = convert_path(path, plain).image, convert_image(full, plain).image
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
        convert_path(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 50_000  # kB; decoding = 2.5 GB


def test_max_pixels_is_checked_before_decoding(tmp_path):
    path = tmp_path / "claims.png"
    path.write_bytes(png_claiming_size(10_000, 5_000))  # under Pillow's own limit: our check decides
    settings = ConversionSettings(max_pixels=1_000_000)
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
