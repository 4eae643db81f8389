"""The run summary: per-class counts, shares and mean confidence, and the run's totals, as a rich table."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, TextIO

from fmnist_batch.labels import CLASS_NAMES
from fmnist_batch.outputs.rows import OTHER

if TYPE_CHECKING:
    from rich.table import Table

# rich is imported where a table is drawn: a --quiet run from cron never pays for it.


#: column headings where ten classes must fit side by side
SHORT_NAMES = ("T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot")


class Summary:
    """Accumulates rows as they stream past; holds counts only, never the rows."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.counts: Counter[str] = Counter()
        self.confidence_sums: defaultdict[str, float] = defaultdict(float)
        self.uncertain_counts: Counter[str] = Counter()  # per class: below --min-confidence
        self.total = self.ok = self.uncertain = self.other = self.errors = 0
        #: of the rows counted, those carried over from an earlier run (--resume)
        self.carried = 0
        #: rows of the output that this summary does not count (a report that saw only this run's rows)
        self.skipped = 0

    def add(self, row: dict, *, carried: bool = False) -> None:
        """Count a row; `carried`: it comes from an earlier run (--resume), not classified now."""
        self.total += 1
        self.carried += carried
        status = row["status"]
        if status == "error":
            self.errors += 1
            return
        self.ok += status == "ok"
        self.other += status == OTHER
        if status == "uncertain":
            self.uncertain += 1
            self.uncertain_counts[row["label"]] += 1
        self.counts[row["label"]] += 1
        self.confidence_sums[row["label"]] += float(row["confidence"])

    @property
    def classified(self) -> int:
        return self.ok + self.uncertain

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def table(self) -> Table:
        from rich.table import Table

        table = Table(title="fmnist-batch summary", title_justify="left")
        table.add_column("class")
        table.add_column("files", justify="right")
        table.add_column("share", justify="right")
        table.add_column("mean confidence", justify="right")
        answered = self.classified + self.other
        for name in (*CLASS_NAMES, OTHER):
            count = self.counts[name]
            if count:
                share = count / answered
                mean = self.confidence_sums[name] / count
                shown = "other (none of the 10)" if name == OTHER else name
                table.add_row(shown, f"{count:,}", f"{share:.1%}", f"{mean:.3f}")
        table.add_section()
        new = self.total - self.carried
        rate = new / self.elapsed if self.elapsed > 0 else 0.0  # the speed of this run's work alone
        totals = [
            ("files", f"{self.total:,}"),
            ("classified", f"{self.classified:,}"),
            ("uncertain", f"{self.uncertain:,}"),
            *([("other", f"{self.other:,}")] if self.other else []),
            ("errors", f"{self.errors:,}"),
        ]
        if self.carried:
            totals += [("carried over (--resume)", f"{self.carried:,}"), ("new this run", f"{new:,}")]
        if self.skipped:
            totals.append(("skipped (resumed)", f"{self.skipped:,}"))
        totals += [("elapsed", f"{self.elapsed:.2f} s"), ("images/s", f"{rate:,.1f}")]
        for name, value in totals:
            table.add_row(name, value, "", "")
        return table

    def print(self, stream: TextIO) -> None:
        from rich.console import Console

        console = Console(file=stream, highlight=False, width=80 if not stream.isatty() else None)
        console.print(self.table())


def print_tables(tables: list[Table], stream: TextIO) -> None:
    from rich.console import Console

    console = Console(file=stream, highlight=False, width=None if stream.isatty() else 120)
    for table in tables:
        console.print(table)
