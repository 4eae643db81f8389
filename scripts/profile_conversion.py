"""Where a photo's time goes in classify, per format, in one process: the benchmark floor's decoding
(JPEG at 1/8 scale in grey), classify's decoding (convert.load_image), each conversion step, and the
bundled model per view. The README's Speed and memory section quotes it.

python scripts/profile_conversion.py [--photos DIR] [--limit 600]

DIR defaults to the benchmark's corpus (python scripts/benchmark.py renders it). Times are CPU time per
photo of this process (time.process_time, system time included), so other load on the machine matters
less than for wall time. The floor decodes PNGs with Pillow; classify with ISA-L where it can (png.py).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from fmnist_batch import convert as P
from fmnist_batch.convert import person, segment
from fmnist_batch.engines.workers import keep_freed_memory
from fmnist_batch.model.runtime import load_model

CORPUS = Path("/tmp/fmnist-bench/corpus-3000/photos")


def floor_decode(path: Path) -> None:
    """What (d) in scripts/bench_decode_floor.py does with one photo."""
    with Image.open(path) as img:
        img.draft("L", (28, 28))
        img.load()


def cpu_ms(function: Callable, items: list) -> float:
    started = time.process_time()
    for item in items:
        function(item)
    return (time.process_time() - started) / max(1, len(items)) * 1000


def conversion_steps(images: list[Image.Image], settings: P.ConversionSettings) -> dict[str, float]:
    """CPU ms per image of each step of convert_image, in its order, on decoded images (the worn path's
    detectors are left out: run it on on-model photos with --photos to see them in the whole conversion)."""
    totals: dict[str, float] = {}

    def timed(name: str, function: Callable, *args):
        started = time.process_time()
        result = function(*args)
        totals[name] = totals.get(name, 0.0) + time.process_time() - started
        return result

    for img in images:
        rgb = timed("to_rgb", P.to_rgb, img)
        timed("person check", person.might_show_person, rgb)
        if not timed("catalog-shot test", P.has_plain_background, rgb):
            # a photo that is not a catalog shot: the cut-out replaces it, as convert_image does
            cut = timed("segment (GrabCut and cleaning)", segment.segment_garment, rgb, settings.segment_size)
            rgb = cut or rgb
        background = timed("background colour", P.background_colour, rgb)
        trimmed = timed("trim", P.trim_background, rgb, settings.trim_tolerance, background)
        grey = timed("grayscale", P.to_grayscale, trimmed)
        grey = timed("fit longest edge", P.fit_longest_edge, grey, settings.size, settings.resample)
        grey = timed("sharpen", P.sharpen, grey)
        fill = P.luminance(background)
        grey = timed("centre", P.centre_on_canvas, grey, settings.size, fill)
        grey = timed("negate", P.negate, grey)
        if 255 - fill < 128:
            grey = timed("zero background", P.zero_background_level, grey, 255 - fill)
        pixels = timed("to array", np.array, grey, np.uint8)
        if 255 - fill < 128:
            timed("full range", P.stretch_to_full_range, pixels)
    return {name: total / len(images) * 1000 for name, total in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", type=Path, default=CORPUS)
    parser.add_argument("--limit", type=int, default=600, help="photos to profile (default: %(default)s)")
    args = parser.parse_args()
    files = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        parser.error(f"no photos in {args.photos}: run scripts/benchmark.py first, or name --photos")
    files = files[: args.limit]
    keep_freed_memory()  # as classify's workers do
    settings = P.ConversionSettings()
    print("| format | photos | floor decode (ms) | classify's decode (ms) | whole conversion (ms) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, suffixes in (("JPEG", (".jpg", ".jpeg")), ("PNG", (".png",))):
        group = [f for f in files if f.suffix.lower() in suffixes]
        if group:
            floor = cpu_ms(floor_decode, group)
            load = cpu_ms(lambda f: P.load_image(f, settings), group)
            whole = cpu_ms(lambda f: P.convert_path(f, settings), group)
            print(f"| {name} | {len(group)} | {floor:.2f} | {load:.2f} | {whole:.2f} |")

    steps = conversion_steps([P.load_image(f, settings) for f in files], settings)
    print("\n| conversion step | ms per photo |\n| --- | ---: |")
    for name, ms in steps.items():
        print(f"| {name} | {ms:.3f} |")
    print(f"| **all steps** | **{sum(steps.values()):.3f}** |")

    model = load_model(None, "auto", num_threads=1, use_photo_model=False)
    images = np.stack([P.convert_path(f, settings).image for f in files[:256]])
    x = model.to_input(images)
    model._run(x)  # allocate once, untimed
    started = time.process_time()
    for _ in range(5):
        model._run(x)
    view = (time.process_time() - started) / (5 * len(x)) * 1000
    from fmnist_batch.model.logits import top_probability

    below = model.card.flip_average_below
    share = float(np.mean(top_probability(model._run(x)) < below)) if below is not None else 1.0
    views = 1 + share if model.card.flip_average else 1
    print(f"\nmodel: {view:.3f} ms per view (one LiteRT thread, batches of 256); {views:.2f} views per photo")
    print(f"on these photos ({share:.0%} mirrored): {view * views:.3f} ms per photo")


if __name__ == "__main__":
    main()
