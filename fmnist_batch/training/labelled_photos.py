"""Labelled real photos as training data: a folder laid out as for ``evaluate`` (one subfolder per class,
or a mapping CSV), converted to 28x28 arrays by classify's own conversion.

A subfolder may accept several classes (``shoes`` -> Sandal|Sneaker|Ankle boot): each photo carries the
set of classes that count as right, for a partial-label loss.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmnist_batch.convert import ConversionSettings
from fmnist_batch.discover import discover
from fmnist_batch.evaluate import folder_classes, read_mapping
from fmnist_batch.labels import CLASS_NAMES, IMAGE_SIZE, NUM_CLASSES


@dataclass
class LabelledPhotos:
    root: Path
    mapping: str | None
    folder_names: list[str]  # the folders that were used, sorted
    accepted_by_folder: dict[str, frozenset[int]]
    files: list[str]  # converted photos, relative to root, sorted
    images: np.ndarray  # uint8 (N, 28, 28), garment bright on black like the dataset
    folder_index: np.ndarray  # int (N,): index into folder_names
    segmented: np.ndarray  # bool (N,): the conversion cut the garment out of its background
    failed: dict[str, int]  # per used folder: photos that could not be converted
    skipped: dict[str, int]  # folders no class fits: photos left out
    #: sha256 of the `sha256sum`-style listing "<sha256 of the file>  <path relative to root>", sorted
    #: by path, of every photo in the used folders (converted or not)
    files_sha256: str
    settings: ConversionSettings  # the conversion that made `images`

    @property
    def accepted(self) -> np.ndarray:
        """bool (N, NUM_CLASSES): the classes that count as right for each photo."""
        table = np.zeros((len(self.folder_names), NUM_CLASSES), dtype=bool)
        for row, name in enumerate(self.folder_names):
            table[row, sorted(self.accepted_by_folder[name])] = True
        return table[self.folder_index]

    def folder_counts(self) -> dict[str, dict]:
        """Per used folder: its accepted classes, converted photos and failures (what the card records)."""
        converted = np.bincount(self.folder_index, minlength=len(self.folder_names))
        return {
            name: {
                "accepted": [CLASS_NAMES[i] for i in sorted(self.accepted_by_folder[name])],
                "photos": int(converted[row]),
                "failed": self.failed[name],
            }
            for row, name in enumerate(self.folder_names)
        }


def _listing_sha256(root: Path, relative_paths: list[str]) -> str:
    digest = hashlib.sha256()
    for relative in sorted(relative_paths):
        file_hash = hashlib.sha256((root / relative).read_bytes()).hexdigest()
        digest.update(f"{file_hash}  {relative}\n".encode())
    return digest.hexdigest()


def _cache_key(files_sha256: str, settings: ConversionSettings) -> str:
    """Changes with the photos, the conversion settings or the conversion code."""
    from fmnist_batch import convert

    folder = Path(convert.__file__).parent
    source = b"".join(path.read_bytes() for path in sorted(folder.glob("*.py")))
    return hashlib.sha256(files_sha256.encode() + repr(settings).encode() + source).hexdigest()


def _convert_with_cache(
    root: Path,
    relative_paths: list[str],
    key: str,
    settings: ConversionSettings,
    workers: int | None,
    cache: Path | None,
    log: Callable[[str], None],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(uint8 images for every path, zeros where conversion failed; bool converted; bool segmented) for
    `relative_paths`."""
    if cache is not None and cache.is_file():
        with np.load(cache) as saved:
            if str(saved["key"]) == key and "segmented" in saved.files:
                log(f"converted photos read from the cache {cache}")
                return saved["images"], saved["converted"], saved["segmented"]
        log(f"the cache {cache} is for other photos, settings or conversion code: converting again")
    from fmnist_batch.engines.local import convert_files

    log(f"converting {len(relative_paths)} photos under {root} as classify does")
    results = convert_files([str(root / p) for p in relative_paths], settings, workers)
    images = np.zeros((len(results), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    converted = np.array([r.data is not None for r in results], dtype=bool)
    segmented = np.array([r.view == "segmented" for r in results], dtype=bool)
    for i, result in enumerate(results):
        if result.data is not None:
            images[i] = np.frombuffer(result.data, dtype=np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with open(cache, "wb") as f:  # a file object: np.savez would append .npz to a path
            np.savez(f, key=np.array(key), images=images, converted=converted, segmented=segmented)
    return images, converted, segmented


def load_labelled_photos(
    root: str | os.PathLike,
    mapping: str | os.PathLike | None = None,
    *,
    settings: ConversionSettings | None = None,
    workers: int | None = None,
    cache: str | os.PathLike | None = None,
    log: Callable[[str], None] = print,
) -> LabelledPhotos:
    """Every photo under `root` (folders read as ``evaluate`` reads them; folders no class fits are left
    out), converted as classify converts; photos that fail conversion are counted and left out.
    `cache` names an .npz file that keeps the converted arrays for the next run with the same photos."""
    root = Path(root)
    accepted = folder_classes(root, read_mapping(mapping) if mapping is not None else None)
    used = sorted(name for name, classes in accepted.items() if classes)
    skipped = {
        name: sum(1 for _ in discover([str(root / name)]))
        for name, classes in accepted.items()
        if not classes
    }
    relative_paths = sorted(
        os.path.relpath(file.path, root) for name in used for file in discover([str(root / name)])
    )
    settings = settings or ConversionSettings()
    files_sha256 = _listing_sha256(root, relative_paths)
    images, converted, segmented = _convert_with_cache(
        root,
        relative_paths,
        _cache_key(files_sha256, settings),
        settings,
        workers,
        Path(cache) if cache is not None else None,
        log,
    )
    folder_of = np.array([used.index(Path(p).parts[0]) for p in relative_paths], dtype=np.int64)
    failed = np.bincount(folder_of[~converted], minlength=len(used))
    if failed.sum():
        log(f"{int(failed.sum())} photos could not be converted and are left out")
    return LabelledPhotos(
        root=root,
        mapping=str(mapping) if mapping is not None else None,
        folder_names=used,
        accepted_by_folder={name: accepted[name] for name in used},
        files=[p for p, ok in zip(relative_paths, converted, strict=True) if ok],
        images=images[converted],
        folder_index=folder_of[converted],
        segmented=segmented[converted],
        failed={name: int(n) for name, n in zip(used, failed, strict=True)},
        skipped=skipped,
        files_sha256=files_sha256,
        settings=settings,
    )


def split_by_folder(folder_index: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation): validation holds `fraction` of each folder's photos, chosen by `seed`."""
    rng = np.random.default_rng(seed)
    validation = [
        rng.choice(idx, size=round(fraction * len(idx)), replace=False)
        for idx in (np.flatnonzero(folder_index == f) for f in np.unique(folder_index))
    ]
    val = np.sort(np.concatenate(validation)) if validation else np.array([], dtype=np.int64)
    return np.setdiff1d(np.arange(len(folder_index)), val), val


def accepted_accuracy(logits: np.ndarray, accepted: np.ndarray) -> float:
    """Share of photos whose top class is one of its accepted classes."""
    if not len(logits):
        return float("nan")
    return float(np.mean(accepted[np.arange(len(logits)), np.argmax(logits, axis=1)]))
