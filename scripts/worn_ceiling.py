"""How far the worn path could go on a labelled folder if the garment reader had learnt from photos like
those in it: the bound that more training data of that kind can buy, measured before anyone collects it.

    pip install scikit-learn        # only for this script
    python scripts/worn_ceiling.py ../shared/real-photos/catalog-myntra-dev

FOLDER holds one subfolder of photos per class, as `fmnist-batch evaluate` reads it (--mapping CSV for
other folder names; folders that count more than one class as right are left out). Only the photos that
take the person path (the `worn` view) and whose class a worn garment can be are read. For them it
prints how many are read right by

- the bundled models as classify reads them: the photo model alone, the garment reader alone, joined;
- a garment reader whose head is fitted on the folder itself: the bundled reader's own image features
  (its backbone's pooled output) with a logistic-regression head, each photo answered by a head fitted
  on the other folds (stratified k-fold, repeated with shuffled folds), alone and joined as classify
  joins the bundled one; with 1/2, 4/5 and 9/10 of the photos to learn from, so the rows show whether
  more photos of the kind would still help.

The fitted head sees the folder's own labels, so it is an optimistic bound, not a model to ship: the
best strength of a small grid is reported, and nothing is written. Rows that still rise from 1/2 to 9/10
say more labelled photos of the kind would help; rows that stay level say the features, the photos or
the labels are the limit.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

from fmnist_batch.convert import ConversionSettings, convert_path
from fmnist_batch.convert.settings import VIEW_CLASSES
from fmnist_batch.discover import discover
from fmnist_batch.evaluate import folder_classes, read_mapping
from fmnist_batch.labels import CLASS_NAMES
from fmnist_batch.model import litert
from fmnist_batch.model.combine import predict_where
from fmnist_batch.model.garment_reader import joined
from fmnist_batch.model.runtime import Model, load_model
from fmnist_batch.options import ClassifyOptions

#: the fitted head's inverse regularisation strengths (scikit-learn's C); the best one is reported
C_GRID = (0.01, 0.03, 0.1, 0.3)


def worn_photos(
    root: Path, mapping: Path | None, settings: ConversionSettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(28x28 images, colour pictures, class indices) of the folder's photos that take the worn view."""
    worn = {CLASS_NAMES.index(name) for name in VIEW_CLASSES["worn"]}
    classes = folder_classes(root, read_mapping(mapping) if mapping else None)
    images, colours, labels = [], [], []
    for folder, accepted in classes.items():
        if len(accepted) != 1 or not accepted <= worn:
            continue
        for photo in discover([str(root / folder)]):
            conversion = convert_path(photo.path, settings)
            if conversion.view == "worn" and conversion.colour is not None:
                images.append(conversion.image)
                colours.append(conversion.colour)
                labels.append(next(iter(accepted)))
    if not labels:
        raise SystemExit(f"{root}: no photo took the worn view")
    return np.stack(images), np.stack(colours), np.array(labels)


def reader_features(reader_file: Path, pictures: np.ndarray) -> np.ndarray:
    """The reader's image features: the input of its one fully connected layer (the fitted head), read
    from an interpreter that keeps its intermediate tensors."""
    from ai_edge_litert.interpreter import Interpreter

    # LiteRT warns that keeping every tensor is for debugging; reading one of them is what this is
    with litert.native_stderr_silenced(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        interpreter = Interpreter(str(reader_file), experimental_preserve_all_tensors=True)
        interpreter.allocate_tensors()
    heads = [op for op in interpreter._get_ops_details() if op["op_name"] == "FULLY_CONNECTED"]
    if len(heads) != 1:
        raise SystemExit(f"{reader_file}: expected one fully connected layer, found {len(heads)}")
    tap, source = int(heads[0]["inputs"][0]), interpreter.get_input_details()[0]["index"]
    rows = []
    for picture in pictures:
        interpreter.set_tensor(source, picture[None].astype(np.float32))
        interpreter.invoke()
        rows.append(interpreter.get_tensor(tap).reshape(-1).copy())
    return np.stack(rows)


def bundled_answers(model: Model, images: np.ndarray, colours: np.ndarray) -> dict[str, np.ndarray]:
    """N x 10 probabilities of the photo model (within the worn classes), the reader, and both joined."""
    photo = predict_where(model, images, np.ones(len(images), bool), np.full(len(images), "worn"))
    reader = model.garment_reader.read(colours)
    return {"photo": photo, "reader": reader, "joined": joined(photo, reader, model.garment_weight)}


def fitted_head(features: np.ndarray, labels: np.ndarray, c: float, folds: int, seed: int) -> np.ndarray:
    """N x 10 probabilities, each photo's from a head fitted on the other folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    head = LogisticRegression(C=c, max_iter=5000)
    split = StratifiedKFold(folds, shuffle=True, random_state=seed)
    fitted = cross_val_predict(head, features, labels, cv=split, method="predict_proba")
    out = np.zeros((len(labels), len(CLASS_NAMES)), np.float32)
    out[:, np.unique(labels)] = fitted
    return out


def fitted_bound(
    features: np.ndarray, labels: np.ndarray, photo: np.ndarray, weight: float, folds: int, repeats: int
) -> tuple[float, float, float]:
    """(photos right alone, right joined with the photo model, C) of the head strength in C_GRID that
    reads most right joined, each count the mean over `repeats` shuffles of the folds."""
    results = []
    for c in C_GRID:
        heads = [fitted_head(features, labels, c, folds, seed) for seed in range(repeats)]
        alone = np.mean([right(p, labels) for p in heads])
        with_photo = np.mean([right(joined(photo, p, weight), labels) for p in heads])
        results.append((float(alone), float(with_photo), c))
    return max(results, key=lambda result: result[1])


def right(probabilities: np.ndarray, labels: np.ndarray) -> int:
    return int((probabilities.argmax(axis=1) == labels).sum())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", type=Path, help="one subfolder of photos per class")
    parser.add_argument("--mapping", type=Path, help="CSV folder,fmnist_labels for other folder names")
    parser.add_argument(
        "--folds", type=int, nargs="+", default=[2, 5, 10], help="k of each k-fold run (2: half to learn)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="shuffles of the folds, averaged")
    args = parser.parse_args(argv)
    model = load_model()
    if not model.has_garment_reader:
        raise SystemExit("the bundled model card names no garment reader")
    # the conversion classify runs with this model's card
    settings = model.conversion_settings(ClassifyOptions())
    images, colours, labels = worn_photos(args.folder, args.mapping, settings)
    bundled = bundled_answers(model, images, colours)
    features = reader_features(model.declared_path("garment reader"), colours)
    print(f"{len(labels)} worn photos in {args.folder}; read right by")
    print("| reader | alone | joined with the photo model |\n| --- | ---: | ---: |")
    print(f"| the photo model | {right(bundled['photo'], labels)} | |")
    reader, both = right(bundled["reader"], labels), right(bundled["joined"], labels)
    print(f"| the bundled garment reader | {reader} | {both} |")
    for k in args.folds:
        alone, with_photo, c = fitted_bound(
            features, labels, bundled["photo"], model.garment_weight, k, args.repeats
        )
        fitted = f"a head fitted on {k - 1}/{k} of this folder (C={c:g}, {args.repeats} shuffles)"
        print(f"| {fitted} | {alone:.1f} | {with_photo:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
