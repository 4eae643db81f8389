"""Small pieces the model card page is written from: the lineage of training commands, file rows, the
words for flip averaging and augmentation, licences, number formats, wrapping (for scripts/card_readme.py)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

from fmnist_batch.model.card import ModelCard, Provenance

#: the data sets a card may name as its source, with their licences
DATA_LICENCES = {
    "fashion-mnist": ("Fashion-MNIST (Zalando Research)", "MIT"),
    "clothing-dataset-small": ("clothing-dataset-small (Alexey Grigorev)", "CC0 1.0 (public domain)"),
}


def lineage(card: ModelCard) -> list[str]:
    """The commands of the card's training and its init_from chain, oldest first, each started from the
    one before it (a recorded `--init-from models` meant the bundled model of the day: that one)."""
    training = card.training
    if training is None:
        return ["# (this card records no training)"]
    chain: list[str] = [training.command]
    source: Provenance | None = training.init_from
    while source is not None:
        chain.append(source.command)
        source = source.init_from
    lines = []
    for older, command in zip([None, *reversed(chain)], reversed(chain), strict=False):
        if older is not None and "--init-from models" in command:
            lines.append(f"# --init-from models: the model the step above wrote ({out_folder(older)})")
        lines.append(command)
    return lines


def file_rows(card: ModelCard, prefix: str) -> list[str]:
    return [f"| `{prefix}{e['name']}` | `{e.get('sha256', '')[:16]}…` |" for e in card.files.values()]


def flip_words(card: ModelCard) -> str:
    if not card.flip_average:
        return "No flip averaging."
    if card.flip_average_below is None:
        return "Every image is read as the mean of its logits and its mirror image's."
    return (
        f"Images below {card.flip_average_below:g} confidence are read again mirrored and the two "
        "readings averaged (decided on validation)."
    )


def augmentation(description: Mapping[str, Any] | None) -> str:
    if not description:
        return "not recorded"
    level = description.get("level", "?")
    parts = [f"`{level}`"]
    if description.get("horizontal_flip"):
        parts.append("horizontal flips")
    if description.get("shift_fraction"):
        parts.append(f"shifts up to {description['shift_fraction']:.0%}")
    if description.get("rotation_fraction"):
        parts.append("small rotations")
    if description.get("random_erasing_prob"):
        parts.append("random erasing")
    if description.get("zoom_range"):
        parts.append("scale, contrast, gamma and blur jitter")
    return ", ".join(parts)


def data_licence(source: str) -> tuple[str, str]:
    lowered = source.lower()
    for key, value in DATA_LICENCES.items():
        if key in lowered:
            return value
    return source, "see NOTICE.md"


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def wrap(lines: list[str], width: int = 105) -> list[str]:
    """Long prose lines wrapped for people reading the file raw; tables, code and front matter as they are."""
    out, verbatim = [], False
    for line in lines:
        if line.startswith(("```", "---")):
            verbatim = not verbatim if line.startswith("```") else verbatim
            out.append(line)
        elif verbatim or line.startswith(("|", "#", "<!--")) or len(line) <= width:
            out.append(line)
        else:
            indent = "  " if line.startswith("- ") else ""
            out.extend(
                textwrap.wrap(
                    line, width, subsequent_indent=indent, break_on_hyphens=False, break_long_words=False
                )
            )
    return out


def out_folder(command: str) -> str:
    """The --out folder of a recorded retrain command."""
    words = command.split()
    return words[words.index("--out") + 1] if "--out" in words[:-1] else "OUT"
