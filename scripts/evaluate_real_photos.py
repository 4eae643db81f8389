"""Accuracy of the bundled model on each kind of photo users have, written to docs/real_photos.json and
printed as the Markdown table the README shows.

    python scripts/evaluate_real_photos.py                                # every set that is available
    python scripts/evaluate_real_photos.py --photos-root /data/real-photos --out /tmp/real_photos.json

Sets, each evaluated as `fmnist-batch evaluate` does (fmnist_batch.evaluate.evaluate):
- dataset images: the Fashion-MNIST test set, from the model card (retrain measured it once);
- catalog renders: 500 catalog-style photos rendered from the Fashion-MNIST test set
  (`scripts/make_samples.py --per-class 50 --seed 7`, into a temporary folder); needs the dataset files;
- samples: the repository's samples/ folder (20 renders of the same kind);
- amateur photos: the validation split of clothing-dataset-small (CC0), under --photos-root;
- on-model shots: catalog-myntra-dev, a shop catalog's photos, under --photos-root (its licence is not
  stated, so it is not in the repository: only copies kept locally can be measured).
Each photo set is evaluated twice: as classify reads it by default, and with `--background products`
(the same reading without the person path), which shows what reading garments on a person adds.
A set that is not there is skipped with a note. --photos-root defaults to ../shared/real-photos, next to
the repository; it holds clothing-dataset-small/ (with its mapping.csv) and catalog-myntra-dev/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from fmnist_batch import __version__
from fmnist_batch.classifier import Classifier
from fmnist_batch.evaluate import Evaluation, evaluate, folder_classes, read_mapping
from fmnist_batch.labels import CLASS_NAMES
from fmnist_batch.model.card import CARD_FILE, ModelCard, bundled_model_dir
from fmnist_batch.model.card_records import file_sha256
from fmnist_batch.options import ClassifyOptions

REPO = Path(__file__).resolve().parent.parent
CATALOG_PER_CLASS, CATALOG_SEED = 50, 7


@dataclass(frozen=True)
class PhotoSet:
    """A labelled folder to evaluate and what to say about it."""

    key: str
    kind: str
    name: str
    about: str
    choices_made_on_it: str
    command: str


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--photos-root",
        type=Path,
        default=Path("../shared/real-photos"),
        help="folder holding clothing-dataset-small/ and catalog-myntra-dev/, relative to the repository "
        "(default: %(default)s)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "real_photos.json")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="conversion processes (default: the CPUs this process may use)",
    )
    args = parser.parse_args()
    root = args.photos_root if args.photos_root.is_absolute() else REPO / args.photos_root
    options = ClassifyOptions(workers=args.workers)

    card = ModelCard.load(bundled_model_dir() / CARD_FILE)
    sets, skipped = [dataset_images(card)], []
    with tempfile.TemporaryDirectory(prefix="catalog-renders-") as tmp:
        for photo_set, folder, mapping, why_not in available_sets(root, Path(tmp)):
            if why_not:
                skipped.append({"name": photo_set.name, "reason": why_not})
                print(f"skipped {photo_set.name}: {why_not}", file=sys.stderr)
                continue
            print(f"evaluating {photo_set.name} ...", file=sys.stderr, flush=True)
            result = evaluate(folder, mapping=mapping, options=options)
            by_view, seconds = views(folder, mapping, options)
            record = entry(photo_set, result, by_view, seconds, options.worker_count)
            products = evaluate(folder, mapping=mapping, options=replace(options, background="products"))
            record["without_person_path"] = {
                "accuracy": products.accuracy,
                "per_class": {_display(f): f.accuracy for f in products.folders},
                "command": f"{photo_set.command} --background products",
            }
            record["without_scope_judge"] = without_judge(photo_set, folder, mapping, options)
            sets.append(record)
        out_of_scope = shop_out_of_scope(root, Path(tmp), options)
        dataset_files = dataset_images_as_files(Path(tmp) / "fmnist-png", options)

    result = {
        "generated_by": "python scripts/evaluate_real_photos.py",
        "fmnist_batch": __version__,
        "model_card_sha256": file_sha256(card.path),
        "photos_root": "$PHOTOS (--photos-root; default ../shared/real-photos)",
        "sets": sets,
        "out_of_scope": out_of_scope,
        "dataset_images_as_files": dataset_files,
        "skipped": skipped,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    print(markdown_table(sets))
    print("\n" + "\n".join(other_tables(sets, out_of_scope, dataset_files)))
    return 0


def without_judge(photo_set: PhotoSet, folder: Path, mapping: Path | None, options: ClassifyOptions) -> dict:
    """The set's accuracy, overall and per class, with every photo given one of the 10 classes
    (--no-other, as before the judge)."""
    plain = evaluate(folder, mapping=mapping, options=replace(options, other=False))
    return {
        "accuracy": plain.accuracy,
        "per_class": {_display(f): f.accuracy for f in plain.folders},
        "command": f"{photo_set.command} --no-other",
    }


def shop_out_of_scope(root: Path, tmp: Path, options: ClassifyOptions) -> dict | None:
    """catalog-myntra-other-dev (far/ and near/ article types) as the other folder beside the classes of
    catalog-myntra-dev, linked into one labelled folder: the share answered other per group and article
    type, the AUROC of in_scope against the in-scope photos, the in-scope accuracy with other wrong."""
    inside, outside = root / "catalog-myntra-dev", root / "catalog-myntra-other-dev"
    if not (inside.is_dir() and outside.is_dir()):
        return None
    print("evaluating catalog-myntra-other-dev beside catalog-myntra-dev ...", file=sys.stderr, flush=True)
    shop = tmp / "shop"
    shop.mkdir()
    for folder in sorted(p for p in inside.iterdir() if p.is_dir()):
        (shop / folder.name).symlink_to(folder, target_is_directory=True)
    (shop / "other").symlink_to(outside, target_is_directory=True)
    result = evaluate(shop, options=options)
    return {
        "name": "catalog-myntra-other-dev (other) beside catalog-myntra-dev",
        "choices_made_on_it": "none: measured only (the judge was fitted on CC0 and scikit-image photos)",
        "in_scope_accuracy": result.accuracy,
        **result.out_of_scope.to_dict(),
        "command": "mkdir shop && ln -s $PHOTOS/catalog-myntra-dev/* shop/ && ln -s "
        "$PHOTOS/catalog-myntra-other-dev shop/other && fmnist-batch evaluate shop --json -",
    }


def dataset_images_as_files(folder: Path, options: ClassifyOptions, n: int = 1000) -> dict | None:
    """The share of Fashion-MNIST test images, each saved as a 28x28 PNG, answered other (measured only)."""
    from PIL import Image

    from fmnist_batch.training.data import load_dataset

    try:
        images = load_dataset().test.images
    except Exception as e:  # the dataset files are optional here
        return {"skipped": str(e)}
    folder.mkdir()
    for i, image in enumerate(images[:n]):
        Image.fromarray(image).save(folder / f"{i:05d}.png")
    rows = list(Classifier(**asdict(options)).classify_folder(str(folder)))
    other = sum(row["status"] == "other" for row in rows)
    return {"photos": len(rows), "answered_other": other, "share": other / len(rows)}


def dataset_images(card: ModelCard) -> dict:
    """The Fashion-MNIST test figure of the file LiteRT runs, as the card records it."""
    metrics = card.metrics
    recall = {name: scores["recall"] for name, scores in (metrics.test_per_class or {}).items()}
    return {
        "key": "dataset",
        "kind": "dataset images",
        "name": "Fashion-MNIST test set",
        "about": "the dataset's 10,000 official test images, evaluated once by retrain after every choice "
        "was made on the validation split (per class: the Keras model's recall, from the card)",
        "choices_made_on_it": "none",
        "photos": metrics.test_size,
        "accuracy": card.test_accuracy(card.litert_file),
        "per_class": recall,
        "command": "python scripts/card_summary.py models/model_card.json",
    }


def available_sets(root: Path, tmp: Path):
    """(set, folder, mapping, reason it is skipped or None) for each photo set, in the README's order."""
    catalog = PhotoSet(
        "catalog",
        "catalog shots",
        f"catalog renders ({CATALOG_PER_CLASS * 10})",
        "catalog-style photos rendered from Fashion-MNIST test images (white or #fdfdfd background, "
        "tints, off-centre, JPEG/PNG/WebP, 400-700 px)",
        "none (the test set chose nothing)",
        f"python scripts/make_samples.py --out /tmp/catalog --per-class {CATALOG_PER_CLASS} "
        f"--seed {CATALOG_SEED} && fmnist-batch evaluate /tmp/catalog",
    )
    folder, why_not = render_catalog(tmp / "catalog")
    yield catalog, folder, None, why_not

    samples = PhotoSet(
        "samples",
        "catalog shots",
        "samples/",
        "the 20 sample photos in the repository (renders of the same kind, 2 a class)",
        "none",
        "fmnist-batch evaluate samples",
    )
    yield samples, REPO / "samples", None, None if (REPO / "samples").is_dir() else "no samples/ folder"

    clothing = root / "clothing-dataset-small"
    amateur = PhotoSet(
        "amateur",
        "amateur photos",
        "clothing-dataset-small, validation split",
        "amateur photos of one garment on a floor, a bed, a hanger or worn (CC0); folders hat, shorts and "
        "skirt are left out (no Fashion-MNIST class fits)",
        "yes: the segmentation of non-catalog photos was tuned on this split",
        "fmnist-batch evaluate $PHOTOS/clothing-dataset-small/validation "
        "--mapping $PHOTOS/clothing-dataset-small/mapping.csv",
    )
    present = (clothing / "validation").is_dir() and (clothing / "mapping.csv").is_file()
    yield amateur, clothing / "validation", clothing / "mapping.csv", None if present else f"not in {root}"

    myntra = root / "catalog-myntra-dev"
    on_model = PhotoSet(
        "on_model",
        "on-model shots",
        "catalog-myntra-dev",
        "a shop catalog's 60x80 thumbnails, 40 a class, 9 classes (no ankle boots); most apparel worn by a "
        "model, footwear and bags as product shots. Licence not stated: kept out of the repository",
        "yes: the person-aware (worn) path was developed on it",
        "fmnist-batch evaluate $PHOTOS/catalog-myntra-dev",
    )
    yield on_model, myntra, None, None if myntra.is_dir() else f"not in {root}"


