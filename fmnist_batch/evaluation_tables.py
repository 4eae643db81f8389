"""An evaluation as tables for people (rich): accuracy per folder, the confusion of folders against the
answers, and the out-of-scope folder's share answered other. `evaluate --json` carries the same figures."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fmnist_batch.labels import CLASS_NAMES

if TYPE_CHECKING:
    from rich.table import Table

    from fmnist_batch.evaluate import Evaluation, OutOfScope


def evaluation_tables(evaluation: Evaluation) -> list[Table]:
    """Per-folder accuracy, the confusion matrix, and the out-of-scope table when there is one."""
    tables = [accuracy_table(evaluation), confusion_table(evaluation)]
    if evaluation.out_of_scope is not None:
        tables.append(out_of_scope_table(evaluation.out_of_scope))
    return tables


def accuracy_table(evaluation: Evaluation) -> Table:
    from rich.table import Table

    table = Table(title="accuracy per folder (an answer of other counts as wrong)", title_justify="left")
    for name, justify in (("folder", "left"), ("counts as right", "left"), ("files", "right")):
        table.add_column(name, justify=justify)
    table.add_column("accuracy", justify="right")
    for f in evaluation.folders:
        right = ", ".join(CLASS_NAMES[i] for i in sorted(f.accepted))
        table.add_row(f.name, right, f"{f.files:,}", f"{f.accuracy:.3f}")
    table.add_section()
    table.add_row("all", "", f"{evaluation.files:,}", f"{evaluation.accuracy:.3f}")
    table.add_row("mean of folders", "", "", f"{evaluation.balanced_accuracy:.3f}")
    for name, count in evaluation.skipped.items():
        table.add_row(name, "(no class fits: skipped)", f"{count:,}", "")
    return table


def confusion_table(evaluation: Evaluation) -> Table:
    from rich.table import Table

    from fmnist_batch.outputs.summary import SHORT_NAMES

    table = Table(title="confusion: folder (rows) x answer (columns)", title_justify="left")
    table.add_column("folder")
    for name in [*SHORT_NAMES, "other", "error"]:
        table.add_column(name, justify="right")
    for f, row in zip(evaluation.folders, evaluation.confusion(), strict=True):
        cells = [
            f"[bold]{n}[/bold]" if i in f.accepted and n else (str(n) if n else "·")
            for i, n in enumerate(row)
        ]
        table.add_row(f.name, *cells)
    return table


def out_of_scope_table(out: OutOfScope) -> Table:
    from rich.table import Table

    title = f"none of the 10 classes ({out.folder}/): answered other; AUROC of in_scope {_auroc_text(out)}"
    table = Table(title=title, title_justify="left")
    columns = ("subfolder", "left"), ("files", "right"), ("other", "right"), ("share", "right")
    for name, justify in columns:
        table.add_column(name, justify=justify)
    for key in [*sorted(k for k in out.files if k != "all"), "all"]:
        if key == "all":
            table.add_section()
        files, other = out.files.get(key, 0), out.answered_other.get(key, 0)
        table.add_row(key, f"{files:,}", f"{other:,}", f"{out.share_other(key):.1%}")
    if out.errors:
        table.add_row("not read (errors)", f"{out.errors:,}", "", "")
    return table


def _auroc_text(out: OutOfScope) -> str:
    every = out.auroc()
    return "n/a (no scope judge)" if every is None else f"{every:.3f}"
