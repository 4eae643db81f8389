"""The checks a model card passes before anything trusts it (ModelCard.from_dict runs them): each
raises ModelError saying what is wrong, and returns the parsed value."""

from __future__ import annotations

import math
from pathlib import Path, PurePath
from typing import Any

from fmnist_batch.labels import CLASS_NAMES

#: what a card's "format" says; a reader refuses formats it does not list (a later, different layout)
CARD_FORMAT = "fmnist-batch model card v1"
SUPPORTED_FORMATS = (CARD_FORMAT,)
#: The views (convert.VIEWS) a photo model may read, and what they are, for the card's reader.
PHOTO_VIEW_USES = {
    "segmented": "photos the conversion segments (not one plain background colour at the border)",
    "worn": "garments the person path cuts out of photos of a person",
}
PHOTO_VIEWS = tuple(PHOTO_VIEW_USES)
#: What a photo model reads when its card entry lists no views (cards from before the key), and when its
#: pairing found the main model reads worn crops better.
SEGMENTED_ONLY = ("segmented",)
#: The person path's detectors (model/person_models.py), each a file of the card's person_models entry.
PERSON_MODELS = ("face", "segment")


class ModelError(Exception):
    """The model cannot be used: missing, truncated, tampered with, or its card is broken."""


def _finite(value: Any, what: str) -> float:
    # bool is an int to Python, but `true` is no number to a card
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ModelError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def _bare_name(value: Any, what: str) -> str:
    """A file or folder name inside the model folder: a card must not point the runtime elsewhere."""
    if not isinstance(value, str) or not value or value in (".", "..") or PurePath(value).name != value:
        raise ModelError(f"{what} must be a plain name inside the model folder, got {value!r}")
    return value


def check_format(raw: Any) -> None:
    if not isinstance(raw, dict):
        raise ModelError("not a JSON object")
    if "format" not in raw:
        raise ModelError("no format key: not a card fmnist-batch wrote")
    if raw["format"] not in SUPPORTED_FORMATS:
        raise ModelError(
            f"unsupported format {raw['format']!r}; this fmnist-batch reads {', '.join(SUPPORTED_FORMATS)}"
        )
    missing = [key for key in ("class_names", "files", "preprocessing", "temperature") if key not in raw]
    if missing:
        raise ModelError(f"missing {', '.join(missing)}")
    if tuple(raw["class_names"]) != CLASS_NAMES:
        raise ModelError(f"lists other classes than Fashion-MNIST's: {raw['class_names']}")


def check_files(files: Any) -> dict[str, dict[str, str]]:
    if not isinstance(files, dict) or not files:
        raise ModelError("files must name at least one model file")
    for kind, entry in files.items():
        if not isinstance(entry, dict):
            raise ModelError(f"the files entry {kind} is not an object")
        _bare_name(entry.get("name"), f"the {kind} file's name")
    return files


def check_temperature(value: Any) -> float:
    temperature = _finite(value, "temperature")
    if temperature <= 0:
        raise ModelError(f"temperature must be positive, got {temperature}")
    return temperature


def check_preprocessing(prep: Any, files: dict) -> dict[str, Any]:
    """The parsed inference settings of the preprocessing block."""
    if not isinstance(prep, dict):
        raise ModelError("preprocessing is not an object")
    scale = _finite(prep.get("input_scale"), "input_scale")
    if scale == 0:
        raise ModelError("input_scale must not be 0: every image would reach the model as the same input")
    below = prep.get("flip_average_below")
    litert_file = str(prep.get("litert_file", "tflite"))  # cards before int8 ran the float file
    if litert_file not in files:
        raise ModelError(f"preprocessing.litert_file names {litert_file!r}, which files does not list")
    return {
        "input_scale": scale,
        "input_offset": _finite(prep.get("input_offset", 0.0), "input_offset"),
        "flip_average": bool(prep.get("flip_average", False)),  # cards before the setting: no
        "flip_average_below": None if below is None else _finite(below, "flip_average_below"),
        "litert_file": litert_file,
    }


def check_photo_model(entry: Any) -> dict[str, Any] | None:
    if entry is None:
        return None
    if not isinstance(entry, dict) or not {"folder", "card_sha256"} <= set(entry):
        raise ModelError("photo_model needs a folder and a card_sha256")
    _bare_name(entry["folder"], "photo_model.folder")
    views = entry.get("views", list(SEGMENTED_ONLY))
    if not isinstance(views, list) or not views or not set(views) <= set(PHOTO_VIEWS):
        raise ModelError(f"photo_model.views must list some of {', '.join(PHOTO_VIEWS)}, got {views!r}")
    return entry


def check_person_models(entry: Any) -> dict[str, Any] | None:
    """The person detectors entry: {"folder" (beside the card) or "bundled": true, and for each of
    PERSON_MODELS {"file", "sha256", "input"}, plus "licence" and "source"}."""
    if entry is None:
        return None
    if not isinstance(entry, dict) or not all(isinstance(entry.get(name), dict) for name in PERSON_MODELS):
        raise ModelError(f"person_models needs an entry for each of {', '.join(PERSON_MODELS)}")
    if entry.get("bundled") is not True:
        _bare_name(entry.get("folder"), "person_models.folder")
    for name in PERSON_MODELS:
        _bare_name(entry[name].get("file"), f"person_models.{name}.file")
        if not entry[name].get("sha256"):
            raise ModelError(f"person_models.{name} has no sha256")
    return entry


