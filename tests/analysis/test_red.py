"""RED metrics from merged distributions against exact values computed from the raw durations."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import metrics
from analysis.context import Window
from meshscope.sketch import relative_error
from storage.writer import insert_latency
from tests.analysis.conftest import NOW, latency_records, seed_latency, seed_spans, zipkin_span

QS = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}


def exact(values, q):
    # the sketch promises the nearest-rank order statistic at rank floor(q * (n - 1))
    return float(np.percentile(np.asarray(values), q * 100, method="lower"))


def lognormal_traffic(rng, n, service="orders", instances=("i1", "i2", "i3"), start=NOW - 3600, seconds=3600):
    samples = []
    for _ in range(n):
        instance = rng.choice(instances)
        endpoint = rng.choice(["GET /orders", "POST /orders", "GET /orders/{id}"])
        duration = rng.lognormvariate(3.0, 0.9) * (3 if instance == "i3" else 1)
        samples.append((start + rng.random() * seconds, service, instance, "v1", "http.server", endpoint, duration,
                        rng.random() < 0.02, "", ""))
    return samples


def test_percentiles_from_merged_distributions_match_raw_within_one_percent(clickhouse, ctx, rng):
    samples = lognormal_traffic(rng, 30_000)
    seed_latency(clickhouse, samples)
    window = Window(NOW - 3600, NOW, 600)

    row = metrics.service_red(ctx, window).set_index("service").loc["orders"]
    durations = [s[6] for s in samples]
    assert row["count"] == len(samples)
    assert row["errors"] == sum(s[7] for s in samples)
    assert row["rps"] == pytest.approx(len(samples) / 3600)
    for column, q in QS.items():
        assert row[column] == pytest.approx(exact(durations, q), rel=0.01), column
        assert abs(row[column] / exact(durations, q) - 1) <= relative_error() + 1e-9
    assert row["max"] == pytest.approx(max(durations))
    threshold = ctx.apdex_t_ms
    satisfied = sum(d <= threshold for d in durations)
    tolerated = sum(threshold < d <= 4 * threshold for d in durations)
    assert row["apdex"] == pytest.approx((satisfied + tolerated / 2) / len(durations), abs=0.01)

    # per endpoint, and per step of the series: still merged, still exact to the sketch error
    table = metrics.endpoints(ctx, "orders", window).set_index("endpoint")
    for endpoint in ("GET /orders", "POST /orders"):
        values = [s[6] for s in samples if s[5] == endpoint]
        assert table.loc[endpoint, "count"] == len(values)
        assert table.loc[endpoint, "p99"] == pytest.approx(exact(values, 0.99), rel=0.01)
    series = metrics.series(ctx, "orders", window)
    assert len(series) == 6
    for point in series.to_dict("records"):
        values = [s[6] for s in samples if point["ts"] <= s[0] < point["ts"] + 600]
        assert point["count"] == len(values)
        assert point["p95"] == pytest.approx(exact(values, 0.95), rel=0.01)


def test_duplicate_deliveries_are_not_counted_twice(clickhouse, ctx, rng):
    records = latency_records(lognormal_traffic(rng, 2_000))
    insert_latency(clickhouse.client, clickhouse.database, records)
    insert_latency(clickhouse.client, clickhouse.database, records)  # at-least-once redelivery
    row = metrics.service_red(ctx, Window(NOW - 3600, NOW, 600)).iloc[0]
    assert row["count"] == 2_000


def test_series_by_version_and_empty_steps(clickhouse, ctx, rng):
    samples = [(NOW - 3600 + rng.random() * 1200, "orders", "i1", rng.choice(["v1", "v2"]), "http.server",
                "GET /orders", rng.uniform(5, 50), False, "", "") for _ in range(600)]
    seed_latency(clickhouse, samples)
    window = Window(NOW - 3600, NOW, 600)
    by_version = metrics.series(ctx, "orders", window, "version")
    assert set(by_version["key"]) == {"v1", "v2"}
    assert by_version["count"].sum() == 600
    overall = metrics.series(ctx, "orders", window)
    assert list(overall["count"][2:]) == [0, 0, 0, 0]  # silent steps are zero throughput


def test_red_from_zipkin_spans_for_services_without_an_agent(clickhouse, ctx, rng):
    spans, durations = [], []
    for i in range(3_000):
        duration_us = int(rng.lognormvariate(9.5, 0.7))
        durations.append(duration_us / 1000)
        spans.append(zipkin_span(i + 1, "legacy", "get /api", int((NOW - 1800 + rng.random() * 1700) * 1e6),
                                 duration_us, error=i % 50 == 0))
        spans.append(zipkin_span(i + 1, "legacy", "select", int((NOW - 1800) * 1e6), 900, kind="CLIENT",
                                 remote="mysql", span_id=10_000_000 + i))
    seed_spans(clickhouse, spans)
    seed_spans(clickhouse, spans[:500])  # at-least-once duplicates
    window = Window(NOW - 3600, NOW, 600)
    row = metrics.service_red(ctx, window).set_index("service").loc["legacy"]
    assert row["source_of_data"] == "spans"
    assert row["count"] == 3_000 and row["errors"] == 60
    for column, q in QS.items():
        assert row[column] == pytest.approx(exact(durations, q), rel=0.01)  # exact in SQL, rank convention aside
    graph = metrics.topology(ctx, window)
    edge = next(e for e in graph["edges"] if e["source"] == "legacy")
    assert edge["target"] == "mysql" and edge["count"] == 3_000 and edge["source_of_data"] == "spans"


def test_topology_from_agent_client_metrics(clickhouse, ctx, rng):
    samples = []
    for _ in range(500):
        ts = NOW - 600 + rng.random() * 500
        samples.append((ts, "frontend", "f1", "", "http.server", "GET /", rng.uniform(10, 30), False, "", ""))
        samples.append((ts, "frontend", "f1", "", "http.client", "GET /orders", rng.uniform(5, 20), rng.random() < 0.1, "orders", ""))
        samples.append((ts, "orders", "o1", "", "http.server", "GET /orders", rng.uniform(5, 20), False, "", ""))
        samples.append((ts, "orders", "o1", "", "sql.client", "SELECT * FROM orders WHERE id = ?", rng.uniform(1, 3), False, "", "shop"))
    seed_latency(clickhouse, samples)
    window = Window(NOW - 3600, NOW, 600)
    graph = metrics.topology(ctx, window)
    kinds = {n["id"]: n["kind"] for n in graph["nodes"]}
    assert kinds == {"frontend": "service", "orders": "service", "shop": "database"}
    edges = {(e["source"], e["target"]): e for e in graph["edges"]}
    assert edges[("frontend", "orders")]["count"] == 500
    assert 0 < edges[("frontend", "orders")]["error_ratio"] < 0.3
    sql = metrics.endpoints(ctx, "orders", window, kind="sql")
    assert list(sql["endpoint"]) == ["SELECT * FROM orders WHERE id = ?"]
    assert sql.iloc[0]["cumulative_ms"] == pytest.approx(sum(s[6] for s in samples if s[4] == "sql.client"))


def test_every_metrics_query_over_the_http_transport(clickhouse_over_http, tmp_path, rng):
    """Production reaches ClickHouse over HTTP: the same queries through clickhouse-connect's
    HttpClient (against the HTTP test double over the real engine) give the same answers."""
    from analysis import anomaly, scaling, versions
    from analysis.context import AnalysisContext
    from meshscope.settings import ServerSettings
    from tests.analysis.conftest import seed_resources

    store = clickhouse_over_http
    samples = lognormal_traffic(rng, 3_000)
    seed_latency(store, samples)
    seed_resources(store, [((NOW - 600 + s) * 1000, "orders", "i1", "v1", "process.cpu.utilization", 0.5) for s in range(0, 600, 10)])
    seed_spans(store, [zipkin_span(i + 1, "legacy", "get /", (NOW - 100) * 1_000_000, 2000, kind=kind, remote="db" if kind == "CLIENT" else None,
                                   span_id=i + 1 + (10_000 if kind == "CLIENT" else 0))
                       for i in range(10) for kind in ("SERVER", "CLIENT")])
    ctx = AnalysisContext(store.client, store.database, ServerSettings(clickhouse_url=store.url, clickhouse_database=store.database,
                                                                      spool_dir=tmp_path / "spool"))
    window = Window(NOW - 3600, NOW, 600)
    table = metrics.service_red(ctx, window).set_index("service")
    assert table.loc["orders", "count"] == 3_000 and table.loc["legacy", "count"] == 10
    assert table.loc["orders", "p99"] == pytest.approx(exact([s[6] for s in samples], 0.99), rel=0.01)
    assert len(metrics.series(ctx, "orders", window)) == 6
    assert len(metrics.endpoints(ctx, "orders", window)) == 3
    assert {(e["source"], e["target"]) for e in metrics.topology(ctx, window)["edges"]} == {("legacy", "db")}
    assert not metrics.resources(ctx, "orders", window).empty
    [recommendation] = scaling.recommend_all(ctx, window, "orders")
    assert recommendation.current_instances == 3 and recommendation.evidence["cpu_utilisation"] == pytest.approx(0.5)
    assert versions.compare(ctx, "orders", window)["verdict"] == "insufficient_data"  # one version
    assert isinstance(anomaly.service_anomalies(ctx, "orders", window), list)
