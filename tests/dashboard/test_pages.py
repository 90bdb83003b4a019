"""Page callbacks as plain functions on seeded, contract-shaped data."""

from __future__ import annotations

import plotly.graph_objects as go
import pytest

from dashboard import state
from dashboard.app import create_app, url_update
from dashboard.pages import alerts, overview, recommendations, service, topology, trace, traces
from tests.dashboard import seed
from dashboard.errors import DataSourceError
from tests.dashboard.helpers import by_id, classes, text, walk


@pytest.fixture
def source():
    return seed.SeededSource()


@pytest.fixture
def app(source):
    return create_app("http://unused", data_source=source)


def test_overview_rows_carry_the_seeded_numbers(app, source):
    rows, answer = overview.overview_rows(app, source, {})
    assert answer.ok
    by_service = {r["service"]: r for r in rows}
    assert by_service["frontend"]["rps"] == 12.5
    assert by_service["payments"]["instances"] == "1/2" and by_service["payments"]["instances_down"] == 1
    assert by_service["payments"]["badges"] == "1 alert · 1 recommendation"
    assert "/dashboard/service?service=orders" in by_service["orders"]["service_link"]
    assert len(by_service["orders"]["sparkline"]) == 24


def test_overview_asks_for_the_window_in_the_url(app, source):
    fixed = {"range": "1000-5000"}
    overview.overview_rows(app, source, fixed)
    assert source.calls[-1] == ("analysis", "services", {"start": 1000, "end": 5000})


def test_overview_table_takes_sort_and_filter_from_the_url(app, source):
    body = overview.overview_body(app, source, {"sort": "p99:asc,bogus:desc", "filter": "{rps} > 5"})
    grid = by_id(body, "overview-table")
    assert grid.sort_by == [{"column_id": "p99", "direction": "asc"}]
    assert grid.filter_query == "{rps} > 5"
    assert overview.sort_to_param(grid.sort_by) == "p99:asc"


def test_overview_shows_backend_errors_plainly(app, source):
    source.api.broken.add("services")
    body = overview.overview_body(app, source, {})
    assert any("note-error" in c for c in classes(body))
    assert "services: /services answered 500: seeded failure of services" in text(body)


def test_overview_empty_state(app):
    class Nothing(seed.SeededSource):
        def analysis(self, resource, params=None):
            return []

    body = overview.overview_body(app, Nothing(), {})
    assert "No service has reported in the last hour" in text(body)


def test_service_page_has_figures_tables_and_verdict(app, source):
    body = service.service_body(app, source, {"service": "orders"})
    assert by_id(body, "service-rps").children == "7.25/s"
    red = by_id(body, "service-red").figure
    assert [t["name"] for t in red["data"]][:4] == ["p50", "p95", "p99", "max"] and len(red["data"][0]["x"]) == 60
    assert [(t["xaxis"], t["yaxis"]) for t in red["data"]][3:] == [("x", "y"), ("x2", "y2"), ("x3", "y3")]
    assert red["layout"]["xaxis"]["matches"] == "x3" and red["layout"]["yaxis3"]["tickformat"] == ".1%"
    go.Figure(red)  # plotly's own validation accepts it
    endpoints = by_id(body, "endpoints-table").data
    assert endpoints[0]["endpoint"] == "GET /orders/{id}" and "span=get+%2Forders%2F%7Bid%7D" in endpoints[0]["traces"]
    sql = by_id(body, "sql-table").data
    assert sql[0]["endpoint"].startswith("SELECT") and "remote=mysql&span=select" in sql[0]["traces"]
    assert by_id(body, "version-verdict").children == "worse"
    resources = by_id(body, "service-resources").figure
    assert {t["name"] for t in resources["data"] if t.get("showlegend") is not False} == {"orders-0 (v1)", "orders-1 (v2)", "orders-2 (v1)"}
    assert {t["xaxis"] for t in resources["data"] if t["name"].endswith("limit")} == {"x2"}
    go.Figure(resources)


