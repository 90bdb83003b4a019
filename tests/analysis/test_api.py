"""The analysis API through FastAPI's TestClient: every endpoint of docs/analysis-api.md answers
with its documented fields, JSON-safe (no NaN), 400 on bad parameters."""

from __future__ import annotations

import json
import random

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from analysis import api
from analysis.alerts import scheduler as alert_scheduler
from tests.analysis.conftest import NOW, seed_latency, seed_resources, seed_spans, zipkin_span

START, END = (NOW - 3600) * 1000, NOW * 1000


@pytest.fixture
def client(clickhouse, ctx, tmp_path):
    rng = random.Random(2)
    samples = []
    for _ in range(4000):
        ts = NOW - 3600 + rng.random() * 3590
        version = "v2" if rng.random() < 0.3 else "v1"
        samples.append((ts, "orders", f"o-{version}", version, "http.server", rng.choice(["GET /orders", "POST /orders"]),
                        rng.lognormvariate(3, 0.5), rng.random() < 0.02, "", ""))
        samples.append((ts, "orders", f"o-{version}", version, "sql.client", "SELECT * FROM t WHERE id = ?",
                        rng.uniform(1, 3), False, "", "shop"))
        samples.append((ts, "frontend", "f1", "", "http.client", "GET /orders", rng.lognormvariate(3, 0.5), False, "orders", ""))
    seed_latency(clickhouse, samples)
    seed_resources(clickhouse, [((NOW - 3600 + s) * 1000, "orders", "o-v1", "v1", metric, value)
                                for s in range(0, 3600, 30)
                                for metric, value in (("process.cpu.utilization", 0.4), ("process.memory.rss", 2e8),
                                                      ("process.memory.limit", 1e9), ("health.up", 1.0))])
    seed_spans(clickhouse, [zipkin_span(i + 1, "legacy", "get /", (NOW - 1000 + i) * 1_000_000, 5000) for i in range(50)])
    rules = tmp_path / "rules.yaml"
    rules.write_text("receivers: [{name: ops, url: 'http://127.0.0.1:9/hook'}]\nrules:\n  - name: Slow\n    expr: p99 > 1\n    window: 1h\n")
    app = FastAPI()
    app.include_router(api.router)
    settings = ctx.settings.model_copy(update={"alert_rules": rules, "alert_state_path": tmp_path / "alerts.sqlite"})
    app.dependency_overrides[api.get_context] = lambda: type(ctx)(ctx.client, ctx.database, settings)
    scheduler = alert_scheduler.AlertScheduler(settings, ctx.client, ctx.database, clock=lambda: NOW)
    scheduler.engine.evaluate(NOW)
    scheduler.stop()
    return TestClient(app)


