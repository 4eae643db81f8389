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
      (fmnist_batch/png.py), so on PNGs it can decode faster than this floor.
(a), (c) and (d) run --repeat times (default 3), interleaved, and are reported by their median run: the
targets are ratios to (a) and (d), and one run of either varies by a third on a shared machine.

Plus: the wall time of classifying one photo (`classify photo.jpg -o -`, median of 5 runs), and (c) on
--scale photos (the corpus hard-linked under other names in subfolders) to show memory stays flat.
Peak memory is the sum of VmRSS over the process and all its descendants, sampled every 20 ms.

Photos that are not catalog shots take other paths, timed in the same run as (c) and (d) on the very
same files (scripts/benchmark_corpora.py; target: at most 15 ms a photo of wall time on 2 cores, start-up
subtracted), with how many photos took each view (classify's `view` column):

  amateur: the CC0 photos of <--photos-root>/clothing-dataset-small/train and /validation (the segmented
      view), a seeded sample of --real-limit (0: all), (c) and (d) --repeat times;
  worn: the 360 shop thumbnails of <--photos-root>/catalog-myntra-dev (mostly the worn view), read in
      place, (c) and (d) --worn-repeat times.
A corpus whose folder is absent is skipped with a note. Only these rows, without rendering the catalog
corpus:

    python scripts/benchmark.py --skip a,b,c,d,one,scale
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))  # benchmark_corpora (and synth), however this module is loaded

import benchmark_corpora as corpora  # noqa: E402

KERAS_MODEL = REPO / "models" / "model.keras"

METHODS = ("a", "b", "c", "d")
EXTRAS = ("one", "scale")  # also skippable: the one-photo start-up runs and the --scale run
SKIPPABLE = (*METHODS, *EXTRAS, *corpora.CORPORA)  # and the corpora of photos that are not catalog shots
JPEG_SHARE = 0.7
SIZE_RANGE = (500, 1100)
TINTS = (None, (40, 60, 120), (120, 30, 30), (30, 90, 50), (90, 70, 40))
SAMPLE_INTERVAL = 0.02
ONE_PHOTO_RUNS = 5
MARKER = ".fmnist-bench-corpus"  # a folder holding this was made by us and may be rebuilt
MANIFEST = "manifest.json"

# The targets the catalog path is held to.
TARGET_C_OVER_D = 1.3  # (c) within 1.3x of the floor, in time per photo
TARGET_SPEEDUP_B = 1.7  # (c) at least 1.7x faster than (b)
TARGET_SPEEDUP_A = 30.0  # (c) at least 30x faster than (a)
TARGET_ONE_PHOTO_S = 0.5
TARGET_PEAK_RSS_MB = 300.0
TARGET_RSS_GROWTH = 1.2  # peak RSS at --scale photos / at N photos

LABELS = {
    "a": "(a) Keras, load_img + predict one photo at a time",
    "b": "(b) tf.data pipeline + model.predict, batch 256",
    "c": "(c) fmnist-batch classify",
    "d": "(d) floor: decode only, Pillow, same workers",
}


