"""Side-by-side versions (a gray release): RED per version label and a verdict for the candidate
against the baseline, so a release is promoted or rolled back on evidence.

Tests (no scipy needed, both are closed forms):
- latency: Mann-Whitney U on the merged latency sketches of the two versions. Each bucket is a
  tie group at its value (buckets are ~1% wide, so ties cost almost nothing); ranks are mid-ranks,
  the variance is tie-corrected and n is large, so the normal approximation holds. Distribution-
  free: latency is skewed and multi-modal, a t-test on means would be misled by the tail.
- errors: the two-proportion z-test on error counts (pooled proportion).
A difference counts when p < ``ALPHA`` *and* it matters in practice (median or p99 moves by at
least ``MIN_LATENCY_CHANGE``, or the error ratio by at least ``MIN_ERROR_CHANGE``): with millions
of requests every trivial shift is "significant".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from analysis.context import AnalysisContext, Window
from analysis.red import red_of, sketches
from meshscope.sketch import LatencySketch
from storage import metrics_queries as q

ALPHA = 0.01
MIN_LATENCY_CHANGE = 0.05
MIN_ERROR_CHANGE = 0.005
MIN_REQUESTS = 30
TEST_NAME = ("Mann-Whitney U (tie-corrected, normal approximation) on merged latency sketches; "
             "two-proportion z-test on error ratios")


@dataclass(frozen=True, slots=True)
class TestResult:
    statistic: float  # z
    p_value: float
    effect: float  # latency: P(candidate slower than baseline) - 0.5; errors: difference of ratios


def _two_sided_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2))


def mann_whitney(baseline: LatencySketch, candidate: LatencySketch) -> TestResult:
    """U of the candidate against the baseline, from bucket counts (z > 0: candidate slower)."""
    scale = min(baseline.scale, candidate.scale)
    a, b = LatencySketch(scale), LatencySketch(scale)
    a.merge(baseline)
    b.merge(candidate)
    n1, n2 = a.count, b.count
    if n1 == 0 or n2 == 0:
        return TestResult(0.0, 1.0, 0.0)
    groups = sorted(set(a.buckets) | set(b.buckets))
    rank = 0.0
    rank_sum_b = 0.0
    tie_term = 0.0
    # zero-valued observations form the lowest tie group
    for count_a, count_b in [(a.zero_count, b.zero_count)] + [(a.buckets.get(k, 0), b.buckets.get(k, 0)) for k in groups]:
        t = count_a + count_b
        if t == 0:
            continue
        mid_rank = rank + (t + 1) / 2
        rank_sum_b += count_b * mid_rank
        tie_term += t**3 - t
        rank += t
    n = n1 + n2
    u_b = rank_sum_b - n2 * (n2 + 1) / 2
    mean = n1 * n2 / 2
    variance = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0.0
    if variance <= 0:
        return TestResult(0.0, 1.0, 0.0)
    z = (u_b - mean) / math.sqrt(variance)
    return TestResult(z, _two_sided_p(z), u_b / (n1 * n2) - 0.5)


def two_proportion(errors_a: int, n_a: int, errors_b: int, n_b: int) -> TestResult:
    """z > 0: the candidate (b) errs more."""
    if n_a == 0 or n_b == 0:
        return TestResult(0.0, 1.0, 0.0)
    pa, pb = errors_a / n_a, errors_b / n_b
    pooled = (errors_a + errors_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0:
        return TestResult(0.0, 1.0, pb - pa)
    z = (pb - pa) / se
    return TestResult(z, _two_sided_p(z), pb - pa)


def compare(ctx: AnalysisContext, service: str, window: Window, baseline: str | None = None,
            candidate: str | None = None) -> dict:
    frame = q.latency_distributions(ctx.client, ctx.database, window.start_s, window.end_s, group_by=["version"],
                                    filters={"service": service, "kind": list(q.SERVER_KINDS)})
    merged = {key[0]: sketch for key, sketch in sketches(frame, ["version"]).items()}
    errors = frame.groupby("version")["errors"].sum().to_dict() if not frame.empty else {}
    versions = []
    for version, sketch in sorted(merged.items(), key=lambda item: -item[1].count):
        red = red_of(sketch, int(errors.get(version, 0)), window.seconds, ctx.apdex_t_ms)
        versions.append({"version": version, "count": red["count"], "errors": red["errors"], "error_ratio": red["error_ratio"],
                         "p50": red["p50"], "p99": red["p99"], "rps": red["rps"]})
    out = {"service": service, "versions": versions, "verdict": "insufficient_data", "test": TEST_NAME,
           "confidence": None, "baseline": None, "candidate": None, "details": {}}
    # the version carrying most traffic is the one in production; the next one is the candidate
    names = [v["version"] for v in versions]
    baseline = baseline or (names[0] if names else None)
    candidate = candidate or next((n for n in names if n != baseline), None)
    out.update(baseline=baseline, candidate=candidate)
    if baseline not in merged or candidate not in merged or baseline == candidate:
        return out
    a, b = merged[baseline], merged[candidate]
    if a.count < MIN_REQUESTS or b.count < MIN_REQUESTS:
        return out
    latency = mann_whitney(a, b)
    failures = two_proportion(int(errors.get(baseline, 0)), a.count, int(errors.get(candidate, 0)), b.count)
    (a50, a99), (b50, b99) = a.quantiles([0.5, 0.99]), b.quantiles([0.5, 0.99])
    median_change, p99_change = b50 / a50 - 1 if a50 else 0.0, b99 / a99 - 1 if a99 else 0.0
    latency_matters = latency.p_value < ALPHA and max(abs(median_change), abs(p99_change)) >= MIN_LATENCY_CHANGE
    errors_matter = failures.p_value < ALPHA and abs(failures.effect) >= MIN_ERROR_CHANGE
    worse = (latency_matters and latency.statistic > 0) or (errors_matter and failures.statistic > 0)
    better = (latency_matters and latency.statistic < 0) or (errors_matter and failures.statistic < 0)
    deciding = [t.p_value for t, matters in ((latency, latency_matters), (failures, errors_matter)) if matters]
    if worse:
        verdict = "worse"
    elif better:
        verdict = "better"
    else:
        verdict = "no_significant_difference"
    # confidence: for better/worse, 1 - p of the deciding test; for "no difference", the smaller
    # p-value of the two tests (near 1: the data look alike; near ALPHA: a difference too small to
    # matter, or not yet established)
    confidence = 1 - min(deciding) if deciding else min(latency.p_value, failures.p_value)
    out.update(verdict=verdict, confidence=confidence, details={
        "latency_z": latency.statistic, "latency_p_value": latency.p_value,
        "probability_candidate_slower": latency.effect + 0.5, "median_change": median_change, "p99_change": p99_change,
        "errors_z": failures.statistic, "errors_p_value": failures.p_value, "error_ratio_change": failures.effect,
        "alpha": ALPHA,
    })
    return out


__all__ = ["compare", "mann_whitney", "two_proportion"]
