"""What the server shows besides the API's answers: the page, its icon, and the model card as published."""

from __future__ import annotations

import functools
import io
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

PAGE_FILE = "web_app.html"
# The pages may load nothing from elsewhere: no CDN, no fonts, no analytics; images are blob: and data: URLs.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# A T-shirt in fractions of its box, as the dataset's first class draws it: neck, shoulder, sleeve, armpit,
# hem, and back up.
_TSHIRT = [
    (0.38, 0.05), (0.16, 0.12), (0.0, 0.36), (0.14, 0.47), (0.25, 0.38), (0.25, 0.95),
    (0.75, 0.95), (0.75, 0.38), (0.86, 0.47), (1.0, 0.36), (0.84, 0.12), (0.62, 0.05), (0.5, 0.14),
]  # fmt: skip
#: an absolute path in a string (POSIX, home-relative or Windows), as a model card's commands may hold
_ABSOLUTE_PATH = re.compile(r"(?:^|(?<=[\s=\"'(]))(?:~|[A-Za-z]:)?[/\\](?:[^\s/\\]+[/\\])*([^\s/\\]+)")


def page_html() -> str:
    return resources.files(__package__).joinpath(PAGE_FILE).read_text(encoding="utf-8")


@functools.cache
def favicon_png() -> bytes:
    """A 32x32 PNG of a T-shirt in the page's accent colour, made once (a few hundred bytes)."""
    size, scale = 32, 4  # drawn at 4x and reduced, for smooth edges
    img = Image.new("RGBA", (size * scale, size * scale), (0, 0, 0, 0))
    box = size * scale - 1
    ImageDraw.Draw(img).polygon([(x * box, y * box) for x, y in _TSHIRT], fill=(59, 91, 219, 255))
    buffer = io.BytesIO()
    img.resize((size, size), Image.Resampling.LANCZOS).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


#: the kinds of real photo whose accuracy the page quotes beside the dataset's (docs/real_photos.json keys)
REAL_PHOTO_SETS = ("amateur", "on_model")


@functools.cache
def real_photo_figures(card_path: Path) -> list[dict[str, Any]]:
    """The accuracy on real photos measured for the models of `card_path`'s folder: the sets of
    REAL_PHOTO_SETS from its real_photos.json (a copy of docs/real_photos.json that
    scripts/write_model_readme.py keeps beside the bundled cards); [] for a model measured on none."""
    try:
        measured = json.loads((Path(card_path).parent / "real_photos.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    sets = measured.get("sets") if isinstance(measured, dict) else None
    return [
        {name: entry[name] for name in ("key", "kind", "name", "photos", "accuracy")}
        for entry in sets or []
        if isinstance(entry, dict) and entry.get("key") in REAL_PHOTO_SETS
    ]


def public_card(card: Any) -> Any:
    """The model card with every absolute path cut to its last part: paths say where a model was made,
    which is the maker's machine's business, and mean nothing to a client."""
    if isinstance(card, dict):
        return {key: public_card(value) for key, value in card.items()}
    if isinstance(card, list):
        return [public_card(value) for value in card]
    if isinstance(card, str):
        return _ABSOLUTE_PATH.sub(lambda match: "…/" + match.group(1), card)
    return card
