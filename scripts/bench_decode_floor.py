"""Method (d) of scripts/benchmark.py: the floor, only opening and decoding every photo, in worker processes.

    python scripts/bench_decode_floor.py photos/ 2

Walks the folder, then a Pool of N processes (fork, like classify) decodes each photo with Pillow at the
smallest size it can: JPEGs at 1/8 scale in grayscale (``draft("L", (28, 28))``), PNGs fully. No model, no
output. Prints one JSON line: photos decoded, seconds before the first photo (imports) and seconds for
listing and decoding.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time

STARTED = time.perf_counter()
EXTENSIONS = (".jpg", ".jpeg", ".png")


def decode(path: str) -> int:
    from PIL import Image

    with Image.open(path) as img:
        if img.format == "JPEG":
            img.draft("L", (28, 28))
        img.load()
    return 1


def main(argv: list[str]) -> None:
    folder, workers = argv[0], int(argv[1])
    # Imported here, after STARTED, for the same accounting as the other methods; the forked workers
    # inherit it.
    from PIL import Image  # noqa: F401

    ready = time.perf_counter()
    paths = sorted(
        os.path.join(root, name)
        for root, _, names in os.walk(folder)
        for name in names
        if name.lower().endswith(EXTENSIONS)
    )
    # Big enough that task hand-off is negligible, small enough that both workers finish together.
    chunksize = max(1, min(64, len(paths) // (workers * 8)))
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        decoded = sum(pool.imap_unordered(decode, paths, chunksize=chunksize))
    done = time.perf_counter()
    print(json.dumps({"photos": decoded, "setup_s": ready - STARTED, "loop_s": done - ready}))


if __name__ == "__main__":
    main(sys.argv[1:])