def render_catalog(folder: Path) -> tuple[Path, str | None]:
    """Render the catalog photos with scripts/make_samples.py; (folder, None) or (folder, why not)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    command = [
        sys.executable,
        str(REPO / "scripts" / "make_samples.py"),
        "--out",
        str(folder),
        "--per-class",
        str(CATALOG_PER_CLASS),
        "--seed",
        str(CATALOG_SEED),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["make_samples.py failed"])[-1]
        return folder, f"could not render them ({last}; the Fashion-MNIST files are needed)"
    return folder, None


def views(folder: Path, mapping: Path | None, options: ClassifyOptions) -> tuple[dict[str, dict], float]:
    """Per view (catalog, segmented, worn): how many photos the conversion read that way and the accuracy
    on them (a second pass: evaluate() counts per folder, not per view); and the seconds the pass took
    once the model was loaded (worker start-up, conversion and prediction of every photo)."""
    accepted = folder_classes(folder, read_mapping(mapping) if mapping is not None else None)
    labelled = {name: classes for name, classes in accepted.items() if classes}
    counts: dict[str, list[int]] = {}
    clf = Classifier(**asdict(options))
    started = time.perf_counter()
    for row in clf.classify_folder([str(folder / name) for name in labelled]):
        tally = counts.setdefault(row["view"] or "error", [0, 0])
        tally[0] += 1
        name = Path(row["path"]).relative_to(folder).parts[0]
        if row["label"] in CLASS_NAMES and CLASS_NAMES.index(row["label"]) in labelled[name]:
            tally[1] += 1
    seconds = time.perf_counter() - started
    by_view = {view: {"photos": n, "accuracy": right / n} for view, (n, right) in sorted(counts.items())}
    return by_view, seconds


def entry(
    photo_set: PhotoSet, result: Evaluation, by_view: dict[str, dict], seconds: float, workers: int
) -> dict:
    return {
        "key": photo_set.key,
        "kind": photo_set.kind,
        "name": photo_set.name,
        "about": photo_set.about,
        "choices_made_on_it": photo_set.choices_made_on_it,
        "photos": result.files,
        "accuracy": result.accuracy,
        "balanced_accuracy": result.balanced_accuracy,
        "per_class": {_display(f): f.accuracy for f in result.folders},
        "per_class_photos": {_display(f): f.files for f in result.folders},
        "skipped_folders": result.skipped,
        "views": by_view,
        #: wall time per photo of classifying the set with the model loaded (worker start-up included)
        "ms_per_photo": seconds / result.files * 1000 if result.files else None,
        "workers": workers,
        "command": photo_set.command,
    }


def _display(folder) -> str:
    """A folder named after its one class as that class's name; any other as `folder (classes)`."""
    classes = [CLASS_NAMES[i] for i in sorted(folder.accepted)]
    simple = "".join(ch for ch in folder.name.lower() if ch.isalnum())
    if len(classes) == 1 and simple == "".join(ch for ch in classes[0].lower() if ch.isalnum()):
        return classes[0]
    return f"{folder.name} ({', '.join(classes)})"


