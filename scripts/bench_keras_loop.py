"""Method (a) of scripts/benchmark.py: the original study's loop, one photo at a time through Keras.

    python scripts/bench_keras_loop.py models/model.keras LIST.txt

LIST.txt names one photo per line. Each photo is loaded with keras.utils.load_img (grayscale, 28x28),
inverted, scaled to [0, 1] and passed to model.predict alone. Prints one JSON line: photos predicted,
seconds before the first photo (imports and model loading) and seconds in the loop.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

STARTED = time.perf_counter()


def main(argv: list[str]) -> None:
    model_path, list_path = argv
    # Imported here, after STARTED, so importing TensorFlow counts as set-up time.
    import keras
    import numpy as np

    model = keras.saving.load_model(model_path, compile=False)
    paths = Path(list_path).read_text().splitlines()
    ready = time.perf_counter()
    predicted = 0
    for path in paths:
        img = keras.utils.load_img(path, color_mode="grayscale", target_size=(28, 28))
        x = (255.0 - keras.utils.img_to_array(img)) / 255.0
        predicted += len(model.predict(x[np.newaxis], verbose=0))
    done = time.perf_counter()
    print(json.dumps({"photos": predicted, "setup_s": ready - STARTED, "loop_s": done - ready}))


if __name__ == "__main__":
    main(sys.argv[1:])
