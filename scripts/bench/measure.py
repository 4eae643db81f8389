"""Whole processes measured from outside: wall time from start to exit, the CPU time of the process and the
descendants it waited for (the kernel's rusage), and the memory of the process and all its descendants
(VmRSS summed over the tree, found through /proc, sampled every 20 ms); the median of repeated runs; the
machine they ran on."""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from fmnist_batch.cpus import usable_cpus

SAMPLE_INTERVAL = 0.02

#: whether this kernel lists a task's children in /proc (else they are found from every process's parent;
#: the report says which)
CHILDREN_FILES = Path(f"/proc/self/task/{os.getpid()}/children").exists()


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
    parents = None if CHILDREN_FILES else _parent_map()
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
    #: user + system CPU seconds of the process and the workers it waited for: on a machine shared with
    #: other work it moves less than the wall time, which is what the targets are set in
    cpu_s: float | None = None
    runs_cpu_s: list[float | None] = field(default_factory=list)

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
        result.returncode, result.cpu_s = wait_with_cpu(process)
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


def wait_with_cpu(process: subprocess.Popen) -> tuple[int, float]:
    """Wait for `process`: its exit code, and the user + system CPU seconds of it and of every descendant
    it waited for (a pool's workers), as the kernel counts them at exit."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_utime + usage.ru_stime


def median_run(runs: list[Measurement]) -> Measurement:
    """The run with the median wall time (the lower middle one for an even count), carrying every run's
    wall time; a failed run is returned as is, since its error is what the report must show."""
    failed = [m for m in runs if not m.ok]
    if failed:
        return failed[0]
    median = sorted(runs, key=lambda m: m.wall_s)[(len(runs) - 1) // 2]
    median.runs_wall_s = [m.wall_s for m in runs]
    median.runs_cpu_s = [m.cpu_s for m in runs]
    median.runs_load_1m = [m.load_1m for m in runs]
    return median


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
        "cores_usable": usable_cpus(),
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
