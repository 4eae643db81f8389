"""Ray's overhead against the local engine on one machine: `fmnist-batch classify` with
`--engine local` and with `--engine ray`, each as a whole separate process, on the same photos.

    python scripts/bench_ray.py                   # 500 photos, rendered as scripts/benchmark.py does
    python scripts/bench_ray.py --photos DIR      # or a folder of your own

Writes docs/bench_ray.md and docs/bench_ray.json. Each engine runs --runs times (the median is shown), and
once more on one photo, to separate the fixed start-up cost from the cost per photo. The Ray runs start a
local Ray with --workers CPUs and stop it inside the timed process, as a cron job on one machine would.
Corpus rendering, process timing and memory sampling are the package scripts/bench/'s, as for
scripts/benchmark.py.
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench import REPO, log
from bench.corpus import build_corpus, warm_page_cache
from bench.measure import Measurement, machine_info, run_measured
from bench.methods import child_env, classify_command
from bench.report import write_report

ENGINES = ("local", "ray")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", type=Path, help="a folder of photos (default: render --n of them)")
    parser.add_argument("--n", type=int, default=500, help="photos to render (default: %(default)s)")
    parser.add_argument(
        "--corpus-dir",
        type=Path,
        help="where rendered photos are cached (default: /tmp/fmnist-bench/corpus-N)",
    )
    parser.add_argument("--seed", type=int, default=0, help="corpus seed (default: %(default)s)")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="CPUs for both engines (default: %(default)s)",
    )
    parser.add_argument("--runs", type=int, default=3, help="timed runs per engine (default: %(default)s)")
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "docs" / "bench_ray.md",
        help="Markdown report (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.n < 1 or args.workers < 1 or args.runs < 1:
        parser.error("--n, --workers and --runs must be positive")
    args.corpus_dir = args.corpus_dir or Path(tempfile.gettempdir(), "fmnist-bench", f"corpus-{args.n}")
    return args


def classify(
    engine: str, inputs: list[str], output: Path, workers: int, env: dict, count: int
) -> Measurement:
    command = classify_command(inputs, str(output), "--quiet", "--workers", str(workers), "--engine", engine)
    return run_measured(engine, f"--engine {engine}", command, env, count, ok_codes=(0, 1))


def read_labels(path: Path) -> dict[str, tuple[str, float | None]]:
    with open(path, newline="", encoding="utf-8") as file:
        return {
            row["path"]: (row["label"], float(row["confidence"]) if row["confidence"] else None)
            for row in csv.DictReader(file)
        }


def agreement(local: Path, ray: Path) -> dict:
    """How far the two engines' rows differ (they should not)."""
    a, b = read_labels(local), read_labels(ray)
    shared = a.keys() & b.keys()
    differences = [abs(a[p][1] - b[p][1]) for p in shared if a[p][1] is not None and b[p][1] is not None]
    return {
        "same_paths": a.keys() == b.keys(),
        "label_mismatches": sum(a[p][0] != b[p][0] for p in shared),
        "max_confidence_difference": max(differences, default=0.0),
    }


