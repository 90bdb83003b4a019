"""Seeded, contract-shaped answers of meshscope's APIs (docs/analysis-api.md and Zipkin v2) with
known numbers, and a ``SeededApi`` that answers queries from them like the real API would.

Used three ways: as an in-memory ``DataSource`` (callbacks as plain functions), behind a small
real FastAPI/uvicorn server (a test double of the API for the browser tests), and as the source of
the numbers the tests assert on."""

from __future__ import annotations

import random
import time
from typing import Any

from dashboard.errors import DataSourceError

NOW_MS = int(time.time() * 1000)
STEP_MS = 60_000
TRACE_ID = "5af7183fb1d4cf5f4c6a1e2b3d4f5a6b"
TRACE_SPANS = 25
BIG_TRACE_ID = "0000000000000000000000000000b16a"
BIG_TRACE_SPANS = 10_000
SERVICES = {
    # service: (rps, error_ratio, p50, p95, p99, apdex, up, total)
    "frontend": (12.5, 0.004, 8.0, 21.0, 48.0, 0.98, 2, 2),
    "orders": (7.25, 0.012, 14.0, 40.0, 95.0, 0.93, 3, 3),
    "payments": (3.0, 0.08, 30.0, 120.0, 480.0, 0.71, 1, 2),
}
EDGES = [("frontend", "orders", 7.25, 0.012, 12.0, 90.0, "agent"), ("orders", "payments", 3.0, 0.08, 28.0, 470.0, "agent"),
         ("orders", "mysql", 14.5, 0.0, 1.2, 6.5, "agent"), ("payments", "bank-api", 3.0, 0.02, 22.0, 300.0, "spans")]


def _series(service: str) -> list[dict]:
    rps, err, p50, p95, p99, apdex, *_ = SERVICES[service]
    rng = random.Random(service)
    out = []
    for i in range(60):
        wobble = 1 + 0.15 * rng.uniform(-1, 1)
        spike = 3.0 if service == "payments" and i in (41, 42) else 1.0
        out.append({"ts": NOW_MS - (60 - i) * STEP_MS, "key": "", "rps": round(rps * wobble, 3), "count": int(rps * 60 * wobble),
                    "errors": int(rps * 60 * err), "error_ratio": err * wobble, "p50": p50 * wobble, "p90": p95 * 0.9 * wobble,
                    "p95": p95 * wobble, "p99": p99 * wobble * spike, "max": p99 * 1.6 * spike, "apdex": apdex})
    return out


def _services() -> list[dict]:
    rows = []
    for name, (rps, err, p50, p95, p99, apdex, up, total) in SERVICES.items():
        rows.append({"service": name, "rps": rps, "count": int(rps * 3600), "errors": int(rps * 3600 * err), "error_ratio": err,
                     "p50": p50, "p90": p95 * 0.9, "p95": p95, "p99": p99, "max": p99 * 1.6, "apdex": apdex,
                     "instances_up": up, "instances_total": total, "cpu": 0.35 if name != "payments" else 0.92,
                     "memory_rss": 180 * 2**20, "memory_limit": 512 * 2**20,
                     "open_alerts": 1 if name == "payments" else 0, "pending_recommendations": 1 if name == "payments" else 0,
                     "sparkline": [p["rps"] for p in _series(name)]})
    return rows


