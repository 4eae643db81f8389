"""The methods the benchmark compares, each started as its own process, and the benchmark's runs of them:

  (a) the original study: Keras, load_img + predict one photo at a time (scripts/bench_keras_loop.py);
  (b) TensorFlow's idiom: a tf.data pipeline into model.predict (scripts/bench_tf_data.py);
  (c) `python -m fmnist_batch classify`, the repository's code (with its scope judge);
  (c0) the same with --no-other (no scope judge: every photo one of the 10 classes);
  (d) the floor: worker processes only decoding each photo with Pillow (scripts/bench_decode_floor.py);
plus classify's start-up on one photo. The catalog corpus runs them all; the other corpora (c) and (d)."""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bench import REPO, SCRIPTS, log
from bench import real_corpora as corpora
from bench.corpus import build_corpus, build_scaled_corpus, evenly_spaced, warm_page_cache
from bench.measure import Measurement, median_run, run_measured

KERAS_MODEL = REPO / "models" / "model.keras"

METHODS = ("a", "b", "c", "c0", "d")
EXTRAS = ("one", "scale")  # also skippable: the one-photo start-up runs and the --scale run
SKIPPABLE = (*METHODS, *EXTRAS, *corpora.CORPORA)  # and the corpora of photos that are not catalog shots
CATALOG_PARTS = (*METHODS, "one")  # with all of these skipped, the catalog corpus is not even rendered
ONE_PHOTO_RUNS = 5

LABELS = {
    "a": "(a) Keras, load_img + predict one photo at a time",
    "b": "(b) tf.data pipeline + model.predict, batch 256",
    "c": "(c) fmnist-batch classify",
    "c0": "(c0) fmnist-batch classify --no-other",
    "d": "(d) floor: decode only, Pillow, same workers",
}


def child_env(cache: Path, tensorflow: bool = False) -> dict[str, str]:
    env = dict(os.environ)
    # The repository's own code, whether or not the package is installed.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    # Bytecode is cached (outside the repository) as it would be for an installed package: without it
    # every start of classify would recompile fmnist_batch, which is not what users run.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    if tensorflow:
        env["TF_CPP_MIN_LOG_LEVEL"] = "3"
        env["KERAS_BACKEND"] = "tensorflow"
    return env


def classify_command(inputs: Sequence[str], output: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "fmnist_batch", "classify", *inputs, "-o", output, *extra]


def count_rows(csv_path: Path) -> tuple[Counter, Counter]:
    """classify's rows by status and by view (an error row has none)."""
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    return Counter(row["status"] for row in rows), Counter(row.get("view") or "none" for row in rows)


def classify_output(work: Path, method: str, expected: int) -> Path:
    return work / f"out-{method}-{expected}.csv"


def measure_classify(
    method: str,
    label: str,
    photos: Path,
    expected: int,
    workers: int,
    work: Path,
    env: dict,
    keep_output: bool = False,
    extra: Sequence[str] = (),
) -> Measurement:
    """Run (c) on the folder `photos` (with `extra` options); its CSV (classify_output) is kept only if
    asked."""
    output = classify_output(work, method, expected)
    command = classify_command([str(photos)], str(output), "--quiet", "--workers", str(workers), *extra)
    result = run_measured(method, label, command, env, expected, ok_codes=(0, 1))  # 1: some files failed
    if result.error is None:
        statuses, views = count_rows(output)
        result.photos = sum(statuses.values())
        result.views = dict(views.most_common())
        if result.photos != expected:
            result.notes.append(f"{result.photos} rows for {expected} photos")
        if statuses["error"]:
            result.notes.append(f"{statuses['error']} error rows")
        if not keep_output:
            output.unlink()
    return result


def measure_one_photo(photo: Path, env: dict) -> dict:
    """Start-up cost: classify one photo to stdout, ONE_PHOTO_RUNS times."""
    command = classify_command([str(photo)], "-")
    runs = [run_measured("one", "one photo", command, env, 1) for _ in range(ONE_PHOTO_RUNS)]
    failed = [r.error for r in runs if r.error]
    walls = [r.wall_s for r in runs]
    return {
        "photo": str(photo),
        "command": runs[0].command,
        "runs_s": walls,
        "median_s": statistics.median(walls),
        "peak_rss_tree_mb": max(r.peak_rss_tree_mb for r in runs),
        "error": failed[0] if failed else None,
    }


