"""Version comparison: verdicts on seeded gray releases, the sketch-based Mann-Whitney against the
exact one on raw values."""

from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd
import pytest

from analysis import versions
from analysis.context import Window
from meshscope.sketch import LatencySketch
from tests.analysis.conftest import NOW, seed_latency


def exact_mann_whitney_z(a, b):
    ranks = pd.Series(np.concatenate([a, b])).rank().to_numpy()
    n1, n2 = len(a), len(b)
    u = ranks[n1:].sum() - n2 * (n2 + 1) / 2
    return (u - n1 * n2 / 2) / math.sqrt(n1 * n2 * (n1 + n2 + 1) / 12)


def test_sketch_mann_whitney_matches_the_exact_test_on_raw_values():
    rng = np.random.default_rng(1)
    a, b = rng.lognormal(3.0, 0.5, 4000), rng.lognormal(3.05, 0.5, 3000)
    sa, sb = LatencySketch(), LatencySketch()
    for v in a:
        sa.add(float(v))
    for v in b:
        sb.add(float(v))
    result = versions.mann_whitney(sa, sb)
    assert result.statistic == pytest.approx(exact_mann_whitney_z(a, b), abs=0.05)


def test_two_proportion_z_test_known_value():
    # 10/1000 vs 25/1000: pooled 0.0175, z = 0.015 / sqrt(0.0175 * 0.9825 * 0.002) = 2.5579
    result = versions.two_proportion(10, 1000, 25, 1000)
    assert result.statistic == pytest.approx(2.5579, abs=1e-3)
    assert result.p_value == pytest.approx(0.01053, abs=1e-4)


@pytest.mark.parametrize("sigma_shift,error_b,expected", [
    (0.25, 0.01, "worse"),      # candidate ~28% slower
    (0.0, 0.01, "no_significant_difference"),
    (-0.2, 0.01, "better"),
    (0.0, 0.06, "worse"),        # same latency, more errors
])
def test_gray_release_verdicts(clickhouse, ctx, sigma_shift, error_b, expected):
    rng = random.Random(4)
    samples = []
    for _ in range(6000):
        candidate = rng.random() < 0.2  # 20% of traffic on v2
        duration = rng.lognormvariate(3.0 + (sigma_shift if candidate else 0.0), 0.5)
        error = rng.random() < (error_b if candidate else 0.01)
        samples.append((NOW - 3000 + rng.random() * 2900, "orders", "o2" if candidate else "o1",
                        "v2" if candidate else "v1", "http.server", "GET /orders", duration, error, "", ""))
    seed_latency(clickhouse, samples)
    result = versions.compare(ctx, "orders", Window(NOW - 3600, NOW, 60))
    print(f"\n{expected}: {result['verdict']} confidence={result['confidence']:.4f} {result['details']}")
    assert (result["baseline"], result["candidate"]) == ("v1", "v2")
    assert [v["version"] for v in result["versions"]] == ["v1", "v2"]
    assert result["verdict"] == expected
    assert 0 <= result["confidence"] <= 1
    if expected != "no_significant_difference":
        assert result["confidence"] > 0.99


def test_one_version_is_insufficient_data(clickhouse, ctx):
    seed_latency(clickhouse, [(NOW - 100, "orders", "o1", "v1", "http.server", "GET /", 10.0, False, "", "")])
    assert versions.compare(ctx, "orders", Window(NOW - 3600, NOW, 60))["verdict"] == "insufficient_data"
