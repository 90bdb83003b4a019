"""The mergeable latency sketch: percentiles within 1% of exact, exact merges."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshscope.sketch import LatencySketch, quantiles_from_buckets, relative_error

QUANTILES = [0.0, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0]


def exact(values, q):
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


def assert_close(estimate, truth):
    assert abs(estimate - truth) <= 0.01 * truth + 1e-12, (estimate, truth)


def test_relative_error_of_default_scale_is_under_one_percent():
    assert relative_error() < 0.006


@pytest.mark.parametrize("distribution", ["lognormal", "pareto", "bimodal", "uniform"])
def test_percentiles_within_one_percent_of_exact(distribution):
    rng = np.random.default_rng(7)
    values = {
        "lognormal": rng.lognormal(3, 1.2, 50_000),
        "pareto": (rng.pareto(1.5, 50_000) + 1) * 2,
        "bimodal": np.concatenate([rng.normal(5, 0.5, 25_000).clip(0.01), rng.normal(900, 50, 25_000)]),
        "uniform": rng.uniform(0.001, 60_000, 50_000),
    }[distribution].tolist()
    sketch = LatencySketch()
    for value in values:
        sketch.add(value)
    for q, estimate in zip(QUANTILES, sketch.quantiles(QUANTILES)):
        assert_close(estimate, exact(values, q))
    assert sketch.count == len(values)
    assert sketch.sum == pytest.approx(sum(values))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.floats(0.001, 1e6), min_size=1, max_size=200), min_size=1, max_size=8))
def test_merging_parts_equals_one_sketch_of_everything(parts):
    whole = LatencySketch()
    merged = LatencySketch()
    for part in parts:
        sketch = LatencySketch()
        for value in part:
            sketch.add(value)
            whole.add(value)
        merged.merge(sketch)
    assert merged.buckets == whole.buckets
    assert merged.count == whole.count
    everything = [v for part in parts for v in part]
    for q, estimate in zip(QUANTILES, merged.quantiles(QUANTILES)):
        assert_close(estimate, exact(everything, q))


def test_merge_across_scales_downscales_the_finer_one():
    coarse, fine = LatencySketch(scale=4), LatencySketch(scale=6)
    values = [random.Random(1).uniform(1, 1000) for _ in range(1000)]
    for value in values:
        fine.add(value)
    coarse.merge(fine)
    assert coarse.scale == 4 and coarse.count == 1000
    assert abs(coarse.quantile(0.5) - exact(values, 0.5)) / exact(values, 0.5) < relative_error(4) * 1.01


def test_zeros_and_empty():
    sketch = LatencySketch()
    assert math.isnan(sketch.quantile(0.5))
    for value in (0.0, 0.0, 5.0):
        sketch.add(value)
    assert sketch.quantile(0.5) == 0.0
    assert sketch.quantile(1.0) == 5.0
    assert math.isnan(quantiles_from_buckets({}, 0, 6, [0.5])[0])