def check_garment_reader(entry: Any) -> dict[str, Any] | None:
    """The garment reader entry (model/garment_reader.py): folder, file, sha256, classes, weight."""
    if entry is None:
        return None
    if not isinstance(entry, dict) or not {"folder", "file", "sha256", "classes", "weight"} <= set(entry):
        raise ModelError("garment_reader needs a folder, a file, its sha256, its classes and a weight")
    _bare_name(entry["folder"], "garment_reader.folder")
    _bare_name(entry["file"], "garment_reader.file")
    classes = entry["classes"]
    if not isinstance(classes, list) or not classes or not set(classes) <= set(CLASS_NAMES):
        raise ModelError(f"garment_reader.classes must be class names, got {classes!r}")
    if not 0 <= _finite(entry["weight"], "garment_reader.weight") <= 1:
        raise ModelError(f"garment_reader.weight must be in [0, 1], got {entry['weight']!r}")
    return entry


def verified_file(path: Path, sha256: str | None, what: str) -> Path:
    """`path`, after checking it exists and has the sha256 its card declares (`what` names it)."""
    from fmnist_batch.model.card_records import file_sha256

    if not sha256:
        raise ModelError(f"the model card declares no sha256 for {path}; refusing to load it")
    if not path.is_file():
        raise ModelError(f"model file not found: {path} ({what})")
    digest = file_sha256(path)
    if digest != sha256:
        raise ModelError(
            f"{path} does not match its model card (sha256 {digest[:12]}..., card says {sha256[:12]}...): "
            f"the {what}'s file is truncated, corrupted or was replaced"
        )
    return path


def check_scope_judge(entry: Any) -> dict[str, Any] | None:
    """The scope judge entry (model/scope_judge.py): folder, file, sha256, its input side and the
    operating point (the in_scope below which a photo is answered other)."""
    if entry is None:
        return None
    if not isinstance(entry, dict) or not {"folder", "file", "sha256", "side", "threshold"} <= set(entry):
        raise ModelError("scope_judge needs a folder, a file, its sha256, its input side and a threshold")
    _bare_name(entry["folder"], "scope_judge.folder")
    _bare_name(entry["file"], "scope_judge.file")
    side = entry["side"]
    if isinstance(side, bool) or not isinstance(side, int) or not 16 <= side <= 1024:
        raise ModelError(f"scope_judge.side must be a whole number of pixels, got {side!r}")
    if not 0 <= _finite(entry["threshold"], "scope_judge.threshold") <= 1:
        raise ModelError(f"scope_judge.threshold must be in [0, 1], got {entry['threshold']!r}")
    if entry.get("second_look") is not None:
        _check_second_look(entry["second_look"], float(entry["threshold"]))
    return entry


def _check_second_look(look: Any, threshold: float) -> None:
    """The judge's second look (model/scope_judge.py): the judge's file read at a larger side, by its
    second output column, asked for the photos the first finds below `ask_below`. Every photo it is not
    asked for must stay in scope, so `ask_below` cannot lie under the operating point."""
    if not isinstance(look, dict) or not {"side", "ask_below"} <= set(look):
        raise ModelError("scope_judge.second_look needs its input side and ask_below")
    side = look["side"]
    if isinstance(side, bool) or not isinstance(side, int) or not 16 <= side <= 1024:
        raise ModelError(f"scope_judge.second_look.side must be a whole number of pixels, got {side!r}")
    ask_below = _finite(look["ask_below"], "scope_judge.second_look.ask_below")
    if not threshold <= ask_below <= 1:
        raise ModelError(
            f"scope_judge.second_look.ask_below must be in [threshold {threshold:g}, 1], got {ask_below!r}"
        )


def check_dataset_reference(entry: Any) -> dict[str, Any] | None:
    """The dataset reference entry (model/dataset_reference.py): folder, file, sha256, the radius within
    which a catalog shot reads as a dataset image, and the sha256 of the main network whose logits it
    holds (a reference made with another network means nothing); optionally the ink_limit its colours
    must keep to (convert/ink.py)."""
    if entry is None:
        return None
    needed = {"folder", "file", "sha256", "radius", "network_sha256"}
    if not isinstance(entry, dict) or not needed <= set(entry):
        raise ModelError(
            "dataset_reference needs a folder, a file, its sha256, a radius and its network's sha256"
        )
    _bare_name(entry["folder"], "dataset_reference.folder")
    _bare_name(entry["file"], "dataset_reference.file")
    if not 0 <= _finite(entry["radius"], "dataset_reference.radius") <= 2:
        raise ModelError(f"dataset_reference.radius must be in [0, 2], got {entry['radius']!r}")
    if "ink_limit" in entry and _finite(entry["ink_limit"], "dataset_reference.ink_limit") < 0:
        raise ModelError(f"dataset_reference.ink_limit must be >= 0, got {entry['ink_limit']!r}")
    return entry
