"""The dataset reference: does a catalog shot's garment read as a Fashion-MNIST image?

The scope judge reads colour and texture. A Fashion-MNIST image enlarged into a product photo (a grey or
tinted 28 px silhouette) has neither, and the judge answers such photos `other` more often than real
garments. Their 28x28 images are the dataset's own, though: the main network answers them as it answers
the images it was trained on. The reference (models/reference/, built by
scripts/build_dataset_reference.py) holds the main network's logits for its training images, each scaled
to length 1; a catalog shot whose own scaled logits lie within the card's `radius` of one of them reads as
a dataset image, and like a 28x28 grey file it is not judged: it is in scope. Its in_scope then says how
near its image is to the training images (`in_scope_within`): the judge's operating point at the edge of
the radius, 1 at a training image's logits, so the shots the reference lets through least firmly rank
lowest among the photos in scope, as the judge's doubtful ones do.

The conversion asks (convert/scope.py), before it runs the judge: a conversion worker loads the main
network and the reference once (`shared_reference_gate`, from the files the model verified), so a catalog
shot that reads as a dataset image costs a 28x28 forward pass instead of the judge's.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from fmnist_batch.model import litert

if TYPE_CHECKING:
    from fmnist_batch.model.card import ModelCard
    from fmnist_batch.model.runtime import Model

#: rows compared at once: a block of distances is CHUNK x the reference's size (about 13 MB of float32)
CHUNK = 64


def unit_rows(logits: np.ndarray) -> np.ndarray:
    """Each row of `logits` scaled to length 1 (float32): the reference compares directions only."""
    logits = np.asarray(logits, dtype=np.float32)
    norms = np.linalg.norm(logits, axis=1, keepdims=True)
    return logits / np.maximum(norms, np.float32(1e-12))


class DatasetReference:
    """A loaded reference: `nearest(logits)` is each row's distance to the closest training image's. The
    radius it is compared with is the run's (ConversionSettings.dataset_radius, from the card by default),
    so the reference holds only the points."""

    def __init__(self, path: str | os.PathLike):
        points = np.load(path, allow_pickle=False)
        if points.ndim != 2 or not len(points):
            raise ValueError(f"{path} holds no reference points (shape {points.shape})")
        #: one row per logit: the similarities are summed column by column (see nearest)
        self._columns = np.ascontiguousarray(points.T, dtype=np.float32)

    def nearest(self, logits: np.ndarray) -> np.ndarray:
        """Euclidean distance from each row's unit logits to the nearest reference point (N,)."""
        rows = unit_rows(logits)
        if rows.shape[1:] != (len(self._columns),):
            raise ValueError(f"expected logits of {len(self._columns)} values, got shape {rows.shape}")
        best = np.empty(len(rows), np.float32)
        for start in range(0, len(rows), CHUNK):
            block = rows[start : start + CHUNK]
            # numpy's own loops, not a matrix product: OpenBLAS's threads keep spinning after each call,
            # and in a pool of conversion workers, one photo at a time, they burn the workers' cores
            similarity = np.outer(block[:, 0], self._columns[0])
            for k in range(1, len(self._columns)):
                similarity += np.outer(block[:, k], self._columns[k])
            # both unit length: |a - b|^2 = 2 - 2 a.b
            best[start : start + CHUNK] = np.sqrt(np.maximum(2 - 2 * similarity.max(axis=1), 0))
        return best


def in_scope_within(distance: float, radius: float, floor: float) -> float:
    """The in_scope of a shot whose logits lie `distance` (<= `radius`) from the nearest training image's:
    falling linearly from 1 at a training image to `floor`, the judge's operating point, at the edge of
    the radius. A ranking by distance, not a probability fitted on photos: only the two ends are fixed,
    by the radius and the operating point the card chose on licensed data. At the card's operating point
    no such shot is answered other; a stricter --other-threshold answers the farthest ones other first."""
    return floor + (1.0 - floor) * min(max(1.0 - distance / radius, 0.0), 1.0)


def load_reference(card: ModelCard, path: Path) -> DatasetReference:
    """The reference `card` declares, read from `path` (verified by the registry), after checking it was
    made with one of the card's own network files."""
    from fmnist_batch.model.card import ModelError

    entry = card.dataset_reference or {}
    networks = {f.get("sha256") for f in card.files.values()}
    if entry.get("network_sha256") not in networks:
        raise ModelError(
            f"model card {card.path}: its dataset reference was made with another network than the "
            "card's; rebuild it (scripts/build_dataset_reference.py) or remove the entry"
        )
    try:
        return DatasetReference(path)
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot load {path}: {e}") from None


class ReferenceFiles(NamedTuple):
    """What a conversion needs to ask the reference: the card whose main network made it (loaded at
    `precision`, as the run predicts) and the reference's file, both verified by the run's model; None
    for both: the bundled card's, verified where they are loaded (a Ray node, from its own installation)."""

    card: str | None
    precision: str
    points: str | None


class ReferenceGate:
    """The main network and the reference in one process: `read(image)` for one 28x28 uint8 converted
    image, by the same logits the run predicts with. A lock serialises the network: an interpreter is not
    safe to invoke from two threads at once (the web app converts uploads in a thread pool)."""

    def __init__(self, network: Model, reference: DatasetReference):
        self._network = network
        self.reference = reference
        self._lock = threading.Lock()

    def read(self, image: np.ndarray) -> tuple[float, np.ndarray]:
        """The image's distance to the nearest training image (within the run's radius: it reads as a
        dataset image), and the network's logits of it (10 float32): the run's own, which the run reuses
        rather than compute them again."""
        with self._lock:
            logits = self._network.predict_logits(np.asarray(image, np.uint8)[None])
        return float(self.reference.nearest(logits)[0]), logits[0]


#: this process's gates by files; a failure keeps its reason (one attempt each)
_gates = litert.PerProcess()


def shared_reference_gate(files: ReferenceFiles) -> ReferenceGate:
    """This process's gate for `files`, loaded on first use on one thread (litert.PerProcess: a forked
    worker loads its own). Files that cannot be loaded are a ModelError, here and at every later call."""
    from fmnist_batch.model.card import ModelError

    gate = _gates.get(files, lambda: _load_gate(files))
    if isinstance(gate, str):
        raise ModelError(gate)
    return gate


def _load_gate(files: ReferenceFiles) -> ReferenceGate | str:
    from fmnist_batch.model import registry
    from fmnist_batch.model.card import CARD_FILE, ModelCard, ModelError, bundled_model_dir
    from fmnist_batch.model.runtime import Model

    try:
        card = ModelCard.load(Path(files.card) if files.card else bundled_model_dir() / CARD_FILE)
        network = Model(card, "litert", 1, False, files.precision, False, False, use_scope_judge=False)
        points = files.points or registry.verify(registry.dataset_reference(card))
        reference = load_reference(card, Path(points))
    except (ModelError, OSError, ValueError, RuntimeError, ImportError) as e:
        return f"cannot load the dataset reference {files.points}: {e}"
    return ReferenceGate(network, reference)
