"""The targets the catalog path is held to, and the ratios of (c)'s time per photo to the other methods'
that they are judged on."""

from __future__ import annotations

from bench.measure import Measurement
from bench.methods import ONE_PHOTO_RUNS

TARGET_C_OVER_D = 2.0  # (c), with its scope judge, within 2x of the floor, in time per photo
TARGET_C0_OVER_D = 1.3  # (c0), without the judge, within 1.3x of the floor
TARGET_SPEEDUP_B = 1.7  # (c) at least 1.7x faster than (b)
TARGET_SPEEDUP_A = 30.0  # (c) at least 30x faster than (a)
TARGET_ONE_PHOTO_S = 0.5
TARGET_PEAK_RSS_MB = 300.0
TARGET_RSS_GROWTH = 1.2  # peak RSS at --scale photos / at N photos


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
        "c0/d": per_photo("c0") / per_photo("d") if per_photo("c0") and per_photo("d") else None,
    }
    growth = None
    if c_ok and scaled is not None and scaled.ok:
        growth = scaled.peak_rss_tree_mb / c.peak_rss_tree_mb
    one_s = one["median_s"] if one and not one["error"] else None
    peak = c.peak_rss_tree_mb if c_ok else None
    scale = "--scale" if scaled is None else f"{scaled.expected:,}"
    targets = _targets(ratios, one_s, peak, growth, scale, n)
    rounds = {"c/d": _per_round(results, "c", "d"), "c0/d": _per_round(results, "c0", "d")}
    return {
        "ratios": ratios,
        "ratios_per_round": rounds,
        "a_s_per_photo_extrapolated": a_per_photo,
        "targets": targets,
    }


def _per_round(results: dict[str, Measurement], num: str, den: str) -> list[float]:
    """The ratio of two interleaved methods' wall times in each round (their i-th runs, started one
    after the other, on the same photos): the spread shows how far the machine's load moved a ratio that
    is judged on the medians. Empty unless both ran the same number of times."""
    a, b = results.get(num), results.get(den)
    if a is None or b is None or not (a.ok and b.ok) or len(a.runs_wall_s) != len(b.runs_wall_s):
        return []
    return [x / y for x, y in zip(a.runs_wall_s, b.runs_wall_s, strict=True)]


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
            f"(c0), --no-other, within {TARGET_C0_OVER_D}× of the floor (d): c0/d ≤ {TARGET_C0_OVER_D}",
            ratios["c0/d"],
            TARGET_C0_OVER_D,
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
