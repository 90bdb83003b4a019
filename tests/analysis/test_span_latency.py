"""Per-minute sketches of SERVER spans (span_latency, migration 0006) against the raw spans: the
same counts, errors, sum, min, max and buckets as a sketch filled from the de-duplicated spans, kept
up to date when spans arrive late or twice, and the window's partial minutes read from the spans."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import metrics
from analysis.context import Window
from analysis.red import red_table, sketches
from meshscope.sketch import LatencySketch, relative_error
from storage import metrics_queries as q
from storage import migrations
from tests.analysis.conftest import NOW, seed_spans, zipkin_span

START = NOW - 3600


def spans_of(rng, service: str, n: int, first_id: int, start_s: float = START, seconds: float = 3600, errors_every: int = 40):
    spans = []
    for i in range(n):
        ts_us = int((start_s + rng.random() * seconds) * 1_000_000)
        spans.append(zipkin_span(first_id + i, service, rng.choice(["get /a", "post /b"]), ts_us,
                                 max(1, int(rng.lognormvariate(9.0, 1.0))), error=i % errors_every == 0))
    return spans


def raw(spans, start_s: int, end_s: int) -> dict[str, tuple[LatencySketch, int]]:
    """Per service: the sketch and the error count of the distinct SERVER spans with a duration in the window."""
    seen, out = set(), {}
    for span in spans:
        key = (span["traceId"], span["id"])
        if key in seen or span.get("kind") != "SERVER" or not span.get("duration"):
            continue
        seen.add(key)
        if not start_s * 1_000_000 <= span["timestamp"] < end_s * 1_000_000:
            continue
        sketch, errors = out.get(span["localEndpoint"]["serviceName"], (LatencySketch(), 0))
        sketch.add(span["duration"] / 1000)
        out[span["localEndpoint"]["serviceName"]] = (sketch, errors + ("error" in (span.get("tags") or {})))
    return out


def assert_same(frame, expected: dict[str, tuple[LatencySketch, int]]) -> None:
    merged = {key[0]: sketch for key, sketch in sketches(frame, ["service"]).items() if sketch.count}
    errors = frame.groupby("service")["errors"].sum().to_dict() if not frame.empty else {}
    assert set(merged) == set(expected)
    for service, (want, want_errors) in expected.items():
        got = merged[service]
        assert got.count == want.count, service
        assert errors[service] == want_errors, service
        assert got.buckets == want.buckets, service
        assert got.sum == pytest.approx(want.sum, rel=1e-12)
        assert (got.min, got.max) == (pytest.approx(want.min), pytest.approx(want.max))


def test_equal_to_the_raw_spans_and_kept_up_to_date(clickhouse, rng):
    client, db = clickhouse.client, clickhouse.database
    spans = spans_of(rng, "legacy", 4_000, 1) + spans_of(rng, "batch", 1_500, 100_000, errors_every=7)
    spans += [zipkin_span(900_000 + i, "legacy", "select", (START + i) * 1_000_000, 800, kind="CLIENT", remote="db")
              for i in range(300)]  # client spans are not a service's own latency
    spans.append(zipkin_span(990_000, "legacy", "get /a", (START + 5) * 1_000_000, 0))  # no duration: not a latency
    seed_spans(clickhouse, spans)

    assert_same(q.span_server_distributions(client, db, START, NOW), raw(spans, START, NOW))
    assert client.query(f"SELECT count() FROM {db}.span_latency FINAL").result_rows[0][0] == 120  # 2 services x 60 minutes
    assert q.refresh_span_latency(client, db, START, NOW) == 0  # nothing changed: nothing recomputed

    # late spans into minutes already computed, and a second delivery of some of the first spans
    late = spans_of(rng, "legacy", 500, 200_000, start_s=START + 600, seconds=300)
    seed_spans(clickhouse, late)
    seed_spans(clickhouse, spans[:700])
    changed = {s["timestamp"] // 60_000_000 for s in late + spans[:700]}
    assert q.refresh_span_latency(client, db, START, NOW) == len(changed)
    assert_same(q.span_server_distributions(client, db, START, NOW), raw(spans + late + spans[:700], START, NOW))

    # a window cut mid-minute: whole minutes from the sketches, the edges from the spans
    start, end = START + 617, NOW - 1_234
    assert_same(q.span_server_distributions(client, db, start, end), raw(spans + late, start, end))
    one = {k: v for k, v in raw(spans + late, start, end).items() if k == "batch"}
    assert_same(q.span_server_distributions(client, db, start, end, "batch"), one)
    assert q.span_server_services(client, db, start, end) == ["batch", "legacy"]
    assert_same(q.span_server_distributions(client, db, START + 10, START + 50), raw(spans, START + 10, START + 50))


def test_duplicates_merged_away_before_the_first_read(clickhouse, rng):
    client, db = clickhouse.client, clickhouse.database
    spans = spans_of(rng, "legacy", 1_000, 1)
    seed_spans(clickhouse, spans)
    seed_spans(clickhouse, spans[:300])
    client.command(f"OPTIMIZE TABLE {db}.spans FINAL")  # the duplicates collapse: fewer rows than were inserted
    for _ in range(2):  # such minutes stay "changed" and are recomputed at each read: slower, still right
        assert_same(q.span_server_distributions(client, db, START, NOW), raw(spans, START, NOW))


def test_services_summary_from_sketches_matches_exact_quantiles(clickhouse, ctx, rng):
    spans = spans_of(rng, "legacy", 5_000, 1)
    seed_spans(clickhouse, spans)
    window = Window(START + 30, NOW - 30, 60)
    row = metrics.service_red(ctx, window).set_index("service").loc["legacy"]
    inside = [s for s in spans if (START + 30) * 1_000_000 <= s["timestamp"] < (NOW - 30) * 1_000_000]
    durations = np.array([s["duration"] / 1000 for s in inside])
    assert row["source_of_data"] == "spans"
    assert row["count"] == len(inside) and row["errors"] == sum("error" in (s.get("tags") or {}) for s in inside)
    assert row["max"] == pytest.approx(durations.max())
    for column, quantile in (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99)):
        exact = float(np.percentile(durations, quantile * 100, method="lower"))
        assert abs(row[column] / exact - 1) <= relative_error() + 1e-9, column
    # the same as the spans' own exact RED from SQL (the per-service path), but for the sketch's error
    exact_row = q.span_red(ctx.client, ctx.database, window.start_s, window.end_s, apdex_t_ms=ctx.apdex_t_ms).iloc[0]
    assert exact_row["count"] == row["count"] and exact_row["errors"] == row["errors"]


def test_spans_stored_before_the_migration_are_counted_once(clickhouse, rng):
    client, db = clickhouse.client, clickhouse.database
    spans = spans_of(rng, "legacy", 800, 1)
    seed_spans(clickhouse, spans)
    # as if these spans predated migration 0006: no counts yet, and 0006 not recorded
    client.command(f"TRUNCATE TABLE {db}.span_minutes")
    for _ in range(2):  # the second run is a re-run after a crash before the migration was recorded
        client.command(f"DELETE FROM {db}.schema_migrations WHERE version = 6")
        assert 6 in migrations.apply(client, db, retention_days=20000)
    counted = client.query(f"SELECT sum(rows) FROM {db}.span_minutes WHERE service = 'legacy'").result_rows[0][0]
    assert counted == len(spans)
    assert_same(q.span_server_distributions(client, db, START, NOW), raw(spans, START, NOW))


def test_red_table_of_the_sketches_is_the_summary_row(clickhouse, ctx, rng):
    seed_spans(clickhouse, spans_of(rng, "legacy", 600, 1))
    frame = q.span_server_distributions(ctx.client, ctx.database, START, NOW)
    table = red_table(frame, ["service"], 3600, ctx.apdex_t_ms).set_index("service")
    row = metrics.service_red(ctx, Window(START, NOW, 60)).set_index("service").loc["legacy"]
    for column in ("count", "errors", "p50", "p99", "max", "apdex"):
        assert row[column] == pytest.approx(table.loc["legacy", column])
