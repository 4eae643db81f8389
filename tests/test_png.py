"""The fast PNG decoder: Pillow's pixels exactly, or None so that Pillow decodes the file itself;
and PNGs whose image data inflates past what their header says (zlib bombs) are refused in bounded
memory."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from fmnist_batch.convert import ConversionSettings, ImageError, load_image, png

LIMIT = ConversionSettings().max_pixels
REPO = Path(__file__).parent.parent


def photo_like(mode: str, size: tuple[int, int] = (301, 217), seed: int = 0) -> Image.Image:
    """Gradients plus noise, so Pillow's encoder picks every row filter (None, Sub, Up, Average, Paeth)."""
    rng = np.random.default_rng(seed)
    height, width = size[1], size[0]
    y, x = np.mgrid[0:height, 0:width]
    bands = len(mode)
    base = np.stack([(x * (3 + b) + y * (5 - b)) % 256 for b in range(bands)], axis=-1)
    noisy = np.clip(base + rng.integers(-12, 13, base.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(noisy[..., 0] if bands == 1 else noisy, mode)


def encode(img: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def pillow_decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return img.copy()


def row_filters(data: bytes, channels: int) -> set[int]:
    """The filter type of every row of a PNG (the first byte of each inflated row)."""
    width, height = struct.unpack(">II", data[16:24])
    idat, position = b"", 8
    while position < len(data):
        (length,) = struct.unpack_from(">I", data, position)
        if data[position + 4 : position + 8] == b"IDAT":
            idat += data[position + 8 : position + 8 + length]
        position += 12 + length
    rows = zlib.decompress(idat)
    stride = 1 + width * channels
    return {rows[y * stride] for y in range(height)}


def rewrite_chunk(data: bytes, name: bytes, change) -> bytes:
    """``data`` with the body of its first chunk ``name`` passed through ``change``, checksum redone."""
    position = 8
    while position < len(data):
        (length,) = struct.unpack_from(">I", data, position)
        if data[position + 4 : position + 8] == name:
            body = change(data[position + 8 : position + 8 + length])
            chunk = struct.pack(">I", len(body)) + name + body + struct.pack(">I", zlib.crc32(name + body))
            return data[:position] + chunk + data[position + 12 + length :]
        position += 12 + length
    raise AssertionError(f"no {name!r} chunk")


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
@pytest.mark.parametrize("level", [1, 6, 9])
def test_same_pixels_and_mode_as_pillow(mode, level):
    data = encode(photo_like(mode), compress_level=level)
    fast = png.decode_png(data, LIMIT)
    assert fast is not None, "a plain 8-bit PNG should take the fast path"
    reference = pillow_decode(data)
    assert fast.mode == reference.mode == mode
    assert fast.size == reference.size
    assert np.array_equal(np.asarray(fast), np.asarray(reference))


def test_every_row_filter_and_many_idat_chunks():
    img = photo_like("RGB", (900, 700), seed=3)
    data = encode(img)
    assert data.count(b"IDAT") > 5  # Pillow splits big images into many IDAT chunks
    assert row_filters(data, 3) >= {1, 2, 4}  # Sub, Up and Paeth at least
    assert np.array_equal(np.asarray(png.decode_png(data, LIMIT)), np.asarray(img))


def test_metadata_chunks_do_not_stop_the_fast_path():
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "a catalog tool")
    info.add_text("Comment", "compressed text", zip=True)
    img = photo_like("RGB")
    data = encode(img, pnginfo=info, dpi=(300, 300), icc_profile=b"\0" * 128)
    assert np.array_equal(np.asarray(png.decode_png(data, LIMIT)), np.asarray(img))


def interlaced(data: bytes) -> bytes:
    return rewrite_chunk(data, b"IHDR", lambda body: body[:12] + b"\x01")


def corrupt_idat(data: bytes) -> bytes:
    return rewrite_chunk(data, b"IDAT", lambda body: body[:40] + bytes([body[40] ^ 0xFF]) + body[41:])


def bad_checksum(data: bytes) -> bytes:
    """The last IDAT chunk's checksum zeroed (IEND is the last 12 bytes, that checksum the 4 before)."""
    return data[:-16] + b"\0\0\0\0" + data[-12:]


def unknown_row_filter(data: bytes) -> bytes:
    """Every row's filter byte set to 7 (only 0-4 exist), compressed again."""
    width, height = struct.unpack(">II", data[16:24])
    rows = b"".join(b"\x07" + bytes(width * 3) for _ in range(height))
    plain = encode(Image.new("RGB", (width, height)))
    assert plain.count(b"IDAT") == 1  # so the rewritten chunk holds every row
    return rewrite_chunk(plain, b"IDAT", lambda body: zlib.compress(rows))


def exif_chunk(data: bytes) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate
    return encode(pillow_decode(data), exif=exif)


FALLBACKS = {
    "palette": lambda: encode(photo_like("RGB").convert("P")),
    "1-bit": lambda: encode(photo_like("L").convert("1")),
    "16-bit": lambda: encode(Image.fromarray(np.arange(6000, dtype=np.uint16).reshape(60, 100))),
    "transparency colour": lambda: encode(photo_like("RGB"), transparency=(0, 0, 0)),
    "EXIF orientation": lambda: exif_chunk(encode(photo_like("RGB"))),
    "animation": lambda: encode(photo_like("RGB"), save_all=True, append_images=[photo_like("RGB", seed=1)]),
    "interlaced": lambda: interlaced(encode(photo_like("RGB"))),
    "truncated": lambda: encode(photo_like("RGB"))[:-2000],
    "bad chunk checksum": lambda: bad_checksum(encode(photo_like("RGB"))),
    "corrupt compressed data": lambda: corrupt_idat(encode(photo_like("RGB"))),
    "unknown row filter": lambda: unknown_row_filter(encode(photo_like("RGB"))),
    "not a PNG": lambda: b"GIF89a" + b"\0" * 100,
}


@pytest.mark.parametrize("kind", FALLBACKS)
def test_anything_else_is_left_to_pillow(kind):
    assert png.decode_png(FALLBACKS[kind](), LIMIT) is None


def test_too_many_pixels_is_left_to_pillow():
    data = encode(photo_like("L", (100, 100)))
    assert png.decode_png(data, 100 * 100) is not None
    assert png.decode_png(data, 100 * 100 - 1) is None


def test_a_png_too_big_to_inflate_in_one_piece_is_left_to_pillow(monkeypatch):
    data = encode(photo_like("RGB", (100, 100)))
    monkeypatch.setattr(png, "MAX_INFLATED_BYTES", 100 * (1 + 100 * 3))
    assert png.decode_png(data, LIMIT) is not None
    monkeypatch.setattr(png, "MAX_INFLATED_BYTES", 100 * (1 + 100 * 3) - 1)
    assert png.decode_png(data, LIMIT) is None


def test_with_the_fast_path_off_every_png_is_left_to_pillow(monkeypatch):
    monkeypatch.setattr(png, "ENABLED", False)
    assert png.decode_png(encode(photo_like("RGB")), LIMIT) is None


@pytest.mark.parametrize("length", [0, 1, 65535, 65536, 200_000])
def test_stored_zlib_round_trips(length):
    data = np.random.default_rng(length).integers(0, 256, length, dtype=np.uint8).tobytes()
    assert zlib.decompress(png.stored_zlib(data)) == data


@pytest.mark.parametrize(("mode", "loaded_size"), [("RGB", (160, 120)), ("RGBA", (640, 480))])
def test_load_image_gives_the_same_image_with_and_without_the_fast_path(
    tmp_path, monkeypatch, mode, loaded_size
):
    path = tmp_path / "shirt.png"
    path.write_bytes(encode(photo_like(mode, (640, 480))))
    fast = load_image(path)
    monkeypatch.setattr(png, "ENABLED", False)
    slow = load_image(path)
    # RGB is box-reduced towards 28x28 as before; RGBA is not (averaging with transparent pixels)
    assert fast.mode == slow.mode == mode and fast.size == slow.size == loaded_size
    assert np.array_equal(np.asarray(fast), np.asarray(slow))


@pytest.mark.parametrize("kind", ["truncated", "unknown row filter", "corrupt compressed data"])
def test_a_broken_png_still_gets_pillows_error_message(tmp_path, kind):
    path = tmp_path / "broken.png"
    path.write_bytes(FALLBACKS[kind]())
    with pytest.raises(ImageError, match="truncated or corrupt image"):
        load_image(path)


# --- more image data than the header says: zlib bombs and trailing garbage --------------------------


def png_chunk(name: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + name + body + struct.pack(">I", zlib.crc32(name + body))


def zlib_of_zeros(total: int, block: int = 2**20) -> bytes:
    """A valid zlib stream of ``total`` zero bytes (a multiple of ``block``), made in milliseconds: after a
    full flush deflate forgets what came before, so one flushed block of zeros compresses to the same bytes
    every time and can be repeated. The checksum of n zeros is Adler-32's a = 1, b = n mod 65521."""
    compressor = zlib.compressobj(9)
    first = compressor.compress(bytes(block)) + compressor.flush(zlib.Z_FULL_FLUSH)
    block_bytes = compressor.compress(bytes(block)) + compressor.flush(zlib.Z_FULL_FLUSH)
    header = first[: len(first) - len(block_bytes)]
    final_empty_block = b"\x03\x00"
    checksum = struct.pack(">I", (total % 65521) << 16 | 1)
    return header + block_bytes * (total // block) + final_empty_block + checksum


def rgb_png(
    width: int, height: int, image_data: bytes, idat_size: int = 2**16, more_chunks: bytes = b""
) -> bytes:
    """An 8-bit RGB PNG around an already compressed image data stream, split into IDAT chunks, with
    ``more_chunks`` between them and IEND."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idats = b"".join(
        png_chunk(b"IDAT", image_data[i : i + idat_size]) for i in range(0, len(image_data), idat_size)
    )
    return png.SIGNATURE + png_chunk(b"IHDR", header) + idats + more_chunks + png_chunk(b"IEND", b"")


def test_zlib_of_zeros_is_a_valid_stream():
    assert zlib.decompress(zlib_of_zeros(3 * 2**16, block=2**16)) == bytes(3 * 2**16)


#: Decodes argv[1] in a fresh process (peak RSS is per process) by argv[2]: "file" (classify's
#: load_image), "bytes" (serve's load_image_bytes) or "pillow" (load_image with the fast path off); prints the
#: outcome and the peak RSS in MiB.
DECODE_AND_MEASURE = """
import sys
from fmnist_batch.convert import ImageError, load_image, load_image_bytes, png
path, how = sys.argv[1], sys.argv[2]
if how == "pillow":
    png.ENABLED = False
try:
    img = load_image_bytes(open(path, "rb").read()) if how == "bytes" else load_image(path)
    print("decoded", img.mode, *img.size)
except ImageError as e:
    print("ImageError:", e)
# VmHWM, not ru_maxrss: the kernel carries ru_maxrss over from the forking parent (pytest, after the
# training tests, holds ~1 GB), while VmHWM belongs to this process's own memory
with open("/proc/self/status") as status:
    print(next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) // 1024)
"""


def decode_in_subprocess(path, how: str) -> tuple[str, int]:
    """(the outcome line, peak RSS in MiB) of decoding ``path`` in a fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-c", DECODE_AND_MEASURE, str(path), how],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    outcome, peak = result.stdout.strip().splitlines()
    return outcome, int(peak)


@pytest.fixture(scope="module")
def zlib_bomb(tmp_path_factory):
    """A 2 MB PNG whose 1000x1000 RGB header implies 3 MB of image data, which inflates to 2 GiB."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.png"
    path.write_bytes(rgb_png(1000, 1000, zlib_of_zeros(2 * 2**30)))
    assert path.stat().st_size < 3 * 2**20
    return path


@pytest.mark.parametrize("how", ["file", "bytes"])
def test_a_zlib_bomb_is_refused_without_inflating_it(zlib_bomb, how):
    outcome, peak_mib = decode_in_subprocess(zlib_bomb, how)
    assert peak_mib < 300
    assert outcome.startswith("ImageError: image data larger than its header says")


def test_pillow_stops_inflating_a_zlib_bomb_where_its_header_says(zlib_bomb):
    """Without ISA-L (and for every PNG the fast path leaves to it) Pillow decodes: it unfilters into the
    image and stops when the image is full, skipping the rest unread, so memory stays that of the image.
    Pillow does not report the excess: the image comes out, black."""
    outcome, peak_mib = decode_in_subprocess(zlib_bomb, "pillow")
    assert outcome == "decoded RGB 125 125"  # box-reduced towards 28x28 as any 1000x1000 photo
    assert peak_mib < 300


def rows_of(img: Image.Image) -> bytes:
    """The image's data stream before compression: each row with filter type 0 (None) in front."""
    pixels = np.asarray(img)
    return b"".join(b"\x00" + row.tobytes() for row in pixels)


IMAGE = photo_like("RGB", (50, 40))
ROWS = rows_of(IMAGE)
TRAILING_GARBAGE = {
    "after IEND": rgb_png(50, 40, zlib.compress(ROWS)) + b"garbage",
    "after the zlib stream, in its IDAT chunk": rgb_png(50, 40, zlib.compress(ROWS) + b"garbage"),
    "in an IDAT chunk after the zlib stream": rgb_png(
        50, 40, zlib.compress(ROWS), more_chunks=png_chunk(b"IDAT", b"garbage")
    ),
}


@pytest.mark.parametrize("where", TRAILING_GARBAGE)
def test_garbage_after_the_image_data_is_ignored_as_pillow_does(where):
    data = TRAILING_GARBAGE[where]
    assert np.array_equal(np.asarray(pillow_decode(data)), np.asarray(IMAGE))
    fast = png.decode_png(data, LIMIT)
    assert fast is not None
    assert np.array_equal(np.asarray(fast), np.asarray(IMAGE))


@pytest.mark.parametrize("extra", [1, 5, len(ROWS)])
def test_image_data_that_inflates_past_the_header_is_refused(extra):
    """Pillow silently drops the excess; here any excess is refused, since a few bytes or 2 GiB cannot
    be told apart without inflating them."""
    data = rgb_png(50, 40, zlib.compress(ROWS + bytes(extra)))
    with pytest.raises(ImageError, match="image data larger than its header says"):
        png.decode_png(data, LIMIT)


def test_image_data_exactly_as_long_as_the_header_says_across_many_chunks():
    data = rgb_png(50, 40, zlib.compress(ROWS), idat_size=7)
    assert np.array_equal(np.asarray(png.decode_png(data, LIMIT)), np.asarray(IMAGE))
