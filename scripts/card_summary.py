"""Print a model card's figures as the Markdown the README shows.

python scripts/card_summary.py models/model_card.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fmnist_batch.model.card import Metrics, ModelCard, TrainingRecord


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("card", nargs="?", default="models/model_card.json")
    card = ModelCard.load(Path(parser.parse_args().card))
    metrics, training = card.metrics, card.training
    if training is None:
        parser.error(f"{card.path} has no training record")
    print("| figure | value |\n| --- | --- |")
    rows = [
        ("test accuracy (10,000 official test images, evaluated once)", f"{metrics.test_accuracy:.4f}"),
        ("test accuracy of the exported .tflite", f"{_or_nan(metrics.tflite_test_accuracy):.4f}"),
        *_int8_rows(card, metrics),
        ("validation accuracy (5,000 held out of the 60,000)", f"{metrics.validation_accuracy:.4f}"),
        ("expected calibration error, test (temperature-scaled)", f"{metrics.test_ece:.4f}"),
        ("expected calibration error, test (raw softmax)", f"{metrics.test_ece_uncalibrated:.4f}"),
        ("temperature (fitted on validation)", f"{card.temperature:.3f}"),
        ("parameters", f"{training.parameters:,}"),
        ("flip averaging (decided on validation)", _flip(card)),
        *_training_rows(training),
        *_photo_model_rows(card),
    ]
    for name, value in rows:
        print(f"| {name} | {value} |")
    print("\n| class | precision | recall | F1 |\n| --- | ---: | ---: | ---: |")
    for name, scores in (metrics.test_per_class or {}).items():
        print(f"| {name} | {scores['precision']:.3f} | {scores['recall']:.3f} | {scores['f1']:.3f} |")


def _or_nan(value: float | None) -> float:
    return float("nan") if value is None else value


def _flip(card: ModelCard) -> str:
    record = card.flip_record
    if record is None:
        return "off (a card from before the setting)"
    state = "on" if card.flip_average else "off"
    below = card.flip_average_below
    if state == "on" and below is not None:
        state = (
            f"on for images below {below:g} confidence ({record.validation_mirrored_share:.0%} of "
            f"validation; {record.validation_accuracy_gated:.4f})"
        )
    return (
        f"{state} (validation {record.validation_accuracy_single:.4f} single view, "
        f"{record.validation_accuracy_flip:.4f} averaging every image with its mirror image)"
    )


def _training_rows(training: TrainingRecord) -> list[tuple[str, str]]:
    source = training.init_from
    if training.epochs_run == 0 and source:
        # `retrain --epochs 0`: these weights were trained by the source run, exported again here
        return [
            (
                "epochs run",
                "none here: re-exported (`retrain --epochs 0`) from a model made by "
                + (
                    f"`{source.command}` ({source.epochs_run} epochs)"
                    if source.epochs_run
                    else f"`{source.command}`, itself a re-export (see the README)"
                ),
            )
        ]
    return [
        ("epochs run (best)", f"{training.epochs_run} ({training.best_epoch})"),
        ("training wall time", f"{training.train_seconds / 60:.0f} min"),
    ]


def _int8_rows(card: ModelCard, metrics: Metrics) -> list[tuple[str, str]]:
    record = card.quantization
    if record is None:
        return []
    runs = "int8" if card.litert_file == "tflite_int8" else "float"
    return [
        ("test accuracy of the int8 .tflite", f"{_or_nan(metrics.int8_test_accuracy):.4f}"),
        ("expected calibration error, test, int8 .tflite", f"{_or_nan(metrics.int8_test_ece):.4f}"),
        (
            "file LiteRT runs (decided on validation)",
            f"{runs} (validation {record.validation_accuracy_int8:.4f} int8, "
            f"{record.validation_accuracy_float:.4f} float, through the runtime)",
        ),
    ]


def _photo_model_rows(card: ModelCard) -> list[tuple[str, str]]:
    decision = card.photo_model_decision
    if decision is None:
        return []
    verdict = "attached" if decision.attached else "not attached"
    return [
        (
            "photo model, for segmented photos (decided on real photos it never trained on)",
            f"{verdict}: {decision.segmented_accuracy_photo:.3f} against this model's "
            f"{decision.segmented_accuracy_main:.3f} on the {decision.segmented_photos} segmented "
            f"of {decision.held_out_photos} photos its retrain held out",
        ),
        *_worn_rows(card),
    ]


def _worn_rows(card: ModelCard) -> list[tuple[str, str]]:
    worn = card.worn_decision
    if worn is None:
        return []
    return [
        (
            "model for worn garments (decided on on-model photos neither trained on)",
            f"the {worn.read_by} model: balanced accuracy {worn.balanced_accuracy_photo:.3f} for the photo "
            f"model against {worn.balanced_accuracy_main:.3f} for this one on the {worn.worn_photos} "
            f"worn photos of {worn.judged_on}",
        )
    ]


if __name__ == "__main__":
    main()