def _endpoints(service: str, kind: str) -> list[dict]:
    if kind == "sql":
        if service != "orders":
            return []
        return [{"endpoint": "SELECT * FROM orders WHERE id = ?", "method": "SELECT", "kind": "sql.client", "remote_service": "mysql",
                 "database": "shop", "count": 52200, "errors": 0, "error_ratio": 0.0, "cumulative_ms": 62640.0, "avg_ms": 1.2,
                 "p50": 1.0, "p95": 3.1, "p99": 6.5, "max": 40.0, "rows": 52200},
                {"endpoint": "INSERT INTO orders (user_id, total) VALUES (?, ?)", "method": "INSERT", "kind": "sql.client", "remote_service": "mysql",
                 "database": "shop", "count": 9000, "errors": 12, "error_ratio": 12 / 9000, "cumulative_ms": 27000.0, "avg_ms": 3.0,
                 "p50": 2.5, "p95": 7.0, "p99": 12.0, "max": 80.0, "rows": 9000}]
    rps, err, p50, p95, p99, *_ = SERVICES[service]
    return [{"endpoint": f"{method} {path}", "method": method, "kind": "http.server", "remote_service": "", "database": "", "count": int(rps * 3600 * share),
             "errors": int(rps * 3600 * share * err), "error_ratio": err, "cumulative_ms": rps * 3600 * share * p50 * 1.2,
             "avg_ms": p50 * 1.2, "p50": p50, "p95": p95, "p99": p99, "max": p99 * 1.5, "rows": 0}
            for path, method, share in (("/orders/{id}", "GET", 0.7), ("/orders", "POST", 0.3))]


def _resources(service: str) -> list[dict]:
    up, total = SERVICES[service][6:8]
    return [{"ts": NOW_MS - (30 - i) * 2 * STEP_MS, "instance": f"{service}-{n}", "version": "v2" if n == 1 else "v1",
             "cpu": 0.2 + 0.1 * n + 0.01 * (i % 5), "memory_rss": (150 + 10 * n + i) * 2**20, "memory_limit": 512 * 2**20,
             "up": n < up, "probe_ms": 2.0} for n in range(total) for i in range(30)]