def markdown_table(sets: list[dict]) -> str:
    """The README's table, then accuracy per class and per view, one column per set."""
    lines = [
        "| kind of photo | set | photos | accuracy | choices made on this set |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for s in sets:
        figures = f"{s['photos']:,} | {s['accuracy']:.{4 if s['key'] == 'dataset' else 3}f}"
        lines.append(f"| {s['kind']} | {s['name']} | {figures} | {s['choices_made_on_it']} |")
    lines += ["", "| class or folder | " + " | ".join(s["name"] for s in sets) + " |"]
    lines.append("| --- |" + " ---: |" * len(sets))
    names = list(dict.fromkeys(name for s in sets for name in s["per_class"]))
    for name in names:
        cells = [_cell(s["per_class"].get(name)) for s in sets]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| view: photos (accuracy) | " + " | ".join(s["name"] for s in sets[1:]) + " |"]
    lines.append("| --- |" + " ---: |" * (len(sets) - 1))
    for view in ("catalog", "segmented", "worn", "error"):
        cells = [s.get("views", {}).get(view) for s in sets[1:]]
        if any(cells):
            text = [f"{c['photos']} ({c['accuracy']:.3f})" if c else "" for c in cells]
            lines.append(f"| {view} | " + " | ".join(text) + " |")
    lines += ["", *person_path_table(sets)]
    lines += ["", "| set | photos | ms/photo, model loaded (workers) |", "| --- | ---: | ---: |"]
    for s in sets[1:]:
        lines.append(f"| {s['name']} | {s['photos']:,} | {s['ms_per_photo']:.1f} ({s['workers']}) |")
    return "\n".join(lines)


def person_path_table(sets: list[dict]) -> list[str]:
    """Accuracy of each photo set without the person path (`--background products`) and with it (the
    default), then per class wherever the two differ."""
    header = "| set or class | without the person path (`--background products`) | default |"
    return compared_table(sets, "without_person_path", header)


def compared_table(sets: list[dict], variant: str, header: str) -> list[str]:
    """Each set's accuracy under `variant` (a record key) and by default, then per class wherever the two
    differ."""
    lines = [header, "| --- | ---: | ---: |"]
    for s in (s for s in sets if variant in s):
        lines.append(f"| {s['name']} | {s[variant]['accuracy']:.3f} | {s['accuracy']:.3f} |")
        before = s[variant]["per_class"]
        for name, after in s["per_class"].items():
            if before.get(name) != after:
                lines.append(f"| {s['name']}: {name} | {_cell(before.get(name))} | {_cell(after)} |")
    return lines


def other_tables(sets: list[dict], out_of_scope: dict | None, dataset_files: dict | None) -> list[str]:
    """What answering other costs each set (accuracy with and without the judge, then per class wherever
    they differ), then the share of the shop's out-of-scope products answered other, per group and
    article type, and the AUROC of in_scope."""
    header = "| set or class | without the judge (`--no-other`) | default (other counts wrong) |"
    lines = compared_table(sets, "without_scope_judge", header)
    if dataset_files and "share" in dataset_files:
        lines.append(
            f"\nFashion-MNIST test images as 28x28 PNGs answered other: {dataset_files['share']:.1%}"
        )
    if out_of_scope is None:
        return lines
    auroc = out_of_scope["auroc_in_scope_by_subfolder"]
    lines += ["", "| out of scope | photos | answered other | AUROC of in_scope |"]
    lines.append("| --- | ---: | ---: | ---: |")
    for key, figures in out_of_scope["subfolders"].items():
        lines.append(f"| {key} | {figures['files']} | {figures['share']:.1%} | {_cell(auroc.get(key))} |")
    return lines


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    sys.exit(main())
