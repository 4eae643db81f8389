"""The speed benchmarks' library, for scripts/benchmark.py and scripts/bench_ray.py (their entry points):

- corpus.py: the catalog corpus rendered from the Fashion-MNIST test set, its scaled copy, the page cache;
- real_corpora.py: the corpora of photos that are not catalog shots (amateur, worn) and their rows;
- measure.py: one whole process timed from outside, the memory of its tree, the machine it ran on;
- methods.py: the methods (a) to (d) and the one-photo run as commands, and the benchmark's runs of them;
- targets.py: the ratios between methods and the targets the catalog path is held to;
- report.py: the Markdown report (docs/benchmark.md) and its JSON.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
SCRIPTS = REPO / "scripts"


def log(message: str) -> None:
    print(f"benchmark: {message}", file=sys.stderr, flush=True)
