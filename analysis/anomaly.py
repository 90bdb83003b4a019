"""Anomalies of a service against its own recent baseline: throughput falling, p99 latency or the
error ratio rising.

Method: a seasonal baseline with a robust z-score and persistence.

- Baseline: the median of the same time of day on up to ``season_days`` previous days (+-1 step),
  so a daily cycle (quiet nights, busy noons) is expected, not alarming, scaled to today's level by
  the median ratio of the trailing ``trailing_points`` to their own seasonal values (a trend or a
  new normal after a release re-levels within ``trailing_points``). Without two previous days
  of history the baseline is the median of the trailing ``trailing_points``: level only.
- Scale: 1.4826 x the median absolute residual over the trailing ``scale_points`` (the MAD, a
  standard deviation for Gaussian noise that a few outliers cannot inflate); for throughput and
  latency the residuals are taken relative to the baseline (their noise grows with their level,
  so a quiet night and a busy noon share one relative scale), for the error ratio absolute; floored at
  ``rel_floor`` x baseline and ``abs_floor`` so a perfectly flat series does not alarm on a blip.
- Score: z = (observed - baseline) / scale, in the metric's bad direction only.
- Persistence: an anomaly is a run of at least ``min_points`` consecutive steps beyond
  ``threshold`` (single-step gaps are bridged): isolated spikes, the commonest false alarm of a
  plain threshold, never qualify.

Why not a mean/stddev z-score or an EWMA: both are dragged by the outliers they should find and
know no daily cycle. Why not STL or Prophet: heavier, and they need long regular history that a
fresh deployment does not have; the median baseline degrades gracefully to "recent level".
Precision and recall on synthetic series with injected anomalies: see tests/analysis/test_anomaly.py
and docs/analysis.md.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

METHOD = "seasonal-median baseline + MAD robust z-score, persistence"
MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    threshold: float = 3.5
    min_points: int = 3
    season_s: int = 86_400
    season_days: int = 7
    trailing_points: int = 30
    scale_points: int = 120
    rel_floor: float = 0.05
    abs_floor: float = 1e-9
    relative: bool = True  # noise proportional to the level (throughput, latency)


@dataclass(slots=True)
class Anomaly:
    metric: str
    start_s: int
    end_s: int  # end of the last anomalous step
    size: float  # observed - baseline (median over the run), in the metric's unit
    baseline: float
    observed: float
    score: float  # median |z| over the run
    method: str = METHOD

    def as_dict(self) -> dict:
        return asdict(self)


def baseline_and_scale(ts: np.ndarray, values: np.ndarray, step_s: int, config: DetectorConfig) -> tuple[np.ndarray, np.ndarray]:
    """Expected value and robust scale for every point, from strictly earlier points."""
    series = pd.Series(values, dtype="float64")
    trailing = series.shift(1).rolling(config.trailing_points, min_periods=max(3, config.trailing_points // 3)).median()
    baseline = trailing.to_numpy(copy=True)
    lag = config.season_s // step_s if step_s and config.season_s % step_s == 0 else 0
    if lag and len(values) > 2 * lag:
        candidates = []
        for day in range(1, config.season_days + 1):
            for jitter in (-1, 0, 1):
                shift = day * lag + jitter
                if shift < len(values):
                    candidates.append(series.shift(shift).to_numpy())
        stacked = np.vstack(candidates)
        available = np.sum(~np.isnan(stacked), axis=0)
        with warnings.catch_warnings():  # all-NaN columns (no history yet) are expected
            warnings.simplefilter("ignore", RuntimeWarning)
            seasonal = np.nanmedian(stacked, axis=0)
        # the daily shape, moved to today's level: the median ratio (or difference) of the
        # trailing points to their own seasonal expectation, so a week-on-week trend is no alarm
        with np.errstate(all="ignore"):
            offset = values / seasonal if config.relative else values - seasonal
        offset = pd.Series(np.where(np.isfinite(offset), offset, np.nan)).shift(1)
        level = offset.rolling(config.trailing_points, min_periods=max(3, config.trailing_points // 3)).median()
        level = level.fillna(1.0 if config.relative else 0.0).to_numpy()
        adjusted = seasonal * level if config.relative else seasonal + level
        # two previous days (6 candidates with jitter) before trusting the daily shape
        use = (available >= 6) & np.isfinite(adjusted)
        baseline[use] = adjusted[use]
    with np.errstate(all="ignore"):
        residual = (values - baseline) / np.abs(baseline) if config.relative else values - baseline
    residual = pd.Series(np.where(np.isfinite(residual), residual, np.nan))
    mad = residual.abs().shift(1).rolling(config.scale_points, min_periods=max(3, config.trailing_points // 3)).median()
    scale = (mad * MAD_TO_SIGMA).to_numpy()
    if config.relative:
        scale = scale * np.abs(baseline)
    floor = np.maximum(np.abs(baseline) * config.rel_floor, config.abs_floor)
    scale = np.fmax(scale, floor)
    return baseline, scale


def detect(ts, values, step_s: int, *, metric: str, direction: int, since_s: int | None = None,
           config: DetectorConfig = DetectorConfig()) -> list[Anomaly]:
    """Runs of ``values`` (at ``ts``, unix s, regular ``step_s``) beyond the threshold in
    ``direction`` (+1 rising is bad, -1 falling is bad) that end at or after ``since_s``.
    NaN values (no traffic to measure) neither alarm nor break a run's baseline."""
    ts = np.asarray(ts, dtype="int64")
    values = np.asarray(values, dtype="float64")
    if len(values) == 0:
        return []
    baseline, scale = baseline_and_scale(ts, values, step_s, config)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = direction * (values - baseline) / scale
    flagged = np.nan_to_num(z, nan=0.0) > config.threshold
    anomalies = []
    for first, last in _runs(flagged, config.min_points):
        if since_s is not None and ts[last] < since_s:
            continue
        segment = slice(first, last + 1)
        hits = flagged[segment]
        observed = float(np.nanmedian(values[segment][hits]))
        expected = float(np.nanmedian(baseline[segment][hits]))
        anomalies.append(Anomaly(metric=metric, start_s=int(ts[first]), end_s=int(ts[last] + step_s),
                                 size=observed - expected, baseline=expected, observed=observed,
                                 score=float(np.median(np.abs(z[segment][hits])))))
    return anomalies