def get(client, path, **params):
    response = client.get(f"/api/meshscope/v1{path}", params={"start": START, "end": END, **params})
    assert response.status_code == 200, response.text
    json.loads(response.text, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    return response.json()


def test_services(client):
    rows = {r["service"]: r for r in get(client, "/services")}
    assert set(rows) == {"orders", "frontend", "legacy"}
    orders = rows["orders"]
    for key in ("service", "rps", "count", "errors", "error_ratio", "p50", "p90", "p95", "p99", "max", "apdex",
                "instances_up", "instances_total", "cpu", "memory_rss", "memory_limit", "open_alerts",
                "pending_recommendations", "sparkline"):
        assert key in orders
    assert orders["count"] == 4000 and len(orders["sparkline"]) == 60
    assert orders["cpu"] == pytest.approx(0.4) and orders["memory_limit"] == 1e9 and orders["instances_up"] == 1
    assert orders["open_alerts"] == 1
    assert rows["legacy"]["count"] == 50 and rows["legacy"]["source_of_data"] == "spans"


def test_services_of_one_service(client):
    everything = {r["service"]: r for r in get(client, "/services")}
    assert get(client, "/services", service="orders") == [everything["orders"]]
    assert get(client, "/services", service="legacy") == [everything["legacy"]]
    assert get(client, "/services", service="ghost") == []


def test_service_page_is_the_seven_answers_in_one(client):
    page = get(client, "/service_page", service="orders")
    assert page["errors"] == {}
    assert page["services"] == ["frontend", "legacy", "orders"]
    assert page["summary"] == get(client, "/services", service="orders")[0]
    assert page["series"] == get(client, "/series", service="orders")
    assert page["anomalies"] == get(client, "/anomalies", service="orders")
    assert page["endpoints"] == get(client, "/endpoints", service="orders", kind="http")
    assert page["sql"] == get(client, "/endpoints", service="orders", kind="sql")
    assert page["resources"] == get(client, "/resources", service="orders")
    assert page["versions"] == get(client, "/versions", service="orders")
    ghost = get(client, "/service_page", service="ghost")
    assert ghost["summary"] is None and ghost["series"] and not ghost["endpoints"] and ghost["services"] == page["services"]
    assert client.get("/api/meshscope/v1/service_page", params={"service": "orders", "start": END, "end": START}).status_code == 400


def test_service_page_says_which_part_failed(client, monkeypatch):
    from analysis import metrics
    from storage.errors import StorageError

    def broken(*args, **kwargs):
        raise StorageError("resources table unreadable")

    monkeypatch.setattr(metrics, "resources", broken)
    page = get(client, "/service_page", service="orders")
    assert page["resources"] is None and page["errors"] == {"resources": "storage unavailable: resources table unreadable"}
    assert page["series"] and page["summary"]["service"] == "orders"


def test_series_endpoints_topology_resources(client):
    series = get(client, "/series", service="orders", step=600, group_by="version")
    assert {r["key"] for r in series} == {"v1", "v2"} and all(r["ts"] % 600_000 == 0 for r in series)
    assert sum(r["count"] for r in series) == 4000
    endpoints = get(client, "/endpoints", service="orders")
    assert {e["endpoint"] for e in endpoints} == {"GET /orders", "POST /orders"}
    assert set(endpoints[0]) >= {"cumulative_ms", "avg_ms", "p50", "p95", "p99", "max", "rows", "method"}
    sql = get(client, "/endpoints", service="orders", kind="sql")
    assert sql[0]["database"] == "shop"
    topology = get(client, "/topology")
    assert {(e["source"], e["target"]) for e in topology["edges"]} == {("frontend", "orders"), ("orders", "shop")}
    resources = get(client, "/resources", service="orders", step=600)
    assert resources and resources[0]["cpu"] == pytest.approx(0.4) and resources[0]["up"] == 1


def test_analysis_endpoints(client):
    assert isinstance(get(client, "/anomalies", service="orders"), list)
    recommendations = get(client, "/recommendations")
    orders = next(r for r in recommendations if r["service"] == "orders")
    assert set(orders) >= {"action", "direction", "current_instances", "recommended_instances", "cpu_request",
                           "memory_request", "confidence", "reasons", "evidence"}
    assert orders["cpu_request"] == pytest.approx(0.46)
    versions = get(client, "/versions", service="orders")
    assert versions["baseline"] == "v1" and versions["candidate"] == "v2"
    assert versions["verdict"] in ("better", "worse", "no_significant_difference") and versions["test"]
    alerts = get(client, "/alerts")
    assert alerts["rules"][0]["name"] == "Slow" and alerts["rules"][0]["for_s"] == 0
    assert {(a["rule"], a["labels"]["service"], a["state"]) for a in alerts["alerts"]} == {("Slow", "orders", "firing"), ("Slow", "legacy", "firing")}  # legacy: from spans
    history = get(client, "/alerts/history")
    assert history[0]["status"] == "firing" and history[0]["delivered"] is False and history[0]["payload"]["version"] == "4"


def test_bad_parameters_answer_400(client):
    response = client.get("/api/meshscope/v1/series", params={"service": "orders", "start": END, "end": START})
    assert response.status_code == 400 and "start" in response.json()["detail"]
    assert client.get("/api/meshscope/v1/series", params={"service": "orders", "group_by": "host"}).status_code == 422
    assert client.get("/api/meshscope/v1/series", params={"service": "orders", "start": 0, "end": END, "step": 1}).status_code == 400
    openapi = client.get("/openapi.json").json()
    assert openapi["paths"]["/api/meshscope/v1/services"]
    assert {"ServiceRow", "RecommendationRow", "VersionsAnswer", "AlertsAnswer"} <= set(openapi["components"]["schemas"])


def test_context_from_the_hosting_apps_state(clickhouse, ctx):
    """Mounted in the collector's app without overrides: settings and client from app.state."""
    seed_latency(clickhouse, [(NOW - 100, "orders", "o1", "", "http.server", "GET /", 10.0, False, "", "")])
    app = FastAPI()
    app.include_router(api.router)
    app.state.settings = ctx.settings
    app.state.clickhouse = lambda: ctx.client
    rows = TestClient(app).get("/api/meshscope/v1/services", params={"start": START, "end": END}).json()
    assert [(r["service"], r["count"]) for r in rows] == [("orders", 1)]


def test_red_of_spans_posted_to_the_zipkin_api(clickhouse, ctx, tmp_path):
    """A service without an agent reports Zipkin spans (v2 and v1 JSON) to the collector's API;
    the analysis API serves its RED and its edges from them."""
    from collector.app import create_app
    from collector.metrics import Metrics
    from collector.writer import store_batch

    class StoringPublisher:  # stores synchronously in place of Kafka + writer (tested end to end elsewhere)
        def publish(self, spans):
            store_batch(ctx.client, ctx.database, spans)

    app = create_app(ctx.settings, StoringPublisher(), lambda: ctx.client, Metrics())
    app.include_router(api.router)
    http = TestClient(app)
    v2 = [zipkin_span(i + 1, "legacy", "get /api", (NOW - 900 + i) * 1_000_000, 1000 * (i % 100 + 1), error=i % 10 == 0)
          for i in range(200)]
    v2 += [zipkin_span(i + 1, "legacy", "get", (NOW - 900 + i) * 1_000_000, 500, kind="CLIENT", remote="inventory",
                       span_id=5000 + i) for i in range(200)]
    assert http.post("/api/v2/spans", json=v2).status_code == 202
    v1 = [{"traceId": f"{9000 + i:016x}", "id": f"{9000 + i:016x}", "name": "get /api", "timestamp": (NOW - 800 + i) * 1_000_000,
           "duration": 250_000, "annotations": [
               {"timestamp": (NOW - 800 + i) * 1_000_000, "value": "sr", "endpoint": {"serviceName": "legacy", "ipv4": "10.0.0.1"}},
               {"timestamp": (NOW - 800 + i) * 1_000_000 + 250_000, "value": "ss", "endpoint": {"serviceName": "legacy", "ipv4": "10.0.0.1"}}]}
          for i in range(20)]
    assert http.post("/api/v1/spans", json=v1).status_code == 202
    params = {"start": START, "end": END}
    rows = {r["service"]: r for r in http.get("/api/meshscope/v1/services", params=params).json()}
    legacy = rows["legacy"]
    assert legacy["source_of_data"] == "spans" and legacy["count"] == 220 and legacy["errors"] == 20
    assert legacy["max"] == pytest.approx(250.0) and legacy["p50"] == pytest.approx(55.0, abs=1.0)
    edges = http.get("/api/meshscope/v1/topology", params=params).json()["edges"]
    assert [(e["source"], e["target"], e["count"]) for e in edges] == [("legacy", "inventory", 200)]
    series = http.get("/api/meshscope/v1/series", params={**params, "service": "legacy", "step": 600}).json()
    assert sum(p["count"] for p in series) == 220


def test_mounted_and_started_by_meshscope_serve(clickhouse, ctx, tmp_path):
    """The collector's `serve` wiring (collector.server.mount_optional_parts) mounts the router
    and starts and stops the alert scheduler."""
    from collector.app import create_app
    from collector.metrics import Metrics
    from collector.server import mount_optional_parts

    seed_latency(clickhouse, [(NOW - 100, "orders", "o1", "", "http.server", "GET /", 10.0, False, "", "")])
    rules = tmp_path / "rules.yaml"
    rules.write_text("receivers: [{name: ops, url: 'http://127.0.0.1:9/hook'}]\nrules: [{name: Slow, expr: p99 > 1000}]\n")
    settings = ctx.settings.model_copy(update={"dashboard": False, "alert_rules": rules, "alert_interval_s": 0.2,
                                               "alert_state_path": tmp_path / "alerts.sqlite"})
    app = create_app(settings, None, lambda: ctx.client, Metrics())
    to_stop = mount_optional_parts(app, settings, lambda: ctx.client)
    try:
        assert alert_scheduler.running() is not None
        http = TestClient(app)
        rows = http.get("/api/meshscope/v1/services", params={"start": START, "end": END}).json()
        assert [(r["service"], r["count"]) for r in rows] == [("orders", 1)]
        assert http.get("/api/meshscope/v1/alerts").json()["rules"][0]["name"] == "Slow"
    finally:
        for part in to_stop:
            part.stop()
    assert alert_scheduler.running() is None


def test_unknown_service_answers_empty_not_an_error(client):
    series = get(client, "/series", service="nope", step=600)
    assert len(series) == 6 and all(p["count"] == 0 and p["p99"] is None for p in series)
    assert get(client, "/series", service="nope", group_by="endpoint") == []
    assert get(client, "/endpoints", service="nope") == []
    assert get(client, "/endpoints", service="nope", kind="sql") == []
    assert get(client, "/resources", service="nope") == []
    assert get(client, "/anomalies", service="nope") == []
    assert get(client, "/recommendations", service="nope") == []
    assert get(client, "/versions", service="nope")["verdict"] == "insufficient_data"
