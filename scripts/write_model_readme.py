"""Write a model folder's human-readable card (README.md) from its JSON cards.

    python scripts/write_model_readme.py                      # models/README.md, from models/
    python scripts/write_model_readme.py --check              # exit 1 if models/README.md is stale
    python scripts/write_model_readme.py --model runs/paired --real-photos none

The evaluation on each kind of photo comes from the cards and from docs/real_photos.json (written by
scripts/evaluate_real_photos.py) when it exists. That file is also copied into the model folder as
real_photos.json, so the installed package carries it (the web app shows its real-photo figures).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from card_readme import render_model_readme  # scripts/card_readme.py, beside this script

from fmnist_batch.model import registry
from fmnist_batch.model.card import CARD_FILE, ModelCard

REPO = Path(__file__).resolve().parent.parent


def render(model: Path, real_photos: Path | None) -> str:
    """The README.md text for the model folder `model`."""
    card = ModelCard.load(model / CARD_FILE)
    photo = ModelCard.load(registry.verify(registry.photo_card(card))) if card.photo_model else None
    evaluation = json.loads(real_photos.read_text()) if real_photos and real_photos.is_file() else None
    return render_model_readme(card, photo, evaluation)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=REPO / "models", help="model folder (default: models/)")
    parser.add_argument(
        "--real-photos",
        default=str(REPO / "docs" / "real_photos.json"),
        help="evaluate_real_photos.py's JSON, or 'none' (default: docs/real_photos.json)",
    )
    parser.add_argument("--check", action="store_true", help="only check that README.md is up to date")
    args = parser.parse_args()
    real_photos = None if args.real_photos == "none" else Path(args.real_photos)
    text = render(args.model, real_photos)
    target = args.model / "README.md"
    figures = real_photos.read_text(encoding="utf-8") if real_photos and real_photos.is_file() else None
    copy = args.model / "real_photos.json"
    if args.check:
        stale = [
            path
            for path, expected in ((target, text), (copy, figures))
            if expected is not None and (not path.is_file() or path.read_text(encoding="utf-8") != expected)
        ]
        for path in stale:
            print(f"{path} is stale: run python scripts/write_model_readme.py", file=sys.stderr)
        return 1 if stale else 0
    target.write_text(text, encoding="utf-8")
    if figures is not None:
        copy.write_text(figures, encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
