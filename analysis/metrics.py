"""The operator's views of RED metrics: per service, per endpoint or SQL digest, per dependency
edge, and as series; from agent distributions first, from Zipkin spans for services without an agent.
"""

from __future__ import annotations

import pandas as pd

from analysis.context import AnalysisContext, Window
from analysis.errors import BadRequest
from analysis.red import red_table, spans_as_red
from storage import metrics_queries as q

SERIES_GROUPS = {"none": None, "endpoint": "endpoint", "version": "version"}
ENDPOINT_KINDS = {"http": ("http.server", "http.client"), "sql": ("sql.client", "sql.server")}
RESOURCE_METRICS = {
    "process.cpu.utilization": "cpu",
    "process.memory.rss": "memory_rss",
    "process.memory.limit": "memory_limit",
    "health.up": "up",
    "health.probe_ms": "probe_ms",
}


def agent_services(ctx: AnalysisContext, window: Window) -> list[str]:
    frame = ctx.client.query(
        f"SELECT DISTINCT service FROM {ctx.database}.latency WHERE interval_start >= toDateTime({{s:Int64}}) "
        "AND interval_start < toDateTime({e:Int64}) ORDER BY service",
        parameters={"s": window.start_s, "e": window.end_s},
    ).result_rows
    return [row[0] for row in frame]


def service_names(ctx: AnalysisContext, window: Window) -> list[str]:
    """Every service seen in the window, by its agent or by its SERVER spans (for a picker: no
    figure is computed)."""
    return sorted(set(agent_services(ctx, window)) | set(q.span_server_services(ctx.client, ctx.database, window.start_s,
                                                                                   window.end_s)))


def service_red(ctx: AnalysisContext, window: Window, service: str | None = None) -> pd.DataFrame:
    """One row per service (inbound traffic): RED columns plus ``source_of_data``."""
    filters: dict = {"kind": list(q.SERVER_KINDS)}
    if service:
        filters["service"] = service
    agent = red_table(q.latency_distributions(ctx.client, ctx.database, window.start_s, window.end_s,
                                              group_by=["service"], filters=filters),
                      ["service"], window.seconds, ctx.apdex_t_ms).assign(source_of_data="agent")
    known = set(agent_services(ctx, window))
    # spans as per-minute sketches (storage keeps them up to date): the summary of every service
    # must not read every span of the window
    if service and service in known:  # its agent's figures: no span is read
        span_frame = pd.DataFrame(columns=["service", "scale", "count", "errors", "sum", "min", "max", "zero_count", "buckets", "rows"])
    else:
        span_frame = q.span_server_distributions(ctx.client, ctx.database, window.start_s, window.end_s, service or None)
    if not span_frame.empty:
        span_frame = span_frame[~span_frame["service"].isin(known)]
    spans = red_table(span_frame, ["service"], window.seconds, ctx.apdex_t_ms).assign(source_of_data="spans")
    # services whose agents saw only outbound traffic (e.g. a load generator) still get a row
    missing = sorted(s for s in known - set(agent["service"]) if not service or s == service)
    idle = pd.DataFrame({"service": missing, "count": 0, "errors": 0, "rps": 0.0, "source_of_data": "agent"})
    frames = [f for f in (agent, spans, idle) if not f.empty]
    if not frames:
        return agent
    return pd.concat(frames, ignore_index=True).sort_values("service").reset_index(drop=True)


def series(ctx: AnalysisContext, service: str, window: Window, group_by: str = "none") -> pd.DataFrame:
    """RED per step (and per endpoint or version): ``ts`` in unix seconds, ``key``."""
    if group_by not in SERIES_GROUPS:
        raise BadRequest(f"group_by must be one of {sorted(SERIES_GROUPS)}, got {group_by!r}")
    column = SERIES_GROUPS[group_by]
    groups = [column] if column else []
    frame = q.latency_distributions(ctx.client, ctx.database, window.start_s, window.end_s, group_by=groups,
                                    step_s=window.step_s, filters={"service": service, "kind": list(q.SERVER_KINDS)})
    if not frame.empty:
        out = red_table(frame, ["ts", *groups], window.step_s, ctx.apdex_t_ms)
    else:
        spans = q.span_red(ctx.client, ctx.database, window.start_s, window.end_s, apdex_t_ms=ctx.apdex_t_ms,
                           group_by=groups, step_s=window.step_s, filters={"service": service})
        out = spans_as_red(spans, window.step_s)
    out["key"] = out[column].astype(str) if column else ""
    if not column:
        out = _fill_steps(out, window)
    return out


