"""Choose the bundled card's default --min-confidence on labelled real photos, and record it.

    python scripts/choose_min_confidence.py ../shared/real-photos/clothing-dataset-small/validation \
        --mapping ../shared/real-photos/clothing-dataset-small/mapping.csv

Every photo of the folder is classified as classify does (no scope judge, no minimum), and the default
becomes the largest confidence on a 0.05 grid below which the answers are, together, right less often
than wrong (training/choose.py: uncertain_below). Use photos of a licence the project may use for
choosing (the CC0 clothing-dataset-small), never the Fashion-MNIST test set. Writes the card's
min_confidence record (--model, default the bundled card) and prints it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from fmnist_batch.classifier import Classifier
from fmnist_batch.evaluate import folder_classes, read_mapping
from fmnist_batch.labels import CLASS_NAMES
from fmnist_batch.model.card import ModelCard, find_card
from fmnist_batch.model.card_records import UncertainBelow, portable_path
from fmnist_batch.training.choose import UNCERTAIN_GRID, uncertain_below


def answers(folder: Path, mapping: str | None, model: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, right) of every labelled photo that converted."""
    accepted = folder_classes(folder, read_mapping(mapping) if mapping else None)
    classifier = Classifier(model, other=False, min_confidence=0.0)
    confidence, right = [], []
    for name, classes in accepted.items():
        if not classes:  # a folder no class fits (hats, shorts, skirts)
            continue
        for row in classifier.classify_folder(str(folder / name)):
            if row["status"] != "error":
                confidence.append(row["confidence"])
                right.append(CLASS_NAMES.index(row["label"]) in classes)
    return np.array(confidence), np.array(right)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("folder", type=Path, help="labelled photos: one subfolder per class")
    parser.add_argument("--mapping", help="which classes count as right per folder (evaluate's CSV)")
    parser.add_argument("--model", help="the model whose card to write (default: bundled)")
    args = parser.parse_args()
    confidence, right = answers(args.folder, args.mapping, args.model)
    value, accuracy, share = uncertain_below(confidence, right)
    grid = f"{UNCERTAIN_GRID[0]:g} to {UNCERTAIN_GRID[-1]:g} in steps of 0.05"
    record = UncertainBelow(
        value=value,
        rule=f"the largest confidence ({grid}) below which the answers are right less often than wrong",
        chosen_on=portable_path(args.folder),
        photos=len(confidence),
        accuracy_below=round(accuracy, 4),
        share_below=round(share, 4),
    )
    card = ModelCard.load(find_card(args.model))
    card.with_uncertain_below(record).write()
    print(json.dumps(record.to_dict(), indent=2))


if __name__ == "__main__":
    main()
