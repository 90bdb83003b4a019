"""Anomaly detection on synthetic series with known injected anomalies: precision and recall."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis import anomaly
from analysis.context import Window
from tests.analysis.conftest import NOW, seed_latency

STEP = 300
DAY_POINTS = 86_400 // STEP


def synthetic(rng: np.random.Generator, days: int, kind: str):
    """A daily cycle, multiplicative noise and isolated one-step spikes (noise, not anomalies); in
    the last day, half the series get one injected anomaly: (start index, end index)."""
    n = days * DAY_POINTS
    t = np.arange(n)
    level = rng.uniform(20, 500)
    cycle = 1 + 0.6 * np.sin(2 * np.pi * t / DAY_POINTS + rng.uniform(0, 2 * np.pi))
    drift = 1 + rng.uniform(-0.1, 0.1) * t / DAY_POINTS  # the level moves by up to 10% a day
    values = level * cycle * drift * (1 + rng.normal(0, 0.08, n))
    spikes = rng.random(n) < 0.02
    values[spikes] *= rng.uniform(1.5, 2.5, spikes.sum()) if kind == "latency" else rng.uniform(0.3, 0.6, spikes.sum())
    truth = None
    if rng.random() < 0.5:
        start = (days - 1) * DAY_POINTS + int(rng.integers(12, DAY_POINTS - 30))
        length = int(rng.integers(6, 25))
        factor = rng.uniform(1.3, 2.0) if kind == "latency" else rng.uniform(0.4, 0.7)
        values[start:start + length] *= factor
        truth = (start, start + length - 1)
    return t * STEP, values, truth


def score(kind: str, series: int = 200, seed: int = 7):
    rng = np.random.default_rng(seed)
    tp = fp = fn = 0
    delays = []
    for _ in range(series):
        ts, values, truth = synthetic(rng, 4, kind)
        found = anomaly.detect(ts, values, STEP, metric=kind, direction=+1 if kind == "latency" else -1,
                               since_s=int(ts[3 * DAY_POINTS]))
        hit = False
        for a in found:
            if truth and a.start_s <= ts[truth[1]] and a.end_s > ts[truth[0]]:
                hit = True
                delays.append((a.start_s - ts[truth[0]]) // STEP)
            else:
                fp += 1
        if truth:
            tp += hit
            fn += not hit
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, delays


@pytest.mark.parametrize("kind", ["throughput", "latency"])
def test_precision_and_recall_on_synthetic_series_with_daily_cycle_and_spikes(kind):
    precision, recall, delays = score(kind)
    print(f"\nanomaly detection ({kind}, 200 series x 4 days at 5 min, daily cycle +-60%, drift, 8% noise, "
          f"2% spikes, anomalies of 30-100%): "
          f"precision={precision:.3f} recall={recall:.3f} median start delay={np.median(delays):.0f} steps")
    assert precision >= 0.9
    assert recall >= 0.9
    assert np.median(delays) <= 1  # the start is found within a step of the truth


def test_a_daily_cycle_alone_is_not_an_anomaly_but_would_be_without_seasonality():
    rng = np.random.default_rng(3)
    t = np.arange(4 * DAY_POINTS)
    values = 100 * (1 + 0.8 * np.sin(2 * np.pi * t / DAY_POINTS)) * (1 + rng.normal(0, 0.03, len(t))) + 5
    assert anomaly.detect(t * STEP, values, STEP, metric="throughput", direction=-1, since_s=3 * 86_400) == []
    no_season = anomaly.DetectorConfig(season_s=7)  # not a multiple of the step: level-only baseline
    level_only = anomaly.detect(t * STEP, values, STEP, metric="throughput", direction=-1, since_s=3 * 86_400,
                                config=no_season)
    assert level_only == [] or all(a.score < 100 for a in level_only)


def test_service_anomalies_from_stored_metrics(clickhouse, ctx):
    """Latency of a service rises for 10 minutes in the last hour: found, with start and size."""
    rng = np.random.default_rng(11)
    samples = []
    start = NOW - 6 * 3600
    for second in range(start, NOW, 6):
        slow = NOW - 1800 <= second < NOW - 1200
        for _ in range(2):
            duration = float(rng.lognormal(3.0, 0.3)) * (4 if slow else 1)
            samples.append((second + float(rng.random()), "orders", "o1", "", "http.server", "GET /orders",
                            duration, False, "", ""))
    seed_latency(clickhouse, samples)
    found = anomaly.service_anomalies(ctx, "orders", Window(NOW - 3600, NOW, 60))
    print("\nservice anomalies:", found)
    latency = [a for a in found if a["metric"] == "latency_p99"]
    assert len(latency) == 1
    assert abs(latency[0]["start"] - (NOW - 1800) * 1000) <= 60_000
    assert latency[0]["observed"] > 2 * latency[0]["baseline"]
    assert latency[0]["size"] > 0 and latency[0]["score"] > 4
    assert not [a for a in found if a["metric"] == "throughput"]
    assert all(math.isfinite(a["score"]) for a in found)
