"""Build models/reference/: the main network's logits for the images it was trained on, by which a catalog
shot that reads as a Fashion-MNIST image is never answered other (fmnist_batch/model/dataset_reference.py).

Only the Fashion-MNIST TRAIN split is read (MIT), split as retrain split it (the card's seed): the images the
model fitted are the reference; its 5,000 validation images, which it never fitted, rendered as catalog
photos (scope_build.licensed_data: varied tints, backgrounds, sizes, placements and noise), set the two
limits of the gate:
- the ink limit is the largest ink spread (convert/ink.py) of those renders, so the colour question takes
  none of them from the reference: it only sends coloured products to the judge;
- the radius is the q-quantile of the validation images' distances to the reference, q the smallest of
  QUANTILES with which at most 2.5% of the renders are answered other, the share of licensed in-scope
  photos the judge's own operating point gives up.
The same images rendered in make_samples.py's style (samples/, the catalog accuracy figure) are a check,
never a choice: each quantile's row also gives the share of them answered other.

    python scripts/build_dataset_reference.py ../shared/real-photos/clothing-dataset-small

It writes models/reference/reference.npy and reference.json, the "dataset_reference" entry of
models/model_card.json (also printed), with what each radius costs on licensed out-of-scope photos
(scikit-image's photos and crops, clothing-dataset-small's validation hats, shorts and skirts).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from scope_build import licensed_data  # noqa: E402

from fmnist_batch.convert.decode import load_image, to_rgb  # noqa: E402
from fmnist_batch.convert.ink import ink_spread  # noqa: E402
from fmnist_batch.convert.settings import ImageError  # noqa: E402
from fmnist_batch.engines.local import convert_files  # noqa: E402
from fmnist_batch.model.card_records import file_sha256  # noqa: E402
from fmnist_batch.model.dataset_reference import DatasetReference, unit_rows  # noqa: E402
from fmnist_batch.model.runtime import Model, load_model  # noqa: E402
from fmnist_batch.options import ClassifyOptions  # noqa: E402
from fmnist_batch.training.config import TrainConfig  # noqa: E402
from fmnist_batch.training.data import load_dataset  # noqa: E402
from fmnist_batch.training.prepare import split_indices  # noqa: E402

#: finer at the top, where the distances spread out
QUANTILES = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.96, 0.97, 0.98, 0.99)
#: at most this share of licensed renders answered other (the judge keeps 97.5% of licensed garments)
RENDERS_OTHER = 0.025
FOLDER, FILE = "reference", "reference.npy"


def judged(model: Model, reference: DatasetReference, files: list, folder: Path) -> dict[str, np.ndarray]:
    """As classify converts and judges each file: its in_scope (NaN: not judged), its distance to the
    reference (inf: not a catalog shot, or no conversion)."""
    paths = []
    for i, data in enumerate(files):
        path = folder / f"{len(list(folder.iterdir())):06d}-{i}.bin"
        path.write_bytes(data if isinstance(data, bytes) else Path(data).read_bytes())
        paths.append(str(path))
    # every photo judged: the reference the card holds now must not decide which
    settings = replace(model.conversion_settings(ClassifyOptions()), dataset_radius=0.0, reference_files=None)
    converted = convert_files(paths, settings)
    catalog = np.array([c.data is not None and c.view == "catalog" for c in converted])
    distance = np.full(len(converted), np.inf, np.float32)
    if catalog.any():
        images = np.stack([np.frombuffer(c.data, np.uint8).reshape(28, 28) for c in converted])[catalog]
        distance[catalog] = reference.nearest(model.predict_logits(images))
    in_scope = np.array([np.nan if c.in_scope is None else c.in_scope for c in converted], np.float32)
    spread = np.array([photo_ink_spread(p, settings) for p in paths], np.float32)
    return {"in_scope": in_scope, "distance": distance, "ink_spread": spread}


def photo_ink_spread(path: str, settings) -> float:
    """The ink spread of a file's photo as the conversion measures it (its decode, on white), NaN for
    a file that is no image."""
    try:
        return ink_spread(to_rgb(load_image(path, settings)), settings.trim_tolerance)
    except ImageError:
        return float("nan")


def licensed_out_of_scope(clothing_small: Path) -> list:
    """scikit-image's photos and crops, and clothing-dataset-small's validation hats, shorts and skirts."""
    photos = licensed_data.clothing_small(clothing_small, "validation")
    outside = [f for f, inside in zip(photos.files, photos.in_scope, strict=True) if not inside]
    return licensed_data.skimage_photos().files + outside


def other_share(read: dict[str, np.ndarray], threshold: float, radius: float | None, ink: float) -> float:
    """The share answered other: judged below the threshold, and not read as a dataset image: within
    the radius with an ink spread within the limit (radius None: no reference)."""
    other = read["in_scope"] < threshold
    if radius is not None:
        other &= ~((read["distance"] <= radius) & (read["ink_spread"] <= ink))
    return round(float(other.mean()), 4)


def card_entry(card, target: Path, chosen: dict, ink: float, renders: int, rows: list[dict]) -> dict:
    network = card.files[card.litert_file]
    return {
        "folder": FOLDER,
        "file": target.name,
        "sha256": file_sha256(target),
        "radius": chosen["radius"],
        "ink_limit": ink,
        "network_sha256": network["sha256"],
        "network_file": network["name"],
        "licence": "MIT (the Fashion-MNIST training images' logits; the network is the project's own)",
        "source": "Fashion-MNIST TRAIN split, the images the main network fitted (the card's seed), read by "
        "that network as classify runs it; scripts/build_dataset_reference.py",
        "rule": f"a catalog shot reads as a dataset image when its ink spread is within the ink limit and "
        f"its unit logits lie within the radius of a reference point's; ink limit = the largest ink spread "
        f"of the {renders} held-out validation images rendered as catalog photos; radius = the "
        f"{chosen['quantile']:g} quantile of the same images' distances, the smallest of {list(QUANTILES)} "
        f"with which at most {RENDERS_OTHER:.1%} of those renders are answered other (the same images in "
        f"make_samples.py's style, samples_renders_other, are a check, not a choice)",
        "licensed_figures": rows,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("clothing_small", type=Path, help="clothing-dataset-small (validation hats, ...)")
    parser.add_argument("--out", type=Path, default=ROOT / "models" / FOLDER)
    args = parser.parse_args()
    model = load_model()
    threshold = model.other_below(ClassifyOptions())
    train = load_dataset().train
    fitted, held_out = split_indices(train.labels, TrainConfig(seed=model.card.training.seed))
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / FILE
    np.save(target, unit_rows(model.predict_logits(train.images[fitted])).astype(np.float16))
    reference = DatasetReference(target)
    distances = reference.nearest(model.predict_logits(train.images[held_out]))
    with tempfile.TemporaryDirectory() as scratch:
        read_renders, read_samples = (
            judged(model, reference, render(train.images[held_out]).files, Path(scratch))
            for render in (licensed_data.fmnist_renders, licensed_data.sample_renders)
        )
        read_outside = judged(model, reference, licensed_out_of_scope(args.clothing_small), Path(scratch))
    ink = float(np.nanmax(read_renders["ink_spread"]))
    rows, chosen = [], None
    for q in (None, *QUANTILES):
        radius = None if q is None else float(np.quantile(distances, q))
        rows.append({"quantile": q, "radius": radius,
                     "renders_other": other_share(read_renders, threshold, radius, ink),
                     "samples_renders_other": other_share(read_samples, threshold, radius, ink),
                     "out_of_scope_other": other_share(read_outside, threshold, radius, ink)})  # fmt: skip
        print(json.dumps(rows[-1]))
        if chosen is None and q is not None and rows[-1]["renders_other"] <= RENDERS_OTHER:
            chosen = rows[-1]
    if chosen is None:
        raise SystemExit(f"no quantile of {QUANTILES} keeps renders answered other <= {RENDERS_OTHER}")
    entry = card_entry(model.card, target, chosen, ink, len(held_out), rows)
    (args.out / "reference.json").write_text(json.dumps(entry, indent=2) + "\n")
    print(json.dumps(entry, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