def trace_spans(trace_id: str = TRACE_ID, count: int = TRACE_SPANS, start_us: int | None = None) -> list[dict]:
    """A trace of ``count`` spans: frontend -> orders -> (mysql, payments) repeating down a tree."""
    start_us = start_us if start_us is not None else (NOW_MS - 5 * 60_000) * 1000
    services = ("frontend", "orders", "payments", "orders", "payments")
    spans = [{"traceId": trace_id, "id": "%016x" % 1, "name": "get /orders/{id}", "kind": "SERVER", "timestamp": start_us,
              "duration": 250_000 + count * 10, "localEndpoint": {"serviceName": "frontend", "ipv4": "10.0.0.1", "port": 8080},
              "tags": {"http.method": "GET", "http.path": "/orders/42"}}]
    rng = random.Random(count)
    for i in range(2, count + 1):
        parent = spans[rng.randrange(max(0, len(spans) - 8), len(spans))] if i > 2 else spans[0]
        offset = rng.randint(0, max(1, parent["duration"] // 4))
        duration = max(10, rng.randint(parent["duration"] // 10, max(parent["duration"] // 2, parent["duration"] // 10 + 1)))
        span = {"traceId": trace_id, "parentId": parent["id"], "id": "%016x" % i, "name": "select orders" if i % 7 == 0 else "get /orders",
                "kind": "CLIENT", "timestamp": parent["timestamp"] + offset, "duration": min(duration, parent["duration"] - offset) or 1,
                "localEndpoint": {"serviceName": services[i % len(services)]},
                "remoteEndpoint": {"serviceName": "mysql" if i % 7 == 0 else services[(i + 1) % len(services)]},
                "tags": {"sql.query": "SELECT * FROM orders WHERE id = ?"} if i % 7 == 0 else {"http.path": "/orders"},
                "annotations": [{"timestamp": parent["timestamp"] + offset + 5, "value": "wire send"}]}
        if i % 11 == 0:
            span["tags"]["error"] = "timeout"
        spans.append(span)
    return spans


class SeededApi:
    """Answers ``(api, resource, params)`` from the seeded data: ``api`` is "zipkin" or "analysis"."""

    def __init__(self) -> None:
        self.traces = {TRACE_ID: trace_spans(), "1" * 32: trace_spans("1" * 32, 6, (NOW_MS - 20 * 60_000) * 1000)}
        self._big: list[dict] | None = None
        self.broken: set[str] = set()  # resources that answer 500, to test how failures show

    def big_trace(self) -> list[dict]:
        if self._big is None:
            self._big = trace_spans(BIG_TRACE_ID, BIG_TRACE_SPANS)
        return self._big

    def answer(self, api: str, resource: str, params: dict[str, Any]) -> tuple[int, Any]:
        if resource in self.broken:
            return 500, {"detail": f"seeded failure of {resource}"}
        service = params.get("service") or params.get("serviceName")
        if api == "analysis":
            if resource == "service_page":  # the API's bundle of the service page's answers, part by part
                page: dict[str, Any] = {"service": service, "services": sorted(SERVICES), "errors": {}}
                for part, name, extra in (("summary", "services", {}), ("series", "series", {"group_by": "none"}),
                                          ("anomalies", "anomalies", {}), ("endpoints", "endpoints", {"kind": "http"}),
                                          ("sql", "endpoints", {"kind": "sql"}), ("resources", "resources", {}),
                                          ("versions", "versions", {})):
                    code, body = self.answer(api, name, params | extra)
                    if code >= 400:
                        page[part], page["errors"][part] = None, body["detail"]
                    else:
                        page[part] = (body[0] if body else None) if part == "summary" else body
                return 200, page
            if resource == "services":
                rows = _services()
                return 200, [r for r in rows if not service or r["service"] == service]
            if resource == "series":
                return (200, _series(service)) if service in SERVICES else (200, [])
            if resource == "endpoints":
                return 200, _endpoints(service, params.get("kind", "http")) if service in SERVICES else []
            if resource == "topology":
                nodes = [{"id": s, "kind": "service", "rps": v[0], "error_ratio": v[1]} for s, v in SERVICES.items()]
                nodes += [{"id": "mysql", "kind": "database", "rps": 14.5, "error_ratio": 0.0},
                          {"id": "bank-api", "kind": "external", "rps": 3.0, "error_ratio": 0.02}]
                edges = [{"source": a, "target": b, "rps": rps, "count": int(rps * 3600), "errors": int(rps * 3600 * err),
                          "error_ratio": err, "p50": p50, "p99": p99, "source_of_data": origin} for a, b, rps, err, p50, p99, origin in EDGES]
                return 200, {"nodes": nodes, "edges": edges}
            if resource == "resources":
                return 200, _resources(service) if service in SERVICES else []
            if resource == "anomalies":
                if service != "payments":
                    return 200, []
                return 200, [{"service": "payments", "metric": "latency_p99", "start": NOW_MS - 19 * STEP_MS, "end": NOW_MS - 17 * STEP_MS,
                              "size": 2, "baseline": 480.0, "observed": 1440.0, "score": 6.2, "method": "robust_zscore"}]
            if resource == "recommendations":
                recs = [{"service": "payments", "action": "scale_out", "direction": "horizontal", "current_instances": 2,
                         "recommended_instances": 4, "cpu_request": None, "memory_request": None, "confidence": 0.82,
                         "reasons": ["CPU at 92% of the limit for the last 40 minutes", "p99 480 ms above the 300 ms objective"],
                         "evidence": {"cpu_utilization": 0.92, "p99_ms": 480.0, "rps": 3.0, "instances_up": 1}},
                        {"service": "frontend", "action": "none", "direction": "horizontal", "current_instances": 2,
                         "recommended_instances": 2, "confidence": 0.9, "reasons": ["Latency and CPU within objectives"],
                         "evidence": {"cpu_utilization": 0.35, "p99_ms": 48.0}}]
                return 200, [r for r in recs if not service or r["service"] == service]
            if resource == "versions":
                if service != "orders":
                    return 200, {"service": service, "versions": [{"version": "v1", "count": 100, "error_ratio": 0.0, "p50": 1, "p99": 2}],
                                 "verdict": "insufficient_data", "test": None, "confidence": None, "baseline": "v1", "candidate": None}
                return 200, {"service": "orders", "versions": [
                    {"version": "v1", "count": 18000, "error_ratio": 0.004, "p50": 12.0, "p99": 80.0},
                    {"version": "v2", "count": 8100, "error_ratio": 0.03, "p50": 19.0, "p99": 140.0}],
                    "verdict": "worse", "test": "mann-whitney u", "confidence": 0.99, "baseline": "v1", "candidate": "v2"}
            if resource == "alerts":
                return 200, {"rules": [{"name": "PaymentsErrors", "expr": "error_ratio{service=\"payments\"} > 0.05", "for_s": 60,
                                        "severity": "page", "labels": {"team": "pay"}, "annotations": {}, "receivers": ["ops-webhook"]},
                                       {"name": "HighLatency", "expr": "p99 > 1000", "for_s": 300, "severity": "warn", "labels": {},
                                        "annotations": {}, "receivers": ["ops-webhook"]}],
                             "alerts": [{"rule": "PaymentsErrors", "labels": {"service": "payments"}, "state": "firing",
                                         "active_since": NOW_MS - 12 * STEP_MS, "value": 0.08}]}
            if resource == "alerts/history":
                return 200, [{"ts": NOW_MS - 11 * STEP_MS, "rule": "PaymentsErrors", "status": "firing", "receiver": "ops-webhook",
                              "attempts": 1, "delivered": True, "last_error": None, "payload": {"service": "payments", "value": 0.08}},
                             {"ts": NOW_MS - 40 * STEP_MS, "rule": "HighLatency", "status": "resolved", "receiver": "ops-webhook",
                              "attempts": 3, "delivered": False, "last_error": "connection refused", "payload": {}}]
            return 404, {"detail": "Not Found"}
        if resource == "services":
            return 200, sorted(SERVICES)
        if resource == "spans":
            return 200, ["get /orders", "get /orders/{id}", "select orders"] if service else []
        if resource == "remoteServices":
            return 200, ["mysql", "payments"] if service else []
        if resource == "dependencies":
            return 200, [{"parent": a, "child": b, "callCount": int(rps * 3600), "errorCount": int(rps * 3600 * err)}
                         for a, b, rps, err, *_ in EDGES]
        if resource == "autocompleteKeys":
            return 200, ["http.path", "sql.query"]
        if resource.startswith("trace/"):
            trace_id = resource.removeprefix("trace/")
            spans = self.big_trace() if trace_id == BIG_TRACE_ID else self.traces.get(trace_id)
            return (200, spans) if spans else (404, {"detail": f"trace {trace_id} not found"})
        if resource == "traces":
            found = [t for t in self.traces.values()
                     if not service or any((s.get("localEndpoint") or {}).get("serviceName") == service for s in t)]
            if params.get("minDuration"):
                found = [t for t in found if max(s.get("duration", 0) for s in t) >= int(params["minDuration"])]
            return 200, found[: int(params.get("limit") or 10)]
        return 404, {"detail": "Not Found"}


class SeededSource:
    """The in-memory ``DataSource`` over ``SeededApi`` (errors raised as the HTTP source raises them)."""

    def __init__(self, api: SeededApi | None = None) -> None:
        self.api = api or SeededApi()
        self.calls: list[tuple[str, str, dict]] = []

    def _get(self, api: str, resource: str, params: Any) -> Any:
        params = dict(params or {})
        self.calls.append((api, resource, params))
        code, body = self.api.answer(api, resource, params)
        if code >= 400:
            raise DataSourceError(f"/{resource} answered {code}: {body.get('detail')}", code)
        return body

    def zipkin(self, resource: str, params: Any = None) -> Any:
        return self._get("zipkin", resource, params)

    def analysis(self, resource: str, params: Any = None) -> Any:
        return self._get("analysis", resource, params)
