"""The HTML review report of a classify run (`fmnist-batch classify ... --report report.html`).

One self-contained file that opens from disk: the summary table, then the photos grouped by predicted
class, least confident first (the ones to check), each with a small JPEG thumbnail embedded as a data
URL, then the files that failed and why. No scripts, no external URLs; images load lazily and every
class is a collapsible <details>, so a report of a few thousand photos stays usable.

Memory stays flat: rows and thumbnails go into a private temporary SQLite database (on disk, deleted
when closed) as the run streams past, and the HTML is written from it at the end, one query per class,
to a temporary file that is renamed onto the report.

Thumbnails are made by re-opening each classified photo at reduced size (JPEGs decode at 1/2 to 1/8
scale) in a few background threads, so the pipeline's workers keep their contract and the run does not
wait for them; a photo that cannot be re-read gets a placeholder, never an error.
"""

from __future__ import annotations

import base64
import html
import io
import os
import sqlite3
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any, TextIO

from PIL import Image

from fmnist_batch import __version__
from fmnist_batch.convert import ConversionSettings, load_image, to_rgb
from fmnist_batch.files import atomic_write
from fmnist_batch.labels import CLASS_NAMES
from fmnist_batch.outputs.destination import check_destination
from fmnist_batch.outputs.errors import OutputError
from fmnist_batch.outputs.rows import OTHER
from fmnist_batch.outputs.summary import Summary

THUMBNAIL_SIZE = 96
JPEG_QUALITY = 70
#: rows whose thumbnails may be in the making at once; bounds memory however long the run
IN_FLIGHT = 64
DEFAULT_SETTINGS = ConversionSettings()


def make_thumbnail(
    path: str, size: int = THUMBNAIL_SIZE, settings: ConversionSettings = DEFAULT_SETTINGS
) -> bytes | None:
    """A JPEG of the photo at `path` whose longest edge is `size`, or None if it cannot be read."""
    try:
        img = to_rgb(load_image(path, settings))
        img.thumbnail((size, size), Image.Resampling.LANCZOS, reducing_gap=2.0)
        buffer = io.BytesIO()
        img.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=True)
        return buffer.getvalue()
    except Exception:  # the photo changed or vanished since it was classified: a placeholder will do
        return None


def _text(value: Any) -> str:
    """HTML-escaped text; file names that are not valid UTF-8 show replacement characters."""
    text = "" if value is None else str(value)
    return html.escape(text.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))


#: the answers a report groups photos by: the 10 classes, then the photos that show none of them
ANSWERS = (*CLASS_NAMES, OTHER)


def _shown(label: str) -> str:
    return "other: none of the 10 classes" if label == OTHER else label


def _anchor(label: str) -> str:
    return "class-" + "".join(c if c.isalnum() else "-" for c in label.lower())


def _ranks(row: dict) -> str:
    parts, k = [], 1
    while row.get(f"top{k}_label"):
        parts.append(f"{row[f'top{k}_label']} {float(row[f'top{k}_prob']):.1%}")
        k += 1
    return " · ".join(parts)


