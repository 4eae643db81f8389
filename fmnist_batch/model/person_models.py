"""The two detectors the person path runs: MediaPipe's BlazeFace short-range face detector and its selfie
segmentation, both Apache-2.0 .tflite files vendored in models/person/ and run by LiteRT, the runtime the
classifier already uses (no mediapipe dependency).

Which files a run uses is the model card's to say (`ModelCard.person_files`, verified by the registry
before any photo is read); the conversion carries their paths (`PersonFiles`) to every worker. They are
loaded once per process and only when a photo could show a person (see convert/person.py), so a folder
of product shots never pays for them. A file that cannot be loaded in a worker switches the person path
off there: the photo then gets the conversion it would have had without it.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fmnist_batch.model import litert

FACE_MODEL = "face_detection_short_range.tflite"
SEGMENT_MODEL = "selfie_segmentation.tflite"
#: BlazeFace's input side and its minimum score (MediaPipe's own min_detection_confidence default).
FACE_INPUT = 128
MIN_FACE_SCORE = 0.5
#: Selfie segmentation's input side (the square "general" model).
SEGMENT_INPUT = 256


@dataclass(frozen=True)
class PersonFiles:
    """The detector files a conversion loads, as paths: picklable, so a worker gets them with its
    settings. The registry resolves and verifies them (model/registry.py); loading one checks nothing."""

    face: str
    segment: str


def _interpreter(path: Path):
    """A LiteRT interpreter on one thread: conversion already runs one worker per core."""
    return litert.allocated_interpreter(path, num_threads=1)


@functools.cache
def face_anchors() -> np.ndarray:
    """BlazeFace short-range SSD anchor centres (896 x [cx, cy], unit square): strides 8 and 16 on the
    128 px input, 2 and 6 anchors per cell, fixed size 1 (MediaPipe's face_detection_short_range graph)."""
    centres = []
    for stride, per_cell in ((8, 2), (16, 6)):
        cells = FACE_INPUT // stride
        ys, xs = np.mgrid[0:cells, 0:cells]
        grid = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 2)
        centres.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


@dataclass(frozen=True)
class Face:
    """The most confident face, in pixels of the photo: box (left, top, right, bottom), its score, and six
    keypoints (right eye, left eye, nose tip, mouth, right ear, left ear) as (x, y) rows."""

    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def chin(self) -> float:
        return self.box[3]

    @property
    def centre_x(self) -> float:
        return (self.box[0] + self.box[2]) / 2

    @property
    def eye_level(self) -> float:
        return float(self.keypoints[:2, 1].mean())


def letterbox(rgb: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    """An RGB array padded to a square with its edge colour (a studio's white stays white) and resized to
    ``size``: both models take square inputs, and stretching would distort faces. Returns floats in [0, 1],
    the scale (model px per photo px) and the (x, y) padding in photo pixels."""
    height, width = rgb.shape[:2]
    side = max(height, width)
    pad_x, pad_y = (side - width) // 2, (side - height) // 2
    padding = ((pad_y, side - height - pad_y), (pad_x, side - width - pad_x), (0, 0))
    square = Image.fromarray(np.pad(rgb, padding, mode="edge"))
    resized = square.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32) / 255.0, size / side, (pad_x, pad_y)


def _decode_face(
    raw: np.ndarray, anchor: np.ndarray, score: float, scale: float, pad: tuple[int, int]
) -> Face:
    """One BlazeFace regression row (box centre and size, then six keypoints, in input pixels relative
    to the anchor) -> a Face in photo pixels."""
    centre = raw[:2] / FACE_INPUT + anchor
    half = raw[2:4] / FACE_INPUT / 2
    points = raw[4:16].reshape(6, 2) / FACE_INPUT + anchor
    offset = np.array(pad, dtype=np.float32)

    def to_photo(unit: np.ndarray) -> np.ndarray:
        return unit * FACE_INPUT / scale - offset

    left, top = to_photo(centre - half)
    right, bottom = to_photo(centre + half)
    return Face((float(left), float(top), float(right), float(bottom)), score, to_photo(points))


class PersonModels:
    """Both detectors, loaded from their files. A lock serialises calls: an interpreter is not safe to
    invoke from two threads at once (the web app converts uploads in a thread pool)."""

    def __init__(self, files: PersonFiles) -> None:
        self.face = _interpreter(Path(files.face))
        self.segment = _interpreter(Path(files.segment))
        self._lock = threading.Lock()

    def _run(self, interpreter, x: np.ndarray) -> dict[str, np.ndarray]:
        with self._lock:
            interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x[None])
            interpreter.invoke()
            return {
                d["name"]: interpreter.get_tensor(d["index"])[0] for d in interpreter.get_output_details()
            }

    def detect_face(self, rgb: np.ndarray) -> Face | None:
        """The most confident face in an RGB uint8 array, or None when none scores MIN_FACE_SCORE."""
        x, scale, pad = letterbox(rgb, FACE_INPUT)
        outputs = self._run(self.face, x * 2 - 1)
        logits = outputs["classificators"][:, 0]
        best = int(np.argmax(logits))
        score = float(1 / (1 + np.exp(-np.clip(logits[best], -100, 100))))
        if score < MIN_FACE_SCORE:
            return None
        return _decode_face(outputs["regressors"][best], face_anchors()[best], score, scale, pad)

    def person_mask(self, rgb: np.ndarray) -> np.ndarray:
        """Per-pixel person probability (float32, the photo's height x width)."""
        x, scale, (pad_x, pad_y) = letterbox(rgb, SEGMENT_INPUT)
        (out,) = self._run(self.segment, x).values()
        side = round(SEGMENT_INPUT / scale)
        full = np.asarray(Image.fromarray(out[:, :, 0]).resize((side, side), Image.Resampling.BILINEAR))
        height, width = rgb.shape[:2]
        return full[pad_y : pad_y + height, pad_x : pad_x + width]


def load_person_models(files: PersonFiles) -> PersonModels | None:
    """Both detectors, or None when either file is missing, unreadable or not a model LiteRT can run."""
    try:
        return PersonModels(files)
    except (OSError, ValueError, RuntimeError, ImportError):
        return None


_loaded = litert.PerProcess()


def shared_person_models(files: PersonFiles) -> PersonModels | None:
    """This process's detectors from `files`, loaded on first use (a failure is remembered too: one
    attempt per process; see litert.PerProcess)."""
    return _loaded.get(files, lambda: load_person_models(files))


def forget_person_models() -> None:
    """Drop the loaded detectors (the next photo that needs them loads them again)."""
    _loaded.clear()