def test_service_page_marks_anomalies(app, source):
    red = by_id(service.service_body(app, source, {"service": "payments"}), "service-red").figure
    assert any(t["name"] == "anomaly" for t in red["data"])
    assert len(red["layout"]["shapes"]) == 1 and red["layout"]["shapes"][0]["yref"] == "y domain"  # the latency row
    go.Figure(red)


def test_service_page_without_service_or_data(app, source):
    assert "Choose a service" in text(service.service_body(app, source, {}))
    body = service.service_body(app, source, {"service": "ghost"})
    assert "ghost has no traffic" in text(body)
    red = by_id(body, "service-red").figure
    assert red.layout.annotations[0].text == "No requests from ghost in this window."


def test_service_page_reports_each_failed_query_and_keeps_the_rest(app, source):
    source.api.broken |= {"series", "resources"}
    body = service.service_body(app, source, {"service": "orders"})
    notes = text(body)
    assert "series: seeded failure of series" in notes and "resources: seeded failure of resources" in notes
    assert by_id(body, "endpoints-table").data


def test_service_page_is_one_query(app, source):
    names, body = service.service_page(app, source, {"service": "orders", "range": "1000-5000"})
    assert [c[1] for c in source.calls] == ["service_page"]
    assert source.calls[0][2] == {"start": 1000, "end": 5000, "service": "orders"}
    assert names == sorted(seed.SERVICES) and by_id(body, "service-rps").children == "7.25/s"


def test_service_page_asks_an_older_api_each_question(app):
    class Older(seed.SeededSource):  # an API without /service_page answers 404
        def analysis(self, resource, params=None):
            if resource == "service_page":
                self.calls.append(("analysis", resource, dict(params)))
                raise DataSourceError("/service_page answered 404: Not Found", 404)
            return super().analysis(resource, params)

    older = Older()
    older.api.broken.add("series")
    names, body = service.service_page(app, older, {"service": "orders"})
    assert sorted(c[1] for c in older.calls) == ["anomalies", "endpoints", "endpoints", "resources", "series", "service_page",
                                                 "services", "versions"]
    assert by_id(body, "service-rps").children == "7.25/s" and by_id(body, "endpoints-table").data
    assert "series: /series answered 500: seeded failure of series" in text(body)


def test_service_page_failing_whole_says_it_once(app, source):
    source.api.broken.add("service_page")
    body = service.service_body(app, source, {"service": "orders"})
    notes = [n.children for n in walk(body[0]) if "note-error" in (getattr(n, "className", "") or "")]  # the page's notes
    assert notes == ["service page: /service_page answered 500: seeded failure of service_page"]
    assert "Endpoints unavailable." in text(body)


def test_endpoint_links_name_spans_as_the_agents_do():
    assert service.trace_search_for("a", {"kind": "http.server", "endpoint": "GET /x/{id}", "method": "GET"}) == {"service": "a", "span": "get /x/{id}"}
    assert service.trace_search_for("a", {"kind": "http", "endpoint": "/x", "method": "POST"}) == {"service": "a", "span": "post /x"}
    assert service.trace_search_for("a", {"kind": "sql.client", "endpoint": "SELECT ?", "method": "SELECT", "remote_service": "db"}) == \
        {"service": "a", "remote": "db", "span": "select"}


def test_topology_elements_and_edge_table(app, source):
    body = topology.topology_body(app, source, {})
    graph = by_id(body, "topology-graph")
    edges = [e["data"] for e in graph.elements if "source" in e["data"]]
    assert {(e["source"], e["target"]) for e in edges} == {(a, b) for a, b, *_ in seed.EDGES}
    bad = next(e for e in edges if e["target"] == "payments")
    assert bad["color"] == "#c62828" and bad["label"] == "3.00/s · 8.00 % err\np99 470 ms"
    assert next(e for e in edges if e["target"] == "mysql")["color"] == "#2e7d32"
    assert {e["data"]["id"]: e["classes"] for e in graph.elements}["mysql"] == "database"
    assert len(by_id(body, "topology-edges").data) == 4