def warm_up(env: dict, tf_env: dict, photo: Path, skip: set[str]) -> None:
    """Untimed: load each method's Python modules and shared libraries once, so their bytecode is cached and
    the files are in memory, as on a machine that runs the job every day."""
    commands = [([sys.executable, "-c", "import PIL.Image, multiprocessing.pool"], env)]
    if "c" not in skip or "one" not in skip:
        commands.append((classify_command([str(photo)], "-"), env))
    if not {"a", "b"} <= skip:
        commands.append(([sys.executable, "-c", "import tensorflow, keras"], tf_env))
    for command, command_env in commands:
        subprocess.run(command, env=command_env, capture_output=True, check=False)


def bench_script(name: str, *arguments: object) -> list[str]:
    return [sys.executable, str(SCRIPTS / name), *map(str, arguments)]


def measure_methods(
    args: argparse.Namespace, photos_dir: Path, photos: list[Path], work: Path, env: dict, tf_env: dict
) -> dict[str, Measurement]:
    """Run (b) once, then (a), (c) and (d) --repeat times, interleaved (a c d a c d ...), so that load from
    elsewhere on the machine falls on all alike; those three are reported by their median run."""
    results: dict[str, Measurement] = {}
    if "b" not in args.skip:
        log(f"(b) tf.data, {len(photos)} photos")
        command = bench_script("bench_tf_data.py", KERAS_MODEL, photos_dir / "*.jpg", photos_dir / "*.png")
        results["b"] = run_measured("b", LABELS["b"], command, tf_env, len(photos))
    subset = evenly_spaced(photos, args.a_limit)
    listing = work / "a-photos.txt"
    listing.write_text("".join(f"{p}\n" for p in subset))
    runs: dict[str, list[Measurement]] = {"a": [], "c": [], "c0": [], "d": []}
    for repeat in range(1, args.repeat + 1):
        of = f"(run {repeat} of {args.repeat})"
        if "a" not in args.skip:
            log(f"(a) Keras one photo at a time, {len(subset)} photos {of}")
            command = bench_script("bench_keras_loop.py", KERAS_MODEL, listing)
            runs["a"].append(run_measured("a", LABELS["a"], command, tf_env, len(subset)))
        if "c" not in args.skip:
            log(f"(c) fmnist-batch classify, {len(photos)} photos {of}")
            runs["c"].append(
                measure_classify("c", LABELS["c"], photos_dir, len(photos), args.workers, work, env)
            )
        if "c0" not in args.skip:
            log(f"(c0) fmnist-batch classify --no-other, {len(photos)} photos {of}")
            runs["c0"].append(
                measure_classify(
                    "c0", LABELS["c0"], photos_dir, len(photos), args.workers, work, env, extra=["--no-other"]
                )
            )
        if "d" not in args.skip:
            log(f"(d) decode-only floor, {len(photos)} photos {of}")
            command = bench_script("bench_decode_floor.py", photos_dir, args.workers)
            runs["d"].append(run_measured("d", LABELS["d"], command, env, len(photos)))
    results |= {key: median_run(measured) for key, measured in runs.items() if measured}
    return results


