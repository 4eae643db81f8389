"""The Markdown report (docs/benchmark.md) and its JSON: the machine, the catalog corpus's table, ratios,
targets and notes, then the section of the corpora that are not catalog shots."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench import log
from bench.corpus import SIZE_RANGE
from bench.measure import CHILDREN_FILES, SAMPLE_INTERVAL, Measurement
from bench.methods import METHODS, ONE_PHOTO_RUNS, SKIPPABLE
from bench.real_corpora import MOONSHOT_MS, TARGET_MS, VIEWS
from bench.targets import comparisons


def build_report(
    args: argparse.Namespace,
    command: str,
    machine: dict,
    catalog: dict | None,
    real: dict,
    real_notes: list[str],
) -> dict:
    """The report's JSON: the machine, the settings it ran with, and whatever was measured (None where a
    part was skipped)."""
    results = catalog["results"] if catalog else {}
    one, scaled = (catalog["one"], catalog["scaled"]) if catalog else (None, None)
    return {
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


def _without_files(manifest: dict | None) -> dict | None:
    return None if manifest is None else {k: v for k, v in manifest.items() if k != "files"}


def _fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _met(ok: bool | None) -> str:
    return "not measured" if ok is None else ("yes" if ok else "**no**")


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
        lines += ["", *_corpora_section(report["corpora"], report["corpora_notes"], settings)]
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
        "| ratio | time per photo, (c) ÷ (x) | reading | in each round |",
        "| --- | ---: | --- | --- |",
    ]
    rounds = report["comparison"]["ratios_per_round"]
    for key in ("c/a", "c/b", "c/d", "c0/d"):
        each = ", ".join(f"{r:.3f}" for r in rounds.get(key, [])) or "—"
        lines.append(f"| {key} | {_fmt(ratios[key], 3)} | {_speed_words(ratios[key])} | {each} |")

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
            "ratios (and the targets) compare those medians; *in each round* divides the runs started one "
            "after the other. (b) ran once."
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
    if not CHILDREN_FILES:
        notes.append(
            "This kernel has no /proc/<pid>/task/<tid>/children, so descendants were found from the parent "
            "ids in /proc/*/stat."
        )
    for m in rows:
        if m.error:
            notes.append(f"{m.label} failed: {m.error}")
        notes.extend(f"{m.label}: {note}" for note in m.notes)
    return [*notes, _load_note(rows), _cpu_note(rows)]


def _load_note(rows: list[Measurement]) -> str:
    runs = [f"{m.label}: {_figures(m.runs_load_1m or [m.load_1m])}" for m in rows]
    return "1-minute load average at the start of each run: " + "; ".join(runs) + "."


def _cpu_note(rows: list[Measurement]) -> str:
    """Each run's CPU time: it moves less than the wall time when other work shares the machine."""
    runs = [f"{m.label}: {_figures(m.runs_cpu_s or [m.cpu_s])}" for m in rows]
    what = "CPU time of each run (user + system, the process and the workers it waited for, in s)"
    return f"{what}: " + "; ".join(runs) + "."


def _figures(values: list[float | None]) -> str:
    """Measured figures to 2 decimals, "?" where one was not measured."""
    return ", ".join("?" if value is None else f"{value:.2f}" for value in values)


def _cell(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _views(views: dict | None) -> str:
    if not views:
        return "—"
    known = " / ".join(f"{views.get(view, 0):,}" for view in VIEWS)
    others = ", ".join(f"{count:,} {view}" for view, count in views.items() if view not in VIEWS)
    return known + (f" ({others})" if others else "")


def _corpus_target(row: dict) -> str:
    if row["target_met"] is None:
        return "not measured"
    verdict = "yes" if row["target_met"] else "**no**"
    return verdict + (" (moonshot ≤ 8 too)" if row["moonshot_met"] else "")


def _runs(measured: dict | None) -> str:
    if not measured or not measured.get("runs_wall_s"):
        return "—"
    walls = ", ".join(f"{wall:.2f}" for wall in measured["runs_wall_s"])
    loads = _figures(measured.get("runs_load_1m", []))
    cpu = _figures(measured.get("runs_cpu_s") or [measured.get("cpu_s")])
    return f"{walls} s (CPU time: {cpu} s; 1-minute load average at their starts: {loads})"


def _corpora_section(corpora: dict, notes: list[str], settings: dict) -> list[str]:
    """The report's Markdown section for the corpora: their table, then what each row is made of."""
    lines = [
        "## Photos that are not catalog shots",
        "",
        f"Amateur photos take the segmented view (GrabCut), shop photos of a garment worn by a model the "
        f"worn view (face detection and selfie segmentation); target for every such path: at most "
        f"{TARGET_MS:.0f} ms a photo of wall time on 2 cores (moonshot {MOONSHOT_MS:.0f} ms). Photos from "
        f"`{settings['photos_root']}`. Workers for (c) and (d): {settings['workers']}.",
    ]
    if corpora:
        lines += [
            "",
            "| corpus | photos | views: catalog / segmented / worn | (c) ms/photo | (d) ms/photo | c/d "
            "| (c) wall ÷ photos, start-up included (ms) | (c) start-up, one photo (s) "
            f"| (c) peak RSS, tree (MB) | (c) ≤ {TARGET_MS:.0f} ms/photo |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
    for row in corpora.values():
        cells = [
            row["title"],
            f"{row['photos']:,}",
            _views(row["views"]),
            _cell(row["c_ms_per_photo"]),
            _cell(row["d_ms_per_photo"]),
            _cell(row["c_over_d"], 2),
            _cell(row["c_wall_ms_per_photo"]),
            _cell(row["c_startup_s"]),
            _cell(row["c_peak_rss_tree_mb"], 0),
            _corpus_target(row),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Notes:", ""]
    lines += [f"- {note}" for note in _corpora_notes(corpora, notes)]
    return lines


def _corpora_notes(corpora: dict, notes: list[str]) -> list[str]:
    out = [
        "ms/photo has start-up subtracted: for (c), the median wall time of classifying one photo of the "
        "same corpus (`classify photo -o -`: interpreter, imports, models, that photo, exit; the photo is "
        "one that took the corpus's main view, so its models are loaded) is taken off the run's wall "
        "time and the rest divided by the other photos; for (d), its own reported time for the photos. "
        "*(c) wall ÷ photos* is the whole run, start-up included. Each row is the run with the median "
        "wall time of (c) and of (d), run interleaved (c, d, c, d, ...).",
        "Views come from the `view` column of classify's CSV: catalog (the dataset's conversion as is), "
        "segmented (the garment cut out of its surroundings), worn (the garment a person wears).",
    ]
    for row in corpora.values():
        title = row["title"].capitalize()
        out.append(f"{title}: {row['description']}.")
        out.append(f"{title}, runs of (c): {_runs(row['c'])}; of (d): {_runs(row['d'])}.")
        one = row["one_photo"]
        if one:
            runs = ", ".join(f"{s:.2f}" for s in one["runs_s"])
            out.append(f"{title}, one-photo runs of (c): {runs} s, on `{row['startup_photo']}`.")
        for key in ("c", "d"):
            measured = row[key] or {}
            if measured.get("error"):
                out.append(f"{title}, ({key}) failed: {measured['error']}")
            out.extend(f"{title}, ({key}): {note}" for note in measured.get("notes", []))
    return out + notes


def write_report(out: Path, markdown: str, report: dict) -> None:
    """Print the Markdown report and write it to `out`, with the JSON beside it."""
    print(markdown)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    log(f"wrote {out} and {out.with_suffix('.json')}")