def _runs(flagged: np.ndarray, min_points: int) -> list[tuple[int, int]]:
    """(first, last) index of runs of flagged points, bridging single-point gaps, with at least
    ``min_points`` flagged points."""
    runs, first, last, hits, gap = [], None, None, 0, 0
    for i, hit in enumerate(flagged):
        if hit:
            if first is None:
                first, hits = i, 0
            last, gap = i, 0
            hits += 1
        elif first is not None:
            gap += 1
            if gap > 1:
                if hits >= min_points:
                    runs.append((first, last))
                first = None
    if first is not None and hits >= min_points:
        runs.append((first, last))
    return runs


def finite(value: float) -> float | None:
    return value if value is not None and math.isfinite(value) else None


HISTORY_DAYS = 3
MIN_REQUESTS_FOR_LATENCY = 5  # a p99 of fewer requests per step is noise, not a measurement
ERROR_RATIO_FLOOR = 0.01  # an error ratio moving by less than 1 point is never an anomaly


def service_anomalies(ctx, service: str, window, config: DetectorConfig = DetectorConfig()) -> list[dict]:
    """Anomalies of ``service`` that touch ``window``, judged against up to HISTORY_DAYS before it."""
    from analysis import metrics
    from analysis.context import Window

    history = Window(window.start_s - HISTORY_DAYS * 86_400, window.end_s, window.step_s)
    frame = metrics.series(ctx, service, history)
    if frame.empty or not frame["count"].any():
        return []
    ts = frame["ts"].to_numpy()
    count = frame["count"].to_numpy(dtype="float64")
    measured = count >= MIN_REQUESTS_FOR_LATENCY
    latency = np.where(measured, pd.to_numeric(frame["p99"], errors="coerce").to_numpy(dtype="float64"), np.nan)
    errors = np.where(measured, pd.to_numeric(frame["error_ratio"], errors="coerce").to_numpy(dtype="float64"), np.nan)
    # a service's history starts when it was first seen: no "anomaly" for the steps before it existed
    first_seen = int(np.argmax(count > 0))
    found: list[Anomaly] = []
    for metric, values, direction, cfg in (
        ("throughput", frame["rps"].to_numpy(dtype="float64"), -1, config),
        ("latency_p99", latency, +1, config),
        ("error_ratio", errors, +1, DetectorConfig(**{**asdict(config), "abs_floor": ERROR_RATIO_FLOOR, "relative": False})),
    ):
        found += detect(ts[first_seen:], values[first_seen:], window.step_s, metric=metric, direction=direction,
                        since_s=window.start_s, config=cfg)
    return [{"service": service, "metric": a.metric, "start": a.start_s * 1000, "end": a.end_s * 1000,
             "size": finite(a.size), "baseline": finite(a.baseline), "observed": finite(a.observed),
             "score": finite(a.score), "method": a.method} for a in sorted(found, key=lambda a: a.start_s)]