def log(message: str) -> None:
    print(f"benchmark: {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ corpus


@dataclass(frozen=True)
class PhotoJob:
    """One photo to render: everything random is drawn up front, so the corpus depends only on the seed."""

    name: str
    index: int
    size: int
    background: tuple[int, int, int]
    tint: tuple[int, int, int] | None
    offset: tuple[float, float]
    garment_fraction: float
    fmt: str
    quality: int


def plan_corpus(n: int, seed: int) -> list[PhotoJob]:
    import numpy as np
    from synth import CATALOG_GREY, WHITE

    rng = np.random.default_rng(seed)
    # Without replacement up to the test set's 10,000 images, so a 3,000-photo corpus has no duplicates.
    indices = rng.choice(10_000, size=n, replace=n > 10_000)
    jobs = []
    for number, index in enumerate(indices):
        fmt = "JPEG" if rng.random() < JPEG_SHARE else "PNG"
        jobs.append(
            PhotoJob(
                name=f"{number:06d}-test{int(index):05d}.{'jpg' if fmt == 'JPEG' else 'png'}",
                index=int(index),
                size=int(rng.integers(SIZE_RANGE[0], SIZE_RANGE[1] + 1)),
                background=WHITE if rng.random() < 0.6 else CATALOG_GREY,
                tint=TINTS[rng.integers(len(TINTS))],
                offset=(float(rng.uniform(-0.12, 0.12)), float(rng.uniform(-0.12, 0.12))),
                garment_fraction=float(rng.uniform(0.5, 0.8)),
                fmt=fmt,
                quality=int(rng.integers(80, 96)),
            )
        )
    return jobs


_test_images = None  # the Fashion-MNIST test images, set in the parent before the render pool forks


def _render(job_and_folder: tuple[PhotoJob, str]) -> int:
    from synth import render_catalog_photo, save_photo

    job, folder = job_and_folder
    photo = render_catalog_photo(
        _test_images[job.index],
        size=job.size,
        background=job.background,
        tint=job.tint,
        offset=job.offset,
        garment_fraction=job.garment_fraction,
        noise=1.0,  # sensor noise, as in real photos (and scripts/make_samples.py)
        seed=job.index,
    )
    return save_photo(photo, Path(folder, job.name), job.fmt, quality=job.quality).stat().st_size


def _read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def _complete(folder: Path, manifest: dict | None, expected: dict) -> bool:
    if manifest is None or any(manifest.get(k) != v for k, v in expected.items()):
        return False
    return all((folder / "photos" / name).is_file() for name in manifest["files"])


def _fresh_folder(folder: Path) -> Path:
    """An empty folder/photos; refuses to clear a folder this script did not make."""
    photos = folder / "photos"
    if photos.exists():
        if not (folder / MARKER).exists():
            sys.exit(
                f"benchmark: {photos} exists and was not made by this script; choose another --corpus-dir"
            )
        shutil.rmtree(photos)
    photos.mkdir(parents=True)
    (folder / MARKER).touch()
    (folder / MANIFEST).unlink(missing_ok=True)
    return photos


def build_corpus(folder: Path, n: int, seed: int, workers: int) -> dict:
    """Render the corpus into folder/photos unless a complete one is there; return its manifest."""
    global _test_images
    expected = {"n": n, "seed": seed, "version": 2}
    manifest = _read_manifest(folder)
    if _complete(folder, manifest, expected):
        log(f"reusing the corpus in {folder}")
        return manifest
    import multiprocessing

    from fmnist_batch.training.data import load_dataset

    photos = _fresh_folder(folder)
    log(f"rendering {n} photos into {photos} (once; reused by later runs)")
    jobs = plan_corpus(n, seed)
    _test_images = load_dataset().test.images
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        sizes = pool.map(_render, [(job, str(photos)) for job in jobs], chunksize=16)
    formats = Counter(job.fmt for job in jobs)
    manifest = {
        **expected,
        "jpeg": formats["JPEG"],
        "png": formats["PNG"],
        "bytes": sum(sizes),
        "bytes_png": sum(size for job, size in zip(jobs, sizes, strict=True) if job.fmt == "PNG"),
        "render_s": round(time.perf_counter() - started, 1),
        "files": [job.name for job in jobs],
    }
    # Written last: its presence means the corpus is complete.
    (folder / MANIFEST).write_text(json.dumps(manifest))
    return manifest


def build_scaled_corpus(source: Path, folder: Path, total: int) -> dict:
    """`total` photos as hard links to the source corpus's files under other names, in subfolders.

    Hard links, not symlinks: classify lists each real path once, so symlinked copies would collapse
    back to the original files. Copies are the fallback across file systems."""
    names = sorted(p.name for p in (source / "photos").iterdir())
    expected = {"n": total, "source": str(source), "version": 1}
    manifest = _read_manifest(folder)
    if _complete(folder, manifest, expected):
        log(f"reusing the {total}-photo corpus in {folder}")
        return manifest
    photos = _fresh_folder(folder)
    log(f"linking {total} photos into {photos}")
    files, how = [], "hard links"
    for number in range(total):
        copy, name = divmod(number, len(names))
        target = Path(f"copy-{copy:02d}", f"c{copy:02d}-{names[name]}")
        (photos / target.parent).mkdir(exist_ok=True)
        try:
            os.link(source / "photos" / names[name], photos / target)
        except OSError:  # another file system, or links not allowed
            shutil.copyfile(source / "photos" / names[name], photos / target)
            how = "copies"
        files.append(str(target))
    manifest = {**expected, "how": how, "copies": -(-total // len(names)), "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    return manifest


def warm_page_cache(folder: Path) -> None:
    """Read every file once, so every method reads from memory, whichever runs first."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with open(path, "rb") as f:
                while f.read(1 << 20):
                    pass


# ---------------------------------------------------------------------------------------- measurement

_CHILDREN_FILES = Path(f"/proc/self/task/{os.getpid()}/children").exists()


def _children(pid: int) -> list[int]:
    kids = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids.extend(int(k) for k in f.read().split())
        except OSError:
            continue
    return kids


def _parent_map() -> dict[int, list[int]]:
    """ppid -> pids from /proc/*/stat, for kernels without /proc/<pid>/task/<tid>/children."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")".
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def process_tree(root: int) -> list[int]:
    """root and all its descendants, found through /proc."""
    parents = None if _CHILDREN_FILES else _parent_map()
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(_children(pid) if parents is None else parents.get(pid, []))
    return found


def _memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in KiB; (0, 0) for a process that is gone or a zombie."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


class TreeSampler(threading.Thread):
    """Samples the memory of a process tree every SAMPLE_INTERVAL seconds until stopped."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_tree_kib = 0  # max over samples of the sum of VmRSS over the tree
        self.peak_single_kib = 0  # max VmHWM (the kernel's own per-process peak) seen in any process
        self.max_processes = 0
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            pids = process_tree(self.pid)
            memory = [_memory_kib(pid) for pid in pids]
            alive = [m for m in memory if m[0]]
            if alive:
                self.samples += 1
                self.peak_tree_kib = max(self.peak_tree_kib, sum(rss for rss, _ in alive))
                self.peak_single_kib = max(self.peak_single_kib, *(max(rss, hwm) for rss, hwm in alive))
                self.max_processes = max(self.max_processes, len(alive))
            self._stop_event.wait(SAMPLE_INTERVAL)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def mb(kib: int) -> float:
    return kib * 1024 / 1e6


@dataclass
class Measurement:
    """One whole-process run of one method."""

    method: str
    label: str
    command: list[str]
    expected: int  # photos it was given
    photos: int = 0  # photos it reports having done
    wall_s: float = 0.0
    peak_rss_tree_mb: float = 0.0
    peak_rss_single_mb: float = 0.0
    max_processes: int = 0
    samples: int = 0
    setup_s: float | None = None  # child's own time from its first line to its first photo
    loop_s: float | None = None  # child's own time for the photos
    returncode: int = 0
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    #: wall times of every repeat of this method; this measurement is the median one
    runs_wall_s: list[float] = field(default_factory=list)
    load_1m: float | None = None  # the machine's 1-minute load average when the run started
    runs_load_1m: list[float | None] = field(default_factory=list)
    views: dict[str, int] | None = None  # classify's rows by their view column

    @property
    def ok(self) -> bool:
        return self.error is None and self.photos > 0

    @property
    def photos_per_s(self) -> float:
        return self.photos / self.wall_s

    @property
    def s_per_photo(self) -> float:
        return self.wall_s / self.photos

    def to_dict(self) -> dict:
        data = asdict(self)
        if self.ok:
            data |= {"photos_per_s": self.photos_per_s, "ms_per_photo": 1000 * self.s_per_photo}
        return data


def run_measured(
    method: str,
    label: str,
    command: list[str],
    env: dict[str, str],
    expected: int,
    ok_codes: Sequence[int] = (0,),
) -> Measurement:
    """Run `command` as a separate process; wall time from start to exit, memory of its whole tree."""
    result = Measurement(method, label, command, expected, load_1m=round(os.getloadavg()[0], 2))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, cwd=tempfile.gettempdir(), stdout=out, stderr=err)
        sampler = TreeSampler(process.pid)
        sampler.start()
        result.returncode = process.wait()
        result.wall_s = time.perf_counter() - started
        sampler.stop()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    result.peak_rss_tree_mb = mb(sampler.peak_tree_kib)
    result.peak_rss_single_mb = mb(sampler.peak_single_kib)
    result.max_processes, result.samples = sampler.max_processes, sampler.samples
    if result.returncode not in ok_codes:
        tail = " | ".join(stderr.strip().splitlines()[-5:])
        result.error = f"exit code {result.returncode}: {tail}"
        return result
    # The bench_*.py children end with one JSON line about themselves.
    lines = stdout.strip().splitlines()
    if lines and lines[-1].startswith("{"):
        reported = json.loads(lines[-1])
        result.photos, result.setup_s, result.loop_s = (
            reported["photos"],
            reported["setup_s"],
            reported["loop_s"],
        )
    else:
        result.photos = expected
    if result.photos != expected:
        result.notes.append(f"processed {result.photos} of {expected} photos")
    return result


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
) -> Measurement:
    """Run (c) on the folder `photos`; its CSV (classify_output) is kept only if asked."""
    output = classify_output(work, method, expected)
    command = classify_command([str(photos)], str(output), "--quiet", "--workers", str(workers))
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


# ------------------------------------------------------------------------------------------------ report


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict:
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        total_kib = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "ram_gib": round(total_kib / 2**20, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "tensorflow": _version("tensorflow"),
        "keras": _version("keras"),
        "pillow": _version("pillow"),
        "litert": _version("ai-edge-litert"),
        "isal": _version("isal"),
        "numpy": _version("numpy"),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "niceness": os.nice(0),
    }


def _fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _met(ok: bool | None) -> str:
    return "not measured" if ok is None else ("yes" if ok else "**no**")


def comparisons(
    results: dict[str, Measurement], one: dict | None, scaled: Measurement | None, n: int
) -> dict:
    """The ratios and the issue's targets, from whatever was measured (None where not)."""
    c = results.get("c")
    c_ok = c is not None and c.ok

    def per_photo(key: str) -> float | None:
        m = results.get(key)
        return m.s_per_photo if m is not None and m.ok else None

    # (a) ran on a subset; its start-up spread over that subset would flatter (c), so compare with (a)
    # extrapolated to N photos: its start-up once plus N times its in-loop time per photo.
    a = results.get("a")
    a_per_photo = None
    if a is not None and a.ok and a.loop_s is not None:
        a_per_photo = ((a.wall_s - a.loop_s) + a.loop_s / a.photos * n) / n
    ratios = {
        "c/a": c.s_per_photo / a_per_photo if c_ok and a_per_photo else None,
        "c/b": c.s_per_photo / per_photo("b") if c_ok and per_photo("b") else None,
        "c/d": c.s_per_photo / per_photo("d") if c_ok and per_photo("d") else None,
    }
    growth = None
    if c_ok and scaled is not None and scaled.ok:
        growth = scaled.peak_rss_tree_mb / c.peak_rss_tree_mb
    one_s = one["median_s"] if one and not one["error"] else None
    peak = c.peak_rss_tree_mb if c_ok else None
    scale = "--scale" if scaled is None else f"{scaled.expected:,}"
    targets = _targets(ratios, one_s, peak, growth, scale, n)
    return {"ratios": ratios, "a_s_per_photo_extrapolated": a_per_photo, "targets": targets}


def _targets(
    ratios: dict, one_s: float | None, peak: float | None, growth: float | None, scale: str, n: int
) -> list[dict]:
    return [
        _target(
            f"(c) within {TARGET_C_OVER_D}× of the floor (d): c/d ≤ {TARGET_C_OVER_D}",
            ratios["c/d"],
            TARGET_C_OVER_D,
            "×",
        ),
        _target(
            f"(c) ≥ {TARGET_SPEEDUP_B}× faster than (b): c/b ≤ {1 / TARGET_SPEEDUP_B:.3f}",
            ratios["c/b"],
            1 / TARGET_SPEEDUP_B,
            "×",
        ),
        _target(
            f"(c) ≥ {TARGET_SPEEDUP_A:.0f}× faster than (a): c/a ≤ {1 / TARGET_SPEEDUP_A:.3f}",
            ratios["c/a"],
            1 / TARGET_SPEEDUP_A,
            "×",
        ),
        _target(
            f"one photo < {TARGET_ONE_PHOTO_S} s wall (median of {ONE_PHOTO_RUNS})",
            one_s,
            TARGET_ONE_PHOTO_S,
            " s",
            strict=True,
        ),
        _target(
            f"(c) peak RSS of the process tree < {TARGET_PEAK_RSS_MB:.0f} MB",
            peak,
            TARGET_PEAK_RSS_MB,
            " MB",
            strict=True,
        ),
        _target(
            f"(c) peak RSS at {scale} photos ≤ {TARGET_RSS_GROWTH}× that at {n:,}",
            growth,
            TARGET_RSS_GROWTH,
            "×",
        ),
    ]


def _target(text: str, measured: float | None, limit: float, unit: str, strict: bool = False) -> dict:
    """One of the issue's targets: met when `measured` is below `limit` (or equal, unless strict)."""
    met = None if measured is None else (measured < limit if strict else measured <= limit)
    return {"target": text, "measured": measured, "limit": limit, "unit": unit, "met": met}


def _speed_words(ratio: float | None) -> str:
    if ratio is None:
        return "not measured"
    if ratio <= 1:
        return f"(c) is {1 / ratio:,.1f}× faster"
    return f"(c) is {ratio:,.2f}× slower"


def _corpus_mix(corpus: dict) -> str:
    """ "2,100 JPEG of 31 kB and 900 PNG of 690 kB on average": the PNGs' full decode dominates."""
    png_bytes = corpus.get("bytes_png")
    if png_bytes is None or not corpus["jpeg"] or not corpus["png"]:
        return f"{corpus['jpeg']:,} JPEG, {corpus['png']:,} PNG, {corpus['bytes'] / 1e6:,.0f} MB in all"
    jpeg_kb = (corpus["bytes"] - png_bytes) / corpus["jpeg"] / 1e3
    return (
        f"{corpus['jpeg']:,} JPEG of {jpeg_kb:,.0f} kB and {corpus['png']:,} PNG of "
        f"{png_bytes / corpus['png'] / 1e3:,.0f} kB on average"
    )


def render_markdown(report: dict, results: dict[str, Measurement], scaled: Measurement | None) -> str:
    """The whole report: the machine, the catalog corpus's rows (unless all skipped), the other corpora's."""
    machine, settings = report["machine"], report["settings"]
    lines = [
        "# fmnist-batch benchmark",
        "",
        f"Run {machine['date']} with `{settings['command']}`.",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores ({machine['cores_usable']} usable), "
        f"{machine['ram_gib']} GiB RAM, {machine['os']}; Python {machine['python']}, TensorFlow "
        f"{machine['tensorflow']}, Keras {machine['keras']}, Pillow {machine['pillow']}, LiteRT "
        f"{machine['litert']}, NumPy {machine['numpy']}, isal {machine['isal']}. "
        "Load average at start "
        f"{', '.join(map(str, machine['load_average_at_start']))}, at the end "
        f"{', '.join(map(str, machine.get('load_average_at_end', [])))}; niceness {machine['niceness']}.",
    ]
    if report["corpus"] is not None:
        lines += ["", *_catalog_table(report, results, scaled), *_catalog_comparison(report)]
        lines += ["", "Notes:", "", *(f"- {note}" for note in _catalog_notes(report, results, scaled))]
    if report["corpora"] or report["corpora_notes"]:
        lines += ["", *corpora.render_section(report["corpora"], report["corpora_notes"], settings)]
    skipped = [k for k in SKIPPABLE if k in settings["skip"]]
    if skipped:
        lines += ["", "Skipped: " + ", ".join(skipped) + "."]
    return "\n".join(lines) + "\n"


def _catalog_table(report: dict, results: dict[str, Measurement], scaled: Measurement | None) -> list[str]:
    settings, corpus = report["settings"], report["corpus"]
    n = settings["n"]
    lines = [
        f"Corpus: {n:,} photos ({_corpus_mix(corpus)}; {SIZE_RANGE[0]}–{SIZE_RANGE[1]:,} px square, with "
        "slight sensor noise as in scripts/make_samples.py) rendered from the Fashion-MNIST test set by "
        f"`scripts/synth.py`, in `{settings['corpus_dir']}/photos`, read from the page cache (warmed "
        f"before timing). Workers for (c) and (d): {settings['workers']}.",
        "",
        "| method | photos | wall (s) | photos/s | ms/photo | start-up + exit (s) | peak RSS, tree (MB) "
        "| largest process (MB) | processes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = [results[k] for k in METHODS if k in results] + ([scaled] if scaled is not None else [])
    for m in rows:
        label = m.label + (" *(subset)*" if m.method == "a" else "")
        if len(m.runs_wall_s) > 1:
            label += f", median of {len(m.runs_wall_s)} ({', '.join(f'{w:.2f}' for w in m.runs_wall_s)} s)"
        if not m.ok:
            lines.append(f"| {label} | — | — | — | — | — | — | — | — |")
            continue
        setup = None if m.loop_s is None else m.wall_s - m.loop_s
        cells = [
            label,
            f"{m.photos:,}",
            f"{m.wall_s:,.2f}",
            _fmt(m.photos_per_s),
            _fmt(1000 * m.s_per_photo, 2),
            _fmt(setup, 2),
            f"{m.peak_rss_tree_mb:,.0f}",
            f"{m.peak_rss_single_mb:,.0f}",
            str(m.max_processes),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + _one_photo_row(report)


def _one_photo_row(report: dict) -> list[str]:
    one, lines = report.get("one_photo"), []
    if one and not one["error"]:
        runs = ", ".join(f"{s:.2f}" for s in one["runs_s"])
        lines.append(
            f"| one photo: `classify photo.jpg -o -`, median of {ONE_PHOTO_RUNS} ({runs}) | 1 "
            f"| {one['median_s']:.2f} | — | — | — | {one['peak_rss_tree_mb']:,.0f} | — | — |"
        )
    return lines


def _catalog_comparison(report: dict) -> list[str]:
    ratios = report["comparison"]["ratios"]
    lines = [
        "",
        "Ratios of time per photo, (c) ÷ the other method: **below 1 means (c) is faster** "
        "(0.5 = twice as fast).",
        "",
        "| ratio | time per photo, (c) ÷ (x) | reading |",
        "| --- | ---: | --- |",
    ]
    for key in ("c/a", "c/b", "c/d"):
        lines.append(f"| {key} | {_fmt(ratios[key], 3)} | {_speed_words(ratios[key])} |")

    lines += ["", "Targets:", "", "| target | measured | met |", "| --- | ---: | --- |"]
    for target in report["comparison"]["targets"]:
        value, unit = target["measured"], target["unit"]
        shown = "—" if value is None else (f"{value:,.0f}{unit}" if unit == " MB" else f"{value:,.3f}{unit}")
        lines.append(f"| {target['target']} | {shown} | {_met(target['met'])} |")
    return lines


def _catalog_notes(report: dict, results: dict[str, Measurement], scaled: Measurement | None) -> list[str]:
    settings, n = report["settings"], report["settings"]["n"]
    rows = [results[k] for k in METHODS if k in results] + ([scaled] if scaled is not None else [])
    notes = [
        "Each method is a separate process started by this script, timed from start to exit (imports, "
        "model loading and start-up included). *start-up + exit* is the wall time minus the time the child "
        "reports for its photos (interpreter start, imports, model loading, exit); classify does not "
        "report it: see the one-photo row.",
        "Peak RSS, tree: the largest sum of VmRSS over the process and all its descendants, sampled every "
        f"{SAMPLE_INTERVAL * 1000:.0f} ms from this script. Pages shared by forked workers count once per "
        "process, so for (c) and (d) this overstates the memory really used. Largest process: the largest "
        "VmHWM (the kernel's per-process peak) seen. MB = 10⁶ bytes.",
    ]
    if settings["repeat"] > 1:
        notes.append(
            f"(a), (c) and (d) ran {settings['repeat']} times each, interleaved (a, c, d, a, c, d, ...), so "
            "load from elsewhere falls on all alike; each row is the run with the median wall time, and the "
            "ratios compare those medians. (b) ran once."
        )
    a = results.get("a")
    if a is not None and a.ok:
        a_extra = report["comparison"]["a_s_per_photo_extrapolated"]
        notes.append(
            f"(a) is slow, so it ran on {a.photos:,} photos only (--a-limit), spread over the corpus. For "
            f"c/a it is extrapolated to {n:,} photos (its start-up once plus {n:,} × its in-loop time per "
            f"photo): {1000 * a_extra:,.1f} ms/photo, against {1000 * a.s_per_photo:,.1f} ms/photo measured "
            "on the subset."
        )
    if n < 1000:
        notes.append(
            f"With only {n:,} photos, start-up takes much of each run: the ratios say little about "
            "throughput. Use the default --n 3000 for the real comparison."
        )
    if scaled is not None:
        notes.append(
            f"The {scaled.expected:,}-photo run reuses the {n:,} photos {report['scaled_corpus']['copies']} "
            f"times as {report['scaled_corpus']['how']} under other names, in subfolders (hard links, not "
            "symlinks: classify lists each real path once)."
        )
    notes.append(
        "(d) decodes with Pillow alone, as a plain decoding loop would. classify inflates PNGs of the "
        "common kinds (8-bit grey or RGB, with or without alpha, not interlaced) with ISA-L and lets "
        "Pillow only unfilter the rows (fmnist_batch/png.py), the same pixels about a third faster, so "
        "on a PNG-heavy corpus (c) can come close to (d) or under it."
    )
    notes.append(
        "Bytecode is cached (in a folder outside the repository) and each method's modules were loaded "
        "once, untimed, before the measurements, as on a machine that runs the job regularly."
    )
    if not _CHILDREN_FILES:
        notes.append(
            "This kernel has no /proc/<pid>/task/<tid>/children, so descendants were found from the parent "
            "ids in /proc/*/stat."
        )
    for m in rows:
        if m.error:
            notes.append(f"{m.label} failed: {m.error}")
        notes.extend(f"{m.label}: {note}" for note in m.notes)
    return [*notes, _load_note(rows)]


def _load_note(rows: list[Measurement]) -> str:
    runs = [f"{m.label}: {', '.join(map(str, m.runs_load_1m or [m.load_1m]))}" for m in rows]
    return "1-minute load average at the start of each run: " + "; ".join(runs) + "."


# -------------------------------------------------------------------------------------------------- main


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
        default=os.cpu_count() or 1,
        help="worker processes for (c) and (d) (default: CPU count, %(default)s)",
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


def evenly_spaced(items: Sequence[Path], count: int) -> list[Path]:
    """`count` items spread over the sequence, so a subset keeps the corpus's mix of formats and sizes."""
    if count >= len(items):
        return list(items)
    return [items[i * len(items) // count] for i in range(count)]


def bench_script(name: str, *arguments: object) -> list[str]:
    return [sys.executable, str(SCRIPTS / name), *map(str, arguments)]


def median_run(runs: list[Measurement]) -> Measurement:
    """The run with the median wall time (the lower middle one for an even count), carrying every run's
    wall time; a failed run is returned as is, since its error is what the report must show."""
    failed = [m for m in runs if not m.ok]
    if failed:
        return failed[0]
    median = sorted(runs, key=lambda m: m.wall_s)[(len(runs) - 1) // 2]
    median.runs_wall_s = [m.wall_s for m in runs]
    median.runs_load_1m = [m.load_1m for m in runs]
    return median


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
    runs: dict[str, list[Measurement]] = {"a": [], "c": [], "d": []}
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
        if "d" not in args.skip:
            log(f"(d) decode-only floor, {len(photos)} photos {of}")
            command = bench_script("bench_decode_floor.py", photos_dir, args.workers)
            runs["d"].append(run_measured("d", LABELS["d"], command, env, len(photos)))
    results |= {key: median_run(measured) for key, measured in runs.items() if measured}
    return results


def _without_files(manifest: dict | None) -> dict | None:
    return None if manifest is None else {k: v for k, v in manifest.items() if k != "files"}


CATALOG_PARTS = (*METHODS, "one")  # with all of these skipped, the catalog corpus is not even rendered


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
    results = catalog["results"] if catalog else {}
    one, scaled = (catalog["one"], catalog["scaled"]) if catalog else (None, None)
    report = {
        "machine": machine,
        "settings": {
            "command": command,
            "n": args.n,
            "workers": args.workers,
            "a_limit": args.a_limit,
            "repeat": args.repeat,
            "scale": args.scale,
            "skip": sorted(args.skip),
            "corpus_dir": str(args.corpus_dir),
            "seed": args.seed,
            "photos_root": str(args.photos_root),
            "real_limit": args.real_limit,
            "worn_repeat": args.worn_repeat,
        },
        "corpus": _without_files(catalog["corpus"]) if catalog else None,
        "scaled_corpus": _without_files(catalog["scaled_corpus"]) if catalog else None,
        "methods": {k: m.to_dict() for k, m in results.items()},
        "scaled": None if scaled is None else scaled.to_dict(),
        "one_photo": one,
        "comparison": comparisons(results, one, scaled, args.n) if catalog else None,
        "corpora": real,
        "corpora_notes": real_notes,
    }
    write_report(args.out, render_markdown(report, results, scaled), report)


def write_report(out: Path, markdown: str, report: dict) -> None:
    """Print the Markdown report and write it to `out`, with the JSON beside it."""
    print(markdown)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    log(f"wrote {out} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
