"""Benchmark `fmnist-batch classify` against the ways it replaces, each as a whole separate process.

Rerun the full benchmark (on an otherwise idle machine; about 10 minutes on 2 cores, plus about 10 the first
time to render the corpus; writes docs/benchmark.md and docs/benchmark.json):

    python scripts/benchmark.py

A quick check of the script itself on a tiny corpus:

    python scripts/benchmark.py --n 120 --a-limit 20 --scale 0 --out /tmp/bench-small.md

The corpus is N catalog-style photos (70% JPEG, 30% PNG, 500-1,100 px square) rendered from the
Fashion-MNIST test set by scripts/synth.py, cached in --corpus-dir (default /tmp/fmnist-bench/corpus-N,
outside git) and reused when complete. Methods, each run as its own process and measured from outside:

  (a) the original study: Keras model, keras.utils.load_img + model.predict one photo at a time
      (scripts/bench_keras_loop.py), on only --a-limit photos spread over the corpus, as it is slow;
  (b) TensorFlow's idiom: a tf.data pipeline (decode, grayscale, resize, invert, scale; parallel map,
      batches of 256) into model.predict (scripts/bench_tf_data.py);
  (c) `python -m fmnist_batch classify CORPUS -o OUT.csv --quiet --workers W`, the repository's code;
  (d) the floor: W worker processes only decoding each photo with Pillow, JPEGs at 1/8 scale
      (scripts/bench_decode_floor.py). classify inflates most PNGs with ISA-L instead of Pillow's zlib
      (fmnist_batch/convert/png.py), so on PNGs it can decode faster than this floor.
(a), (c) and (d) run --repeat times (default 3), interleaved, and are reported by their median run: the
targets are ratios to (a) and (d), and one run of either varies by a third on a shared machine.

Plus: the wall time of classifying one photo (`classify photo.jpg -o -`, median of 5 runs), and (c) on
--scale photos (the corpus hard-linked under other names in subfolders) to show memory stays flat.
Peak memory is the sum of VmRSS over the process and all its descendants, sampled every 20 ms.

Photos that are not catalog shots take other paths, timed in the same run as (c) and (d) on the very
same files (scripts/bench/real_corpora.py; target: at most 15 ms a photo of wall time on 2 cores, start-up
subtracted), with how many photos took each view (classify's `view` column):

  amateur: the CC0 photos of <--photos-root>/clothing-dataset-small/train and /validation (the segmented
      view), a seeded sample of --real-limit (0: all), (c) and (d) --repeat times;
  worn: the 360 shop thumbnails of <--photos-root>/catalog-myntra-dev (mostly the worn view), read in
      place, (c) and (d) --worn-repeat times.
A corpus whose folder is absent is skipped with a note. Only these rows, without rendering the catalog
corpus:

    python scripts/benchmark.py --skip a,b,c,d,one,scale

The work is done by the package scripts/bench/ (corpora, measurement, methods, targets, report); this
script is its command line.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench import REPO
from bench import real_corpora as corpora
from bench.measure import machine_info
from bench.methods import CATALOG_PARTS, SKIPPABLE, child_env, measure_corpora, run_catalog
from bench.report import build_report, render_markdown, write_report

from fmnist_batch.cpus import usable_cpus


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=3000, help="photos in the corpus (default: %(default)s)")
    parser.add_argument(
        "--skip",
        default="",
        metavar="LIST",
        help="comma-separated parts to skip: " + ", ".join(SKIPPABLE) + " (a, b, c, d, one and scale are "
        "the catalog corpus's rows; amateur and worn the other corpora's, each timed with (c) and (d))",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=usable_cpus(),
        help="worker processes for (c) and (d) (default: the CPUs this process may use, %(default)s)",
    )
    parser.add_argument(
        "--a-limit", type=int, default=300, help="photos for the slow method (a) (default: %(default)s)"
    )
    parser.add_argument(
        "--scale",
        type=int,
        default=30000,
        help="photos for the flat-memory run of (c); 0 to skip (default: %(default)s)",
    )
    parser.add_argument(
        "--corpus-dir", type=Path, help="where the corpus is cached (default: /tmp/fmnist-bench/corpus-N)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of (c) and of (d), interleaved; each is reported by its median (default: %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="corpus seed, and the amateur sample's (default: %(default)s)"
    )
    _add_corpora_options(parser)
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "docs" / "benchmark.md",
        help="Markdown report; the JSON goes next to it (default: docs/benchmark.md)",
    )
    return _checked(parser, parser.parse_args(argv))


def _add_corpora_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--photos-root",
        type=Path,
        default=REPO.parent / "shared" / "real-photos",
        help=f"where {corpora.AMATEUR_FOLDER}/ (amateur photos) and {corpora.WORN_FOLDER}/ (on-model shop "
        "photos) are; a corpus whose folder is absent is skipped with a note (default: ../shared/real-photos "
        "next to the repository)",
    )
    parser.add_argument(
        "--real-limit",
        type=int,
        default=1000,
        help="amateur photos to time, a seeded sample; 0 for all of them (default: %(default)s)",
    )
    parser.add_argument(
        "--worn-repeat",
        type=int,
        default=5,
        help="runs of (c) and of (d) on the on-model corpus, interleaved, as it has only 360 photos; the "
        "amateur corpus runs --repeat times (default: %(default)s)",
    )


def _checked(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    args.skip = {part.strip() for part in args.skip.split(",") if part.strip()}
    unknown = args.skip - set(SKIPPABLE)
    if unknown:
        parser.error(f"--skip: unknown {', '.join(sorted(unknown))}; choose from {', '.join(SKIPPABLE)}")
    if min(args.n, args.workers, args.a_limit, args.repeat, args.worn_repeat) < 1 or args.scale < 0:
        parser.error(
            "--n, --workers, --a-limit, --repeat and --worn-repeat must be positive, --scale at least 0"
        )
    if args.real_limit < 0:
        parser.error("--real-limit must be at least 0 (0: all the amateur photos)")
    if args.scale and args.scale <= args.n:
        parser.error("--scale must be larger than --n (or 0 to skip)")
    args.corpus_dir = args.corpus_dir or Path(tempfile.gettempdir(), "fmnist-bench", f"corpus-{args.n}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # fmnist_batch, installed or not
    machine = machine_info()  # now, so the load average is the one the measurements started with
    command = shlex.join(["python", "scripts/benchmark.py", *(sys.argv[1:] if argv is None else argv)])
    cache = args.corpus_dir.parent / "pycache"
    env, tf_env = child_env(cache), child_env(cache, tensorflow=True)
    with tempfile.TemporaryDirectory(prefix="fmnist-bench-") as tmp:
        work = Path(tmp)
        catalog = run_catalog(args, work, env, tf_env) if set(CATALOG_PARTS) - args.skip else None
        real, real_notes = measure_corpora(args, work, env)
    machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report = build_report(args, command, machine, catalog, real, real_notes)
    results = catalog["results"] if catalog else {}
    scaled = catalog["scaled"] if catalog else None
    write_report(args.out, render_markdown(report, results, scaled), report)


if __name__ == "__main__":
    main()
