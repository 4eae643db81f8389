"""The corpora of photos that are not catalog shots: where they are, which photos are taken, and how their
runs are summed up into a row (report.py renders the rows). methods.py measures them, with the same
whole-process runs of (c) classify and (d) the decode floor as for the catalog corpus.

- amateur: the CC0 photos of `<photos-root>/clothing-dataset-small/train` and `/validation` (garments on
  floors, beds, hangers: mostly the segmented view), all or a seeded sample (--real-limit), read through
  symbolic links in a temporary folder so (c) and (d) are given one folder holding just those photos;
- worn: `<photos-root>/catalog-myntra-dev`, 360 shop thumbnails, mostly on a model (the worn view). Their
  licence is not stated: they are read in place, by path, and never copied.

A corpus whose folder is absent is skipped with a note in the report.
"""

from __future__ import annotations

import csv
import os
import random
from dataclasses import dataclass
from pathlib import Path

AMATEUR, WORN = "amateur", "worn"
CORPORA = (AMATEUR, WORN)
AMATEUR_FOLDER = "clothing-dataset-small"
AMATEUR_SPLITS = ("train", "validation")
WORN_FOLDER = "catalog-myntra-dev"
EXTENSIONS = (".jpg", ".jpeg", ".png")  # what the decode floor (scripts/bench_decode_floor.py) picks up
VIEWS = ("catalog", "segmented", "worn")  # fmnist_batch.convert.settings.VIEWS, in the report's order
MAIN_VIEW = {AMATEUR: "segmented", WORN: "worn"}  # the path each corpus is there to time
TITLES = {AMATEUR: "amateur photos", WORN: "on-model shop photos"}

#: every non-catalog path, scope judge included: at most this wall time a photo on 2 cores, start-up
#: subtracted
TARGET_MS = 18.0
MOONSHOT_MS = 12.0


@dataclass
class RealCorpus:
    """One corpus: the folder (c) and (d) are given, and the photos it holds."""

    key: str
    root: Path  # --photos-root, which the report names the photos from
    folder: Path
    photos: list[Path]
    available: int  # photos the corpus has, of which `photos` were taken
    description: str


def list_photos(folder: Path) -> list[Path]:
    """The photos under folder, sorted, as the decode floor finds them (symbolic links to files included)."""
    return sorted(
        Path(root, name)
        for root, _, names in os.walk(folder)
        for name in names
        if name.lower().endswith(EXTENSIONS)
    )


def amateur_corpus(root: Path, limit: int, seed: int, work: Path) -> RealCorpus | str:
    """The amateur corpus (all, or `limit` photos drawn with `seed`) as symbolic links in work/amateur, or
    the note saying why it is skipped."""
    base = root / AMATEUR_FOLDER
    splits = [base / split for split in AMATEUR_SPLITS]
    missing = [str(split) for split in splits if not split.is_dir()]
    if missing:
        return f"{TITLES[AMATEUR]} skipped: {', '.join(missing)} not found (--photos-root)"
    every = [photo for split in splits for photo in list_photos(split)]
    if not every:
        return f"{TITLES[AMATEUR]} skipped: no photos in {base}"
    sampled = bool(limit) and limit < len(every)
    chosen = sorted(random.Random(seed).sample(every, limit)) if sampled else every
    folder = work / AMATEUR
    folder.mkdir(parents=True)
    links = []
    for photo in chosen:
        link = folder / "-".join(photo.relative_to(base).parts)  # train-dress-<name>.jpg
        link.symlink_to(photo)
        links.append(link)
    which = f"a sample drawn with seed {seed}, --real-limit {limit:,}" if sampled else "all of them"
    description = (
        f"{len(chosen):,} of the {len(every):,} CC0 photos in `{AMATEUR_FOLDER}/train` and `/validation` "
        f"({which}), given to (c) and (d) as one folder of symbolic links to them"
    )
    return RealCorpus(AMATEUR, root, folder, links, len(every), description)


def worn_corpus(root: Path) -> RealCorpus | str:
    """The on-model corpus, read in place, or the note saying why it is skipped."""
    folder = root / WORN_FOLDER
    if not folder.is_dir():
        return f"{TITLES[WORN]} skipped: {folder} not found (--photos-root)"
    photos = list_photos(folder)
    if not photos:
        return f"{TITLES[WORN]} skipped: no photos in {folder}"
    description = (
        f"the {len(photos):,} shop thumbnails of `{WORN_FOLDER}` (licence not stated: read in place, "
        "never copied)"
    )
    return RealCorpus(WORN, root, folder, photos, len(photos), description)


def startup_photo(csv_path: Path, folder: Path, view: str) -> Path | None:
    """The first photo of a classify CSV that took `view` (so the start-up measured on it loads what that
    path needs), else its first photo; None for an empty or missing CSV."""
    try:
        with open(csv_path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return None
    if not rows:
        return None
    row = next((row for row in rows if row.get("view") == view), rows[0])
    path = Path(row["path"])
    return path if path.is_absolute() else folder / path


def shown_path(photo: Path, root: Path) -> str:
    """The photo a symbolic link points to, relative to the photos root where it is under it."""
    real, root = Path(os.path.realpath(photo)), Path(os.path.realpath(root))
    return str(real.relative_to(root)) if real.is_relative_to(root) else str(real)


def summarise(corpus: RealCorpus, c: dict | None, d: dict | None, one: dict | None) -> dict:
    """The corpus's row: time per photo with start-up subtracted, for (c) its one-photo run's median wall
    time (start, imports, models, one photo, exit) over the other photos, for (d) its own reported time for
    the photos; the raw wall time per photo too; views; peak RSS; the target."""
    c_ok = c is not None and c["error"] is None and c["photos"] > 1
    d_ok = d is not None and d["error"] is None and d["photos"] > 0
    one_s = one["median_s"] if one and not one["error"] else None
    c_ms = 1000 * (c["wall_s"] - one_s) / (c["photos"] - 1) if c_ok and one_s is not None else None
    d_ms = 1000 * d["loop_s"] / d["photos"] if d_ok and d["loop_s"] is not None else None
    return {
        "corpus": corpus.key,
        "title": TITLES[corpus.key],
        "folder": str(corpus.folder),
        "startup_photo": None if one is None else shown_path(Path(one["photo"]), corpus.root),
        "description": corpus.description,
        "photos": len(corpus.photos),
        "available": corpus.available,
        "views": c["views"] if c_ok else None,
        "c_ms_per_photo": c_ms,
        "d_ms_per_photo": d_ms,
        "c_over_d": c_ms / d_ms if c_ms is not None and d_ms else None,
        "c_wall_ms_per_photo": 1000 * c["wall_s"] / c["photos"] if c_ok else None,
        "d_wall_ms_per_photo": 1000 * d["wall_s"] / d["photos"] if d_ok else None,
        "c_startup_s": one_s,
        "c_peak_rss_tree_mb": c["peak_rss_tree_mb"] if c_ok else None,
        "d_peak_rss_tree_mb": d["peak_rss_tree_mb"] if d_ok else None,
        "target_ms": TARGET_MS,
        "target_met": None if c_ms is None else c_ms <= TARGET_MS,
        "moonshot_ms": MOONSHOT_MS,
        "moonshot_met": None if c_ms is None else c_ms <= MOONSHOT_MS,
        "c": c,
        "d": d,
        "one_photo": one,
    }