class HtmlReport:
    """Collects the rows of a run (add) and writes the report (finish). Use as a context manager, or call
    close(): the temporary database and the thumbnail threads are released either way."""

    def __init__(
        self,
        output: str | os.PathLike,
        *,
        inputs: list[str] | None = None,
        settings: ConversionSettings = DEFAULT_SETTINGS,
        thumbnail_size: int = THUMBNAIL_SIZE,
        threads: int = 2,
    ) -> None:
        self.output = os.fspath(output)
        check_destination(self.output)  # a typo in --report must not cost a whole run
        self.inputs = list(inputs or [])
        # figures of the run, from the caller's Summary at finish(); this one counts only when none is given
        self.summary = Summary()
        self._settings = settings
        self._thumbnail_size = thumbnail_size
        # "" = a private temporary database on disk, deleted when the connection closes
        self._db = sqlite3.connect("")
        self._db.execute(
            "CREATE TABLE rows (seq INTEGER PRIMARY KEY, path TEXT, label TEXT, confidence REAL, "
            "status TEXT, error TEXT, ranks TEXT, view TEXT, thumbnail BLOB)"
        )
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="report-thumbnails")
        self._pending: deque[tuple[dict, Future | None]] = deque()
        self._seq = 0

    def __enter__(self) -> HtmlReport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def add(self, row: dict) -> None:
        """One row of the run, as the pipeline yields it."""
        future = None
        if row["status"] != "error":
            future = self._executor.submit(make_thumbnail, row["path"], self._thumbnail_size, self._settings)
        self._seq += 1
        record = {
            "seq": self._seq,
            "path": _text(row["path"]),
            "label": row.get("label"),
            "confidence": row.get("confidence"),
            "status": row["status"],
            "error": _text(row.get("error")),
            "ranks": _text(_ranks(row)),
            # how it was read, for display: the view, and a worn garment's region ("worn · upper")
            "view": " · ".join(filter(None, (row.get("view"), row.get("region")))),
        }
        self._pending.append((record, future))
        while len(self._pending) > IN_FLIGHT:
            self._store(*self._pending.popleft())

    def _store(self, record: dict, future: Future | None) -> None:
        record["thumbnail"] = future.result() if future is not None else None
        self._db.execute(
            "INSERT INTO rows VALUES "
            "(:seq, :path, :label, :confidence, :status, :error, :ranks, :view, :thumbnail)",
            record,
        )

    def finish(
        self, summary: Summary | None = None, *, skipped: int = 0, model_accuracy: float | None = None
    ) -> None:
        """Write the report atomically. `summary` is the run's Summary, fed the same rows (its figures head
        the report); without one the report counts its own rows, and `skipped` is the rows of earlier
        runs (--resume) it never saw."""
        while self._pending:
            self._store(*self._pending.popleft())
        self._db.execute("CREATE INDEX by_class ON rows (label, confidence, seq)")
        if summary is None:
            self._count_rows()
            self.summary.skipped = skipped
        else:
            self.summary = summary
        try:
            with atomic_write(self.output, encoding="utf-8") as file:
                self._write(file, model_accuracy)
        except OSError as e:
            raise OutputError(f"cannot write the report {self.output!r}: {e.strerror}") from e

    def _count_rows(self) -> None:
        query = "SELECT label, confidence, status FROM rows ORDER BY seq"
        for label, confidence, status in self._rows(query):
            self.summary.add({"label": label, "confidence": confidence, "status": status})

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()
        self._db.close()

    # ------------------------------------------------------------------------------------------ html

    def _write(self, out: TextIO, model_accuracy: float | None) -> None:
        summary = self.summary
        title = "fmnist-batch report"
        when = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        out.write(f"<!doctype html>\n<html lang=en>\n<head>\n<meta charset=utf-8>\n<title>{title}</title>\n")
        out.write('<meta name=viewport content="width=device-width, initial-scale=1">\n')
        out.write(f"<style>{STYLE}</style>\n</head>\n<body>\n<header>\n<h1>{title}</h1>\n<p class=meta>")
        facts = [f"{summary.total:,} files", when, f"fmnist-batch {__version__}"]
        if model_accuracy is not None:
            facts.append(f"model test accuracy {model_accuracy:.2%}")
        out.write(" · ".join(_text(f) for f in facts))
        if self.inputs:
            out.write("<br>inputs: " + " ".join(f"<code>{_text(i)}</code>" for i in self.inputs))
        out.write("</p>\n</header>\n<main>\n")
        self._write_summary(out)
        for label in ANSWERS:
            if summary.counts[label]:
                self._write_class(out, label)
        if summary.errors:
            self._write_errors(out)
        out.write("</main>\n</body>\n</html>\n")

    def _write_summary(self, out: TextIO) -> None:
        summary = self.summary
        out.write("<section id=summary>\n<h2>Summary</h2>\n<table class=summary>\n<thead><tr><th>class</th>")
        out.write("<th class=num>files</th><th class=num>share</th><th></th>")
        out.write("<th class=num>mean confidence</th><th class=num>uncertain</th></tr></thead>\n<tbody>\n")
        largest = max(summary.counts.values(), default=0)
        for label in ANSWERS:
            count = summary.counts[label]
            if not count:
                continue
            share = count / (summary.classified + summary.other)
            mean = summary.confidence_sums[label] / count
            out.write(
                f'<tr><td><a href="#{_anchor(label)}">{_text(_shown(label))}</a></td>'
                f"<td class=num>{count:,}</td>"
                f"<td class=num>{share:.1%}</td><td class=barcell><span class=bar "
                f'style="width:{100 * count / largest:.1f}%"></span></td><td class=num>{mean:.3f}</td>'
                f"<td class=num>{summary.uncertain_counts[label]:,}</td></tr>\n"
            )
        out.write("</tbody>\n<tbody class=totals>\n")
        elapsed = summary.elapsed
        totals = [
            ("files", f"{summary.total:,}"),
            ("classified", f"{summary.classified:,}"),
            ("uncertain", f"{summary.uncertain:,}"),
            *([("other (none of the 10 classes)", f"{summary.other:,}")] if summary.other else []),
            ("errors", f'<a href="#errors">{summary.errors:,}</a>' if summary.errors else "0"),
        ]
        if summary.skipped:
            totals.append(("skipped (already in the output, --resume)", f"{summary.skipped:,}"))
        totals.append(("elapsed", f"{elapsed:.1f} s"))
        if elapsed > 0:
            totals.append(("images/s", f"{summary.total / elapsed:,.1f}"))
        for name, value in totals:
            out.write(f"<tr><th>{_text(name)}</th><td class=num>{value}</td><td colspan=4></td></tr>\n")
        out.write("</tbody>\n</table>\n</section>\n")

    def _rows(self, sql: str, *params: Any) -> Iterator[tuple]:
        cursor = self._db.execute(sql, params)
        while batch := cursor.fetchmany(256):
            yield from batch

    def _write_class(self, out: TextIO, label: str) -> None:
        count = self.summary.counts[label]
        mean = self.summary.confidence_sums[label] / count
        out.write(
            f'<details open class=group id="{_anchor(label)}">\n<summary>'
            f"<span class=name>{_text(_shown(label))}"
            f"</span> <span class=count>{count:,} photo{'s' if count != 1 else ''} · mean confidence "
            f"{mean:.3f} · least confident first</span></summary>\n<div class=grid>\n"
        )
        size = self._thumbnail_size
        for path, confidence, status, ranks, view, thumbnail in self._rows(
            "SELECT path, confidence, status, ranks, view, thumbnail FROM rows "
            "WHERE label = ? AND status != 'error' ORDER BY confidence, seq",
            label,
        ):
            name = path.rsplit("/", 1)[-1]
            if thumbnail:
                data = base64.b64encode(thumbnail).decode("ascii")
                image = (
                    f'<img src="data:image/jpeg;base64,{data}" loading=lazy decoding=async '
                    f'width={size} height={size} alt="">'
                )
            else:
                image = f"<span class=missing style='width:{size}px;height:{size}px'>no preview</span>"
            flag = " uncertain" if status == "uncertain" else ""
            # how the photo was read, shown unless it is a plain catalog shot
            shown = f"<span class=view>{html.escape(view)}</span>" if view and view != "catalog" else ""
            out.write(
                f'<figure class="photo{flag}" title="{path}&#10;{ranks}&#10;view: {view}">{image}<figcaption>'
                f"<b>{confidence:.1%}</b>{'<i>uncertain</i>' if flag else ''}{shown}"
                f"<span class=file>{name}</span></figcaption></figure>\n"
            )
        out.write("</div>\n</details>\n")

    def _write_errors(self, out: TextIO) -> None:
        errors = self.summary.errors
        out.write(
            f"<details open class=group id=errors>\n<summary><span class=name>Errors</span> "
            f"<span class=count>{errors:,} file{'s' if errors != 1 else ''} could not be classified"
            "</span></summary>\n<table class=errors>\n<thead><tr><th>file</th><th>why</th></tr></thead>\n"
            "<tbody>\n"
        )
        for path, error in self._rows("SELECT path, error FROM rows WHERE status = 'error' ORDER BY seq"):
            out.write(f"<tr><td class=file>{path}</td><td>{error}</td></tr>\n")
        out.write("</tbody>\n</table>\n</details>\n")


