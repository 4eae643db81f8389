"""Fixtures shared by the classify tests: real catalog photos rendered from the Fashion-MNIST test set,
in every format and mode real folders bring, plus the bad files they bring too."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from photos import (
    CATALOG_GREY,
    WHITE,
    load_fmnist_test_sample,
    png_claiming_size,
    render_catalog_photo,
    save_photo,
)

from fmnist_batch.labels import CLASS_NAMES

# (format, mode, EXIF orientation): what a catalog folder holds
VARIANTS = [
    ("JPEG", "RGB", None),
    ("PNG", "RGBA", None),
    ("WEBP", "RGB", None),
    ("PNG", "P", None),
    ("JPEG", "CMYK", None),
    ("PNG", "L", None),
    ("PNG", "I;16", None),
    ("JPEG", "RGB", 6),
    ("JPEG", "RGB", 8),
    ("TIFF", "RGB", None),
    ("BMP", "RGB", None),
    ("WEBP", "RGBA", None),
]
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "TIFF": "tif", "BMP": "bmp", "GIF": "gif"}


def render_photos(folder: Path, n: int, seed: int = 1) -> list[tuple[Path, str]]:
    """n photos of test-set images (off-centre, tinted, white or light-grey background, every variant);
    returns (path, true class name) pairs."""
    sample = load_fmnist_test_sample(n, seed=seed)
    if sample is None:
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    images, labels = sample
    folder.mkdir(parents=True, exist_ok=True)
    photos = []
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        fmt, mode, rotation = VARIANTS[i % len(VARIANTS)]
        photo = render_catalog_photo(
            image,
            size=300 + (i * 37) % 300,
            background=WHITE if i % 2 else CATALOG_GREY,
            tint=[None, (30, 50, 110), (110, 30, 30)][i % 3],
            offset=(((i * 7) % 9 - 4) / 40, ((i * 5) % 9 - 4) / 40),
            garment_fraction=0.55 + (i % 4) * 0.1,
            seed=i,
        )
        path = folder / f"photo-{i:03d}.{EXTENSIONS[fmt]}"
        save_photo(photo, path, fmt, mode=mode, exif_rotation=rotation)
        photos.append((path, CLASS_NAMES[label]))
    return photos


@pytest.fixture(scope="session")
def catalog(tmp_path_factory) -> list[tuple[Path, str]]:
    return render_photos(tmp_path_factory.mktemp("catalog") / "photos", 96)


def make_bad_files(folder: Path) -> dict[str, Path]:
    """Files a real folder brings that cannot be classified, keyed by what is wrong with them."""
    folder.mkdir(parents=True, exist_ok=True)
    good = render_photos(folder / "good", 1, seed=5)[0][0]
    data = good.read_bytes()
    files = {
        "empty": folder / "empty.jpg",
        "truncated": folder / "truncated.jpg",
        "text": folder / "notes.jpg",
        "bomb": folder / "bomb.png",
    }
    files["empty"].write_bytes(b"")
    files["truncated"].write_bytes(
        data[: len(data) // 3] if good.suffix == ".jpg" else b"\xff\xd8\xff\xe0" + b"0" * 100
    )
    files["text"].write_text("this is not a photo\n")
    files["bomb"].write_bytes(png_claiming_size(50_000, 50_000))
    if os.geteuid() != 0:  # root reads anything: the unreadable case only exists for other users
        files["unreadable"] = folder / "locked.jpg"
        files["unreadable"].write_bytes(data)
        files["unreadable"].chmod(0)
    return files


@pytest.fixture
def nasty_names(tmp_path, catalog) -> list[Path]:
    """Copies of good photos under names that break naive CSV handling."""
    folder = tmp_path / "nasty"
    folder.mkdir()
    names = ["comma, in name.jpg", 'quote " in name.jpg', "new\nline.jpg", "ünïcødé 写真.jpg", "=cmd.jpg"]
    paths = []
    for name, (source, _) in zip(names, catalog, strict=False):
        target = folder / name
        target.write_bytes(source.read_bytes())
        paths.append(target)
    return paths


@pytest.fixture
def open_tmp():
    """A scratch folder an unprivileged user may enter, for tests of permission errors (see unprivileged)."""
    from unprivileged import open_folder

    folder = open_folder()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)  # root removes what a test locked


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With FMNIST_NO_SKIPS=1 (CI sets it), a skipped test fails: CI installs everything a test needs,
    so a skip there means a test silently stopped testing."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("FMNIST_NO_SKIPS") == "1" and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped where nothing may be skipped (FMNIST_NO_SKIPS=1): {reason}"
