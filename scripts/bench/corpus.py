"""The catalog corpus: N catalog-style photos (70% JPEG, 30% PNG, 500-1,100 px square) rendered from the
Fashion-MNIST test set by scripts/synth.py into a cached folder, reused while complete; its copy at --scale
photos as hard links; the page cache warmed before timing."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import log

JPEG_SHARE = 0.7
SIZE_RANGE = (500, 1100)
TINTS = (None, (40, 60, 120), (120, 30, 30), (30, 90, 50), (90, 70, 40))
MARKER = ".fmnist-bench-corpus"  # a folder holding this was made by us and may be rebuilt
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class PhotoJob:
    """One photo to render: everything random is drawn up front, so the corpus depends only on the seed."""

    name: str
    index: int
    size: int
    background: tuple[int, int, int]
    tint: tuple[int, int, int] | None
    offset: tuple[float, float]
    garment_fraction: float
    fmt: str
    quality: int


def plan_corpus(n: int, seed: int) -> list[PhotoJob]:
    import numpy as np
    from synth import CATALOG_GREY, WHITE

    rng = np.random.default_rng(seed)
    # Without replacement up to the test set's 10,000 images, so a 3,000-photo corpus has no duplicates.
    indices = rng.choice(10_000, size=n, replace=n > 10_000)
    jobs = []
    for number, index in enumerate(indices):
        fmt = "JPEG" if rng.random() < JPEG_SHARE else "PNG"
        jobs.append(
            PhotoJob(
                name=f"{number:06d}-test{int(index):05d}.{'jpg' if fmt == 'JPEG' else 'png'}",
                index=int(index),
                size=int(rng.integers(SIZE_RANGE[0], SIZE_RANGE[1] + 1)),
                background=WHITE if rng.random() < 0.6 else CATALOG_GREY,
                tint=TINTS[rng.integers(len(TINTS))],
                offset=(float(rng.uniform(-0.12, 0.12)), float(rng.uniform(-0.12, 0.12))),
                garment_fraction=float(rng.uniform(0.5, 0.8)),
                fmt=fmt,
                quality=int(rng.integers(80, 96)),
            )
        )
    return jobs


_test_images = None  # the Fashion-MNIST test images, set in the parent before the render pool forks


def _render(job_and_folder: tuple[PhotoJob, str]) -> int:
    from synth import render_catalog_photo, save_photo

    job, folder = job_and_folder
    photo = render_catalog_photo(
        _test_images[job.index],
        size=job.size,
        background=job.background,
        tint=job.tint,
        offset=job.offset,
        garment_fraction=job.garment_fraction,
        noise=1.0,  # sensor noise, as in real photos (and scripts/make_samples.py)
        seed=job.index,
    )
    return save_photo(photo, Path(folder, job.name), job.fmt, quality=job.quality).stat().st_size


def _read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def _complete(folder: Path, manifest: dict | None, expected: dict) -> bool:
    if manifest is None or any(manifest.get(k) != v for k, v in expected.items()):
        return False
    return all((folder / "photos" / name).is_file() for name in manifest["files"])


def _fresh_folder(folder: Path) -> Path:
    """An empty folder/photos; refuses to clear a folder this script did not make."""
    photos = folder / "photos"
    if photos.exists():
        if not (folder / MARKER).exists():
            sys.exit(
                f"benchmark: {photos} exists and was not made by this script; choose another --corpus-dir"
            )
        shutil.rmtree(photos)
    photos.mkdir(parents=True)
    (folder / MARKER).touch()
    (folder / MANIFEST).unlink(missing_ok=True)
    return photos


def build_corpus(folder: Path, n: int, seed: int, workers: int) -> dict:
    """Render the corpus into folder/photos unless a complete one is there; return its manifest."""
    global _test_images
    expected = {"n": n, "seed": seed, "version": 2}
    manifest = _read_manifest(folder)
    if _complete(folder, manifest, expected):
        log(f"reusing the corpus in {folder}")
        return manifest
    import multiprocessing

    from fmnist_batch.training.data import load_dataset

    photos = _fresh_folder(folder)
    log(f"rendering {n} photos into {photos} (once; reused by later runs)")
    jobs = plan_corpus(n, seed)
    _test_images = load_dataset().test.images
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        sizes = pool.map(_render, [(job, str(photos)) for job in jobs], chunksize=16)
    formats = Counter(job.fmt for job in jobs)
    manifest = {
        **expected,
        "jpeg": formats["JPEG"],
        "png": formats["PNG"],
        "bytes": sum(sizes),
        "bytes_png": sum(size for job, size in zip(jobs, sizes, strict=True) if job.fmt == "PNG"),
        "render_s": round(time.perf_counter() - started, 1),
        "files": [job.name for job in jobs],
    }
    # Written last: its presence means the corpus is complete.
    (folder / MANIFEST).write_text(json.dumps(manifest))
    return manifest


def build_scaled_corpus(source: Path, folder: Path, total: int) -> dict:
    """`total` photos as hard links to the source corpus's files under other names, in subfolders.

    Hard links, not symlinks: classify lists each real path once, so symlinked copies would collapse
    back to the original files. Copies are the fallback across file systems."""
    names = sorted(p.name for p in (source / "photos").iterdir())
    expected = {"n": total, "source": str(source), "version": 1}
    manifest = _read_manifest(folder)
    if _complete(folder, manifest, expected):
        log(f"reusing the {total}-photo corpus in {folder}")
        return manifest
    photos = _fresh_folder(folder)
    log(f"linking {total} photos into {photos}")
    files, how = [], "hard links"
    for number in range(total):
        copy, name = divmod(number, len(names))
        target = Path(f"copy-{copy:02d}", f"c{copy:02d}-{names[name]}")
        (photos / target.parent).mkdir(exist_ok=True)
        try:
            os.link(source / "photos" / names[name], photos / target)
        except OSError:  # another file system, or links not allowed
            shutil.copyfile(source / "photos" / names[name], photos / target)
            how = "copies"
        files.append(str(target))
    manifest = {**expected, "how": how, "copies": -(-total // len(names)), "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    return manifest


def warm_page_cache(folder: Path) -> None:
    """Read every file once, so every method reads from memory, whichever runs first."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb") as f:
                while f.read(1 << 20):
                    pass


def evenly_spaced(items: Sequence[Path], count: int) -> list[Path]:
    """`count` items spread over the sequence, so a subset keeps the corpus's mix of formats and sizes."""
    if count >= len(items):
        return list(items)
    return [items[i * len(items) // count] for i in range(count)]
