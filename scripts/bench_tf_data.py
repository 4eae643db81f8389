"""Method (b) of scripts/benchmark.py: the TensorFlow-idiomatic batch pipeline, tf.data into model.predict.

    python scripts/bench_tf_data.py models/model.keras 'photos/*.jpg' 'photos/*.png'

List the files matching the patterns, read and decode each (decode_image, first frame), convert to
grayscale, resize to 28x28, invert, scale to [0, 1], in a parallel map (AUTOTUNE), batches of 256.
Prints one JSON line: photos predicted, seconds before the first photo (imports, model loading, building
the pipeline) and seconds in model.predict.
"""

from __future__ import annotations

import json
import sys
import time

STARTED = time.perf_counter()
BATCH_SIZE = 256


def main(argv: list[str]) -> None:
    model_path, *patterns = argv
    # Imported here, after STARTED, so importing TensorFlow counts as set-up time.
    import keras
    import tensorflow as tf

    model = keras.saving.load_model(model_path, compile=False)

    def load(path: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        image = tf.image.resize(tf.image.rgb_to_grayscale(image), (28, 28))
        return (255.0 - image) / 255.0

    files = tf.data.Dataset.list_files(patterns, shuffle=False)
    dataset = (
        files.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(BATCH_SIZE).prefetch(tf.data.AUTOTUNE)
    )
    ready = time.perf_counter()
    predicted = len(model.predict(dataset, verbose=0))
    done = time.perf_counter()
    print(json.dumps({"photos": predicted, "setup_s": ready - STARTED, "loop_s": done - ready}))


if __name__ == "__main__":
    main(sys.argv[1:])