def test_topology_falls_back_to_dependency_links(app, source):
    source.api.broken.add("topology")
    body = topology.topology_body(app, source, {"range": "1000-3601000"})
    edges = by_id(body, "topology-edges").data
    orders = next(e for e in edges if e["target"] == "orders")
    assert orders["rps"] == pytest.approx(7.25) and orders["source_of_data"] == "spans"
    assert "dependency links from spans only" in text(body)


def test_topology_click_through(app):
    assert topology.click_target(app, {"range": "6h"}, {"id": "orders", "kind": "service"}, None) == ("/dashboard/service", "?range=6h&service=orders")
    assert topology.click_target(app, {}, None, {"source": "orders", "target": "mysql"}) == ("/dashboard/traces", "?service=orders&remote=mysql")
    assert topology.click_target(app, {}, {"id": "mysql", "kind": "database"}, None) is None


def test_trace_search_query_and_results(app, source):
    query = traces.zipkin_query({"service": "orders", "span": "get /orders", "tags": "error", "min_ms": "2.5", "limit": "5000",
                                 "range": "1000-61000"})
    assert query == {"endTs": 61000, "lookback": 60000, "limit": 1000, "serviceName": "orders", "spanName": "get /orders",
                     "annotationQuery": "error", "minDuration": 2500}
    body = traces.traces_body(app, source, {"service": "frontend"})
    rows = by_id(body, "traces-table").data
    assert {r["trace_id"]: r["spans"] for r in rows} == {seed.TRACE_ID: seed.TRACE_SPANS, "1" * 32: 6}
    scatter = by_id(body, "traces-scatter").figure
    assert {t.name: len(t.x) for t in scatter.data} == {"traces": 1, "traces with errors": 1}


def test_trace_search_no_results_and_error(app, source):
    body = traces.traces_body(app, source, {"service": "nobody"})
    assert "No traces match" in text(body)
    source.api.broken.add("traces")
    assert "trace search: /traces answered 500" in text(traces.traces_body(app, source, {}))


def test_trace_view(source):
    cache = trace.TraceCache(source)
    body = trace.trace_body(cache, seed.TRACE_ID)
    assert by_id(body, "trace-span-count").children == str(seed.TRACE_SPANS)
    assert by_id(body, "span-table").page_count == 1
    missing = trace.trace_body(cache, "f" * 32)
    assert "was not found" in text(missing)
    spans, tree = cache.get(seed.TRACE_ID)
    details = trace.span_details(spans, tree, 0)
    assert "frontend: get /orders/{id}" in text(details) and "http.path" in text(details)


def test_recommendations_and_alerts(app, source):
    body = recommendations.recommendations_body(app, source, {})
    assert "Scale out: 2 → 4 instances" in text(body) and text(body).index("payments") < text(body).index("frontend")
    body = alerts.alerts_body(app, source, {})
    assert by_id(body, "alerts-summary").children == "1 firing, 0 pending or resolved, 2 rules"
    history = by_id(body, "history-table").data
    assert history[1]["delivered"] == "no" and history[1]["last error"] == "connection refused"


def test_url_state_round_trip():
    assert state.encode_query({"range": "1h", "refresh": 30, "service": "a b", "filter": ""}) == "?service=a+b"
    assert state.encode_query({"range": "6h", "refresh": 0, "service": "x"}) == "?range=6h&refresh=0&service=x"
    assert url_update("?range=6h", range="6h") == (url_update.__globals__["no_update"],) * 2
    new, synced = url_update("?service=x", range="24h")
    assert new == synced == "?range=24h&service=x"
    assert state.window({"range": "bogus"}, now_ms=10_000_000).start_ms == 10_000_000 - 3_600_000


def test_an_answer_outside_the_contract_is_said_plainly(app):
    from dashboard.components import drawn

    class Garbled(seed.SeededSource):
        def analysis(self, resource, params=None):
            return [{"no_service_field": 1, "sparkline": "oops"}] if resource == "services" else super().analysis(resource, params)

    shown = drawn("overview", lambda: overview.overview_body(app, Garbled(), {}))
    assert "The overview could not be drawn" in text(shown)