def _fill_steps(frame: pd.DataFrame, window: Window) -> pd.DataFrame:
    """Steps without traffic are zero throughput, not missing points (a silent service is news)."""
    first = window.start_s - window.start_s % window.step_s
    steps = pd.DataFrame({"ts": range(first, window.end_s, window.step_s)})
    frame = frame.copy()
    frame["ts"] = frame["ts"].astype("int64")
    out = steps.merge(frame, on="ts", how="left")
    out["key"] = ""
    for column in ("count", "errors", "rps"):
        out[column] = out[column].fillna(0)
    return out


def endpoints(ctx: AnalysisContext, service: str, window: Window, kind: str = "http") -> pd.DataFrame:
    if kind not in ENDPOINT_KINDS:
        raise BadRequest(f"kind must be one of {sorted(ENDPOINT_KINDS)}, got {kind!r}")
    keys = ["endpoint", "method", "kind", "remote_service", "database"]
    frame = q.latency_distributions(ctx.client, ctx.database, window.start_s, window.end_s, group_by=keys,
                                    filters={"service": service, "kind": list(ENDPOINT_KINDS[kind])})
    if not frame.empty or kind == "sql":
        out = red_table(frame, keys, window.seconds, ctx.apdex_t_ms)
    else:
        spans = spans_as_red(q.span_red(ctx.client, ctx.database, window.start_s, window.end_s, apdex_t_ms=ctx.apdex_t_ms,
                                        group_by=["endpoint", "remote_service"], filters={"service": service}),
                             window.seconds)
        out = spans.assign(method=spans["endpoint"].str.split(" ").str[0] if not spans.empty else [],
                           kind="http.server", database="")
    out["cumulative_ms"] = out["sum_ms"]
    out["avg_ms"] = out["mean"]
    return out.sort_values("cumulative_ms", ascending=False).reset_index(drop=True) if not out.empty else out


def topology(ctx: AnalysisContext, window: Window) -> dict:
    services = service_red(ctx, window)
    keys = ["service", "remote_service", "kind", "database"]
    frame = q.latency_distributions(ctx.client, ctx.database, window.start_s, window.end_s, group_by=keys,
                                    filters={"kind": list(q.CLIENT_KINDS)})
    calls = red_table(frame, keys, window.seconds, ctx.apdex_t_ms)
    edges: dict[tuple[str, str], dict] = {}
    targets_kind: dict[str, str] = {}
    for row in calls.to_dict("records"):
        target = row["remote_service"] or row["database"] or ("database" if row["kind"].startswith("sql") else "unknown")
        if row["kind"].startswith("sql"):
            targets_kind[target] = "database"
        edge = {"source": row["service"], "target": target, "rps": row["rps"], "count": row["count"],
                "errors": row["errors"], "error_ratio": row["error_ratio"], "p50": row["p50"], "p99": row["p99"],
                "source_of_data": "agent"}
        previous = edges.get((edge["source"], target))
        if previous is None or previous["count"] < edge["count"]:
            edges[(edge["source"], target)] = edge
    span_frame = q.span_edges(ctx.client, ctx.database, window.start_s, window.end_s)
    for row in span_frame.to_dict("records"):
        if (row["source"], row["target"]) in edges:
            continue
        edges[(row["source"], row["target"])] = {
            "source": row["source"], "target": row["target"], "rps": row["count"] / window.seconds,
            "count": row["count"], "errors": row["errors"], "error_ratio": row["errors"] / row["count"],
            "p50": row["p50"], "p99": row["p99"], "source_of_data": "spans"}
    by_service = {row["service"]: row for row in services.to_dict("records")}
    names = set(by_service) | {e["source"] for e in edges.values()} | {e["target"] for e in edges.values()}
    nodes = []
    for name in sorted(names):
        row = by_service.get(name)
        kind = targets_kind.get(name) or ("service" if row is not None else "external")
        nodes.append({"id": name, "kind": kind, "rps": row["rps"] if row is not None else None,
                      "error_ratio": row.get("error_ratio") if row is not None else None})
    return {"nodes": nodes, "edges": list(edges.values())}


def resources(ctx: AnalysisContext, service: str, window: Window) -> pd.DataFrame:
    frame = q.resource_series(ctx.client, ctx.database, window.start_s, window.end_s, window.step_s, service)
    columns = ["ts", "instance", "version", *RESOURCE_METRICS.values()]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame = frame[frame["metric"].isin(list(RESOURCE_METRICS))]
    wide = frame.pivot_table(index=["ts", "instance", "version"], columns="metric", values="avg").reset_index()
    wide = wide.rename(columns=RESOURCE_METRICS)
    for column in columns:
        if column not in wide:
            wide[column] = None
    return wide[columns]