def render_markdown(report: dict) -> str:
    machine, settings, engines = report["machine"], report["settings"], report["engines"]
    n = settings["photos"]
    lines = [
        "# Ray's overhead against the local engine, on one machine",
        "",
        f"`{settings['command']}`, {machine['date']}: {machine['cpu']}, {machine['cores_usable']} usable "
        f"cores, {machine['ram_gib']} GiB RAM, Python {machine['python']}, Ray {settings['ray']}; "
        f"load average {', '.join(map(str, machine['load_average_at_start']))} at the start"
        + (f", run at niceness {machine['niceness']}" if machine["niceness"] else "")
        + ".",
        "",
        f"`fmnist-batch classify PHOTOS -o OUT.csv --quiet --workers {settings['workers']} --engine E` on "
        f"{n:,} photos ({settings['corpus']}), each run a separate process timed from start to exit; "
        f"median of {settings['runs']} run{'s' if settings['runs'] > 1 else ''}.",
        "",
        "| engine | photos | wall s (median) | runs, s | photos/s | ms/photo | one photo, s | peak RSS, MB "
        "| processes |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for engine in ENGINES:
        e = engines[engine]
        lines.append(
            f"| {engine} | {n:,} | {e['wall_s']:.2f} | {', '.join(f'{s:.1f}' for s in e['runs_s'])} "
            f"| {n / e['wall_s']:.1f} | {1000 * e['wall_s'] / n:.1f} | {e['one_photo_s']:.2f} "
            f"| {e['peak_rss_tree_mb']:,.0f} | {e['max_processes']} |"
        )
    overhead = report["overhead"]
    lines += [
        "",
        f"**Ray's overhead on {n:,} photos: {overhead['total_s']:+.1f} s ({overhead['ratio']:.2f}× the "
        f"local engine's wall time)**, of which about {overhead['startup_s']:.1f} s is the fixed cost of "
        f"starting and stopping a local Ray (the one-photo runs) and {overhead['per_photo_ms']:+.1f} ms per "
        "photo the rest (task and actor scheduling, the object store).",
        "",
        f"The engines' rows: {'the same' if report['agreement']['same_paths'] else '**different**'} paths, "
        f"{report['agreement']['label_mismatches']} different labels, largest confidence difference "
        f"{report['agreement']['max_confidence_difference']:.1e}.",
        "",
        "Notes:",
        "",
        "- Peak RSS is the largest sum of VmRSS over the process and all its descendants (for Ray: its GCS, "
        "raylet, dashboard agent and worker processes), sampled every 20 ms; shared pages count once per "
        "process.",
        "- On one machine Ray only adds cost: it pays off when `--ray-address` spreads the work over "
        "several machines.",
    ]
    if machine["niceness"] or max(machine["load_average_at_start"]) > 0.5 * machine["cores_usable"]:
        lines.append(
            "- The machine was busy (or this ran at a low priority), so the times are longer and noisier "
            "than on an idle machine; rerun there for the real figures."
        )
    return "\n".join(lines) + "\n"


def photos_to_time(args: argparse.Namespace) -> tuple[Path, int, str]:
    """The folder both engines are given, its photo count, and how the report describes it."""
    if args.photos is not None:
        photos_dir = args.photos
        count = sum(1 for p in photos_dir.rglob("*") if p.is_file())
        return photos_dir, count, f"the folder {photos_dir}"
    manifest = build_corpus(args.corpus_dir, args.n, args.seed, args.workers)
    corpus = f"{manifest['jpeg']} JPEG and {manifest['png']} PNG catalog photos, 500-1,100 px, rendered"
    return args.corpus_dir / "photos", manifest["n"], corpus


def run_engines(args: argparse.Namespace, photos_dir: Path, count: int, env: dict) -> tuple[dict, dict]:
    """Each engine's median run and one-photo run, and how far their rows differ."""
    one_photo = str(next(p for p in sorted(photos_dir.rglob("*")) if p.is_file()))
    engines: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="fmnist-bench-ray-") as tmp:
        work = Path(tmp)
        for engine in ENGINES:  # warm up, untimed: bytecode, page cache, Ray's first start
            classify(engine, [one_photo], work / "warm.csv", args.workers, env, 1)
        runs: dict[str, list[Measurement]] = {engine: [] for engine in ENGINES}
        for run in range(args.runs):
            for engine in ENGINES:  # interleaved, so a change in the machine's load hits both
                log(f"run {run + 1} of {args.runs}: --engine {engine}, {count} photos")
                measured = classify(
                    engine, [str(photos_dir)], work / f"{engine}.csv", args.workers, env, count
                )
                if measured.error:
                    sys.exit(f"bench_ray: --engine {engine} failed: {measured.error}")
                runs[engine].append(measured)
        for engine in ENGINES:
            log(f"--engine {engine}, one photo")
            one = classify(engine, [one_photo], work / "one.csv", args.workers, env, 1)
            wall = statistics.median(m.wall_s for m in runs[engine])
            engines[engine] = {
                "wall_s": wall,
                "runs_s": [m.wall_s for m in runs[engine]],
                "one_photo_s": one.wall_s,
                "peak_rss_tree_mb": max(m.peak_rss_tree_mb for m in runs[engine]),
                "max_processes": max(m.max_processes for m in runs[engine]),
            }
        return engines, agreement(work / "local.csv", work / "ray.csv")


def overhead(engines: dict, count: int) -> dict:
    """Ray's extra wall time: in all, as a ratio, its fixed start-up (the one-photo runs) and per photo."""
    local, on_ray = engines["local"], engines["ray"]
    startup = on_ray["one_photo_s"] - local["one_photo_s"]
    total = on_ray["wall_s"] - local["wall_s"]
    return {
        "total_s": total,
        "ratio": on_ray["wall_s"] / local["wall_s"],
        "startup_s": startup,
        "per_photo_ms": 1000 * (total - startup) / count,
    }


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    import ray

    machine = machine_info()
    command = shlex.join(["python", "scripts/bench_ray.py", *(sys.argv[1:] if argv is None else argv)])
    photos_dir, count, corpus = photos_to_time(args)
    warm_page_cache(photos_dir)
    env = child_env(args.corpus_dir.parent / "pycache")
    env.pop("RAY_ADDRESS", None)  # each Ray run starts its own local Ray
    engines, agreed = run_engines(args, photos_dir, count, env)
    report = {
        "machine": machine,
        "settings": {
            "command": command,
            "photos": count,
            "corpus": corpus,
            "workers": args.workers,
            "runs": args.runs,
            "ray": ray.__version__,
        },
        "engines": engines,
        "overhead": overhead(engines, count),
        "agreement": agreed,
    }
    write_report(args.out, render_markdown(report), report)


if __name__ == "__main__":
    main()