STYLE = """
:root { --ink: #1d2330; --muted: #667085; --line: #e3e6ec; --paper: #f6f7f9; --accent: #3b5bdb;
  --warn: #e67700; --error: #c92a2a; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
  color: var(--ink); background: var(--paper); }
header { padding: 1rem 2rem; background: #fff; border-bottom: 1px solid var(--line); }
h1 { margin: 0; font-size: 1.3rem; }
h2 { font-size: 1.1rem; margin: 0 0 .6rem; }
.meta { margin: .3rem 0 0; color: var(--muted); }
code { background: var(--paper); padding: 0 .3rem; border-radius: 4px; }
main { padding: 1.2rem 2rem 3rem; max-width: 1400px; margin: 0 auto; }
section, details.group { background: #fff; border: 1px solid var(--line); border-radius: 10px;
  padding: 1rem 1.2rem; margin-bottom: 1rem; }
table { border-collapse: collapse; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
th, td { padding: .25rem .8rem .25rem 0; text-align: left; vertical-align: top; }
thead th { color: var(--muted); font-weight: 500; border-bottom: 1px solid var(--line); }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.barcell { width: 200px; }
.bar { display: block; height: .55rem; background: var(--accent); border-radius: 999px; min-width: 2px; }
tbody.totals th { font-weight: 500; color: var(--muted); }
tbody.totals tr:first-child > * { border-top: 1px solid var(--line); padding-top: .5rem; }
summary { cursor: pointer; font-size: 1.05rem; }
summary .name { font-weight: 650; }
summary .count { color: var(--muted); font-size: .9rem; }
.grid { display: flex; flex-wrap: wrap; gap: .8rem; margin-top: .8rem; content-visibility: auto; }
figure.photo { margin: 0; width: 124px; padding: 7px; border: 1px solid var(--line); border-radius: 8px; }
figure.photo img, .missing { display: block; margin: 0 auto; object-fit: contain; background: var(--paper); }
.missing { display: flex; align-items: center; justify-content: center; color: var(--muted);
  font-size: .75rem; }
figure.uncertain { border-color: #ffd8a8; background: #fff9db; }
figcaption .view { margin-left: .4em; color: #1864ab; font-size: .85em; }
figcaption { font-size: .75rem; margin-top: .3rem; }
figcaption b { font-variant-numeric: tabular-nums; }
figcaption i { color: var(--warn); font-style: normal; margin-left: .3rem; }
.file { display: block; color: var(--muted); overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
table.errors { margin-top: .6rem; }
table.errors td.file { display: table-cell; white-space: normal; overflow-wrap: anywhere; color: var(--ink); }
table.errors td:last-child { color: var(--error); }
"""
