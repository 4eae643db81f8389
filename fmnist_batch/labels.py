"""Constants shared by every module: class names, image size, file extensions.

Nothing heavy may be imported here; the CLI imports this module on every start.
"""

from __future__ import annotations

CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
NUM_CLASSES = len(CLASS_NAMES)
IMAGE_SIZE = 28

#: Extensions classify picks up when it walks folders or expands globs (compared lower-cased).
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg",
    ".jpeg",
    ".png",
    ".webp",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
)

#: The classes an image of a view (convert.VIEWS) can show, where not all: the person path cuts out what a
#: person wears below the chin (a top, a dress, a coat), so a worn crop is never a shoe, a bag or trousers,
#: whatever the shape left after the head and skin are cut away looks like to the model.
VIEW_CLASSES = {"worn": ("T-shirt/top", "Pullover", "Dress", "Coat", "Shirt")}

#: The subfolder of a labelled folder (evaluate) that holds photos of none of the 10 classes.
OTHER_FOLDER = "other"

#: Refuse images with more pixels than this (decompression bombs); about 12,000 x 12,000.
DEFAULT_MAX_PIXELS = 144_000_000


def class_index(name: str) -> int:
    """Index of a class given its name, case-insensitively; raises KeyError with the valid names."""
    lowered = {n.lower(): i for i, n in enumerate(CLASS_NAMES)}
    try:
        return lowered[name.strip().lower()]
    except KeyError:
        raise KeyError(f"unknown class {name!r}; expected one of: {', '.join(CLASS_NAMES)}") from None
