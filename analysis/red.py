"""RED (rate, errors, duration) from merged latency distributions.

ClickHouse merges the log-bucket histograms of every instance and interval of a group with
``sumMap``; here the merged buckets become percentiles (within the sketch's ~0.55% relative error,
see ``meshscope.sketch``) and an Apdex score. Percentiles are never averaged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from meshscope.sketch import LatencySketch, bucket_index, bucket_value

QUANTILES = (0.5, 0.9, 0.95, 0.99)
QUANTILE_COLUMNS = ("p50", "p90", "p95", "p99")
RED_COLUMNS = ("count", "errors", "rps", "error_ratio", "p50", "p90", "p95", "p99", "max", "mean", "apdex")


def sketches(frame: pd.DataFrame, keys: Sequence[str]) -> dict[tuple, LatencySketch]:
    """One merged sketch per group of ``keys`` from rows of ``latency_distributions`` (rows of one
    group differ only by scale; merging downscales to the coarsest, exactly)."""
    merged: dict[tuple, LatencySketch] = {}
    for row in frame.itertuples(index=False):
        key = tuple(getattr(row, k) for k in keys)
        part = LatencySketch.from_parts(row.buckets, int(row.zero_count), int(row.count), float(row.sum),
                                        float(row.min), float(row.max), int(row.scale))
        if key in merged:
            merged[key].merge(part)
        else:
            merged[key] = part
    return merged


def apdex(sketch: LatencySketch, threshold_ms: float) -> float | None:
    """(satisfied + tolerated / 2) / count with satisfied <= T < tolerated <= 4T, on bucket values."""
    if sketch.count == 0:
        return None
    # bucket values grow with the index: compare indexes with the last one at or under each bound
    satisfied_to = _last_index_at_most(threshold_ms, sketch.scale)
    tolerated_to = _last_index_at_most(4 * threshold_ms, sketch.scale)
    satisfied, tolerated = sketch.zero_count, 0
    for index, n in sketch.buckets.items():
        if index <= satisfied_to:
            satisfied += n
        elif index <= tolerated_to:
            tolerated += n
    return (satisfied + tolerated / 2) / sketch.count


def _last_index_at_most(value: float, scale: int) -> float:
    """The largest bucket index whose bucket value is <= ``value`` (-inf when none is)."""
    if value <= 0:
        return -math.inf
    index = bucket_index(value, scale)
    while bucket_value(index + 1, scale) <= value:
        index += 1
    while bucket_value(index, scale) > value:
        index -= 1
    return index


def red_of(sketch: LatencySketch, errors: int, seconds: float, apdex_t_ms: float) -> dict:
    count = sketch.count
    qs = sketch.quantiles(QUANTILES) if count else [None] * len(QUANTILES)
    return {
        "count": count,
        "errors": int(errors),
        "rps": count / seconds if seconds > 0 else None,
        "error_ratio": errors / count if count else None,
        **dict(zip(QUANTILE_COLUMNS, qs)),
        "max": sketch.max if count else None,
        "mean": sketch.mean if count else None,
        "apdex": apdex(sketch, apdex_t_ms),
    }


def red_table(frame: pd.DataFrame, keys: Sequence[str], seconds: float, apdex_t_ms: float) -> pd.DataFrame:
    """RED per group of ``keys`` (include ``ts`` for a series; then ``seconds`` is the step)."""
    keys = list(keys)
    if frame.empty:
        return pd.DataFrame(columns=keys + list(RED_COLUMNS) + ["sum_ms", "rows"])
    errors = frame.groupby(keys, sort=True)[["errors", "sum", "rows"]].sum() if keys else frame[["errors", "sum", "rows"]].sum().to_frame().T
    merged = sketches(frame, keys)
    records = []
    for key, sketch in merged.items():
        totals = errors.loc[key if len(key) > 1 else key[0]] if keys else errors.iloc[0]
        record = dict(zip(keys, key))
        record.update(red_of(sketch, int(totals["errors"]), seconds, apdex_t_ms))
        record["sum_ms"] = float(totals["sum"])
        record["rows"] = int(totals["rows"])
        records.append(record)
    return pd.DataFrame.from_records(records).sort_values(keys).reset_index(drop=True) if keys else pd.DataFrame.from_records(records)


def spans_as_red(frame: pd.DataFrame, seconds: float) -> pd.DataFrame:
    """Complete ``span_red`` rows (exact SQL quantiles) with the same columns as ``red_table``."""
    if frame.empty:
        return frame.assign(**{c: [] for c in ("rps", "error_ratio", "mean", "apdex", "sum_ms", "rows")})
    out = frame.copy()
    out["rps"] = out["count"] / seconds
    out["error_ratio"] = out["errors"] / out["count"]
    out["mean"] = out["sum"] / out["count"]
    out["apdex"] = (out["satisfied"] + out["tolerated"] / 2) / out["count"]
    out["sum_ms"] = out["sum"]
    out["rows"] = 0
    return out.drop(columns=["satisfied", "tolerated", "sum"])


def clean(value: object) -> object:
    """JSON-safe scalar: NaN/inf -> None, numpy scalars -> Python."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def records(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict]:
    return [{c: clean(row.get(c)) for c in columns} for row in frame.to_dict("records")]
