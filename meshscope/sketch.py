"""A mergeable latency distribution: a log-bucket histogram in OpenTelemetry's exponential layout.

Bucket ``i`` at scale ``s`` covers ``(base**i, base**(i+1)]`` with ``base = 2 ** (2 ** -s)``. At the
default scale 6 the base is ~1.0109, so reporting a bucket by its harmonic midpoint is within
``(base - 1) / (base + 1)`` ~ 0.55% of any value in it: under the 1% relative error we promise on
every percentile. Two sketches at the same scale merge by adding bucket counts, exactly, across
instances and intervals; a sketch at a finer scale is downscaled first. This is the same layout as
an OTLP ``ExponentialHistogram``, so it travels on the wire without conversion, and storage keeps
the buckets in a ``Map(Int32, UInt64)`` that ClickHouse merges with ``sumMap``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

DEFAULT_SCALE = 6


def bucket_base(scale: int) -> float:
    return 2.0 ** (2.0**-scale)


def relative_error(scale: int = DEFAULT_SCALE) -> float:
    base = bucket_base(scale)
    return (base - 1.0) / (base + 1.0)


def bucket_index(value: float, scale: int = DEFAULT_SCALE) -> int:
    # ceil(log_base(value)) - 1: values exactly on a boundary fall in the lower bucket, as in OTLP.
    return math.ceil(math.log2(value) * (1 << scale)) - 1


def bucket_value(index: int, scale: int = DEFAULT_SCALE) -> float:
    """The value that minimises the worst relative error over the bucket (its harmonic midpoint)."""
    base = bucket_base(scale)
    lower = base**index
    return 2.0 * lower * base / (1.0 + base)


class LatencySketch:
    """Counts, sum, exact min/max and log buckets of positive values (milliseconds by convention)."""

    __slots__ = ("scale", "buckets", "zero_count", "count", "sum", "min", "max")

    def __init__(self, scale: int = DEFAULT_SCALE) -> None:
        self.scale = scale
        self.buckets: dict[int, int] = {}
        self.zero_count = 0
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = 0.0

    def add(self, value: float) -> None:
        self.count += 1
        self.sum += value
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        if value <= 0.0:
            self.zero_count += 1
            return
        index = math.ceil(math.log2(value) * (1 << self.scale)) - 1
        buckets = self.buckets
        buckets[index] = buckets.get(index, 0) + 1

    def merge(self, other: LatencySketch) -> None:
        if other.count == 0:
            return
        if other.scale < self.scale:
            self._downscale(self.scale - other.scale)
        shift = other.scale - self.scale
        for index, n in other.buckets.items():
            key = index >> shift
            self.buckets[key] = self.buckets.get(key, 0) + n
        self.zero_count += other.zero_count
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def _downscale(self, by: int) -> None:
        merged: dict[int, int] = {}
        for index, n in self.buckets.items():
            key = index >> by
            merged[key] = merged.get(key, 0) + n
        self.buckets = merged
        self.scale -= by

    def quantile(self, q: float) -> float:
        return quantiles_from_buckets(self.buckets, self.zero_count, self.scale, [q], self.min, self.max)[0]

    def quantiles(self, qs: Iterable[float]) -> list[float]:
        return quantiles_from_buckets(self.buckets, self.zero_count, self.scale, list(qs), self.min, self.max)

    @classmethod
    def from_parts(
        cls,
        buckets: Mapping[int, int],
        zero_count: int,
        count: int,
        total: float,
        minimum: float,
        maximum: float,
        scale: int = DEFAULT_SCALE,
    ) -> LatencySketch:
        sketch = cls(scale)
        sketch.buckets = {int(k): int(v) for k, v in buckets.items() if v}
        sketch.zero_count = zero_count
        sketch.count = count
        sketch.sum = total
        sketch.min = minimum if count else math.inf
        sketch.max = maximum
        return sketch

    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count else math.nan

    def __repr__(self) -> str:
        return f"LatencySketch(count={self.count}, buckets={len(self.buckets)}, scale={self.scale})"


def quantiles_from_buckets(
    buckets: Mapping[int, int],
    zero_count: int,
    scale: int,
    qs: list[float],
    minimum: float | None = None,
    maximum: float | None = None,
) -> list[float]:
    """Quantiles (nearest-rank, rank ``floor(q * (n - 1))``) of a merged distribution.

    The answer lies within the sketch's relative error of the exact order statistic; clamping to
    the exact min and max makes q=0 and q=1 exact.
    """
    total = zero_count + sum(buckets.values())
    if total == 0:
        return [math.nan for _ in qs]
    ordered = sorted(buckets.items())
    exact_ends = minimum is not None and maximum is not None and math.isfinite(minimum)
    answers = []
    for q in qs:
        rank = math.floor(min(max(q, 0.0), 1.0) * (total - 1))
        if exact_ends and rank == 0:
            answers.append(minimum)
        elif exact_ends and rank == total - 1:
            answers.append(maximum)
        else:
            value = _value_at_rank(ordered, zero_count, scale, rank)
            answers.append(min(max(value, minimum), maximum) if exact_ends else value)
    return answers


def _value_at_rank(ordered: list[tuple[int, int]], zero_count: int, scale: int, rank: int) -> float:
    if rank < zero_count:
        return 0.0
    seen = zero_count
    for index, n in ordered:
        seen += n
        if seen > rank:
            return bucket_value(index, scale)
    return bucket_value(ordered[-1][0], scale)