def run_catalog(args: argparse.Namespace, work: Path, env: dict, tf_env: dict) -> dict:
    """The catalog corpus's rows: (a) to (d), the one-photo start-up and the --scale run of (c)."""
    corpus = build_corpus(args.corpus_dir, args.n, args.seed, args.workers)
    photos_dir = args.corpus_dir / "photos"
    photos = [photos_dir / name for name in corpus["files"]]
    scaled_corpus = None
    if args.scale and "scale" not in args.skip and "c" not in args.skip:
        scaled_folder = args.corpus_dir / f"scale-{args.scale}"
        scaled_corpus = build_scaled_corpus(args.corpus_dir, scaled_folder, args.scale)
    warm_page_cache(photos_dir)  # hard links share these pages, so this warms the scaled corpus too
    one_photo = next((p for p in photos if p.suffix == ".jpg"), photos[0])
    log("warming up (untimed)")
    warm_up(env, tf_env, one_photo, args.skip)

    one = scaled = None
    results = measure_methods(args, photos_dir, photos, work, env, tf_env)
    if "one" not in args.skip:
        log(f"one photo, {ONE_PHOTO_RUNS} runs")
        one = measure_one_photo(one_photo, env)
    if scaled_corpus is not None:
        if scaled_corpus["how"] == "copies":
            warm_page_cache(scaled_folder / "photos")
        log(f"(c) fmnist-batch classify, {args.scale} photos")
        label = f"(c) classify at {args.scale:,} photos ({scaled_corpus['how']})"
        scaled = measure_classify(
            "c-scale", label, scaled_folder / "photos", args.scale, args.workers, work, env
        )
    return {
        "corpus": corpus,
        "scaled_corpus": scaled_corpus,
        "results": results,
        "one": one,
        "scaled": scaled,
    }


def measure_corpus(corpus: corpora.RealCorpus, repeat: int, workers: int, work: Path, env: dict) -> dict:
    """(c) and (d) on one corpus of photos that are not catalog shots, `repeat` times interleaved, then
    classify's start-up on one of its photos (median of ONE_PHOTO_RUNS): the corpus's row."""
    n, key, title = len(corpus.photos), corpus.key, corpora.TITLES[corpus.key]
    for photo in corpus.photos:  # into the page cache, as for the catalog corpus
        photo.read_bytes()
    # Untimed: the modules and models this corpus's paths load, once, as on a machine that runs the job.
    warm = classify_command([str(p) for p in evenly_spaced(corpus.photos, 8)], "-")
    subprocess.run(warm, env=env, capture_output=True, check=False)
    runs: dict[str, list[Measurement]] = {"c": [], "d": []}
    photo = corpus.photos[0]
    for run in range(1, repeat + 1):
        log(f"{title}: (c) classify, {n} photos (run {run} of {repeat})")
        label = f"{LABELS['c']}, {title}"
        runs["c"].append(
            measure_classify(f"{key}-c", label, corpus.folder, n, workers, work, env, keep_output=run == 1)
        )
        if run == 1:  # its CSV, before the next run writes the same file
            csv_path = classify_output(work, f"{key}-c", n)
            photo = corpora.startup_photo(csv_path, corpus.folder, corpora.MAIN_VIEW[key]) or photo
            csv_path.unlink(missing_ok=True)
        log(f"{title}: (d) decode-only floor, {n} photos (run {run} of {repeat})")
        command = bench_script("bench_decode_floor.py", corpus.folder, workers)
        runs["d"].append(run_measured(f"{key}-d", f"{LABELS['d']}, {title}", command, env, n))
    log(f"{title}: one photo, {ONE_PHOTO_RUNS} runs")
    one = measure_one_photo(photo, env)
    c, d = median_run(runs["c"]), median_run(runs["d"])
    return corpora.summarise(corpus, c.to_dict(), d.to_dict(), one)


def measure_corpora(args: argparse.Namespace, work: Path, env: dict) -> tuple[dict, list[str]]:
    """The rows of the corpora not skipped, and notes for those skipped as absent."""
    found: dict[str, corpora.RealCorpus | str] = {}
    if corpora.AMATEUR not in args.skip:
        links = work / "corpora"
        found[corpora.AMATEUR] = corpora.amateur_corpus(args.photos_root, args.real_limit, args.seed, links)
    if corpora.WORN not in args.skip:
        found[corpora.WORN] = corpora.worn_corpus(args.photos_root)
    rows, notes = {}, []
    for key, corpus in found.items():
        if isinstance(corpus, str):
            log(corpus)
            notes.append(corpus)
            continue
        repeat = args.worn_repeat if key == corpora.WORN else args.repeat
        rows[key] = measure_corpus(corpus, repeat, args.workers, work, env)
    return rows, notes
