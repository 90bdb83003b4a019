"""Traces: Zipkin-style search (service, remote service, span name, tag query, durations,
lookback = the page's time range, limit), results as a list and a duration scatter."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html, no_update

from dashboard import state
from dashboard.components import ask, ask_all, drawn, empty, href, loading, number_column, status, table
from dashboard.data import DataSource
from dashboard.theme import ERROR_COLOR, fmt_ms, message_figure, service_color

PATH = "traces"
DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
FIELDS = ("service", "remote", "span", "tags", "min_ms", "max_ms", "limit")
RESULT_COLUMNS = [
    {"name": "start", "id": "start"}, {"name": "trace", "id": "trace_link", "presentation": "markdown"},
    {"name": "root", "id": "root"}, number_column("duration ms", "duration_ms", 3), number_column("spans", "spans", 0),
    number_column("errors", "errors", 0), {"name": "services", "id": "services"},
]


def layout(app: Any, params: dict[str, str], source: DataSource) -> html.Div:
    def field(label: str, control: Any) -> html.Label:
        return html.Label([html.Span(label), control], className="field")

    return html.Div([
        html.H2("Traces"),
        html.Div([
            field("service", dcc.Dropdown(id="q-service", value=params.get("service"), placeholder="all",
                                          options=_options(params.get("service")))),
            field("remote service", dcc.Dropdown(id="q-remote", value=params.get("remote"), placeholder="all",
                                                 options=_options(params.get("remote")))),
            field("span name", dcc.Dropdown(id="q-span", value=params.get("span"), placeholder="all", options=_options(params.get("span")))),
            field("tags", dcc.Input(id="q-tags", value=params.get("tags", ""), placeholder="http.status_code=500 and error",
                                    debounce=True, className="input wide")),
            field("min ms", dcc.Input(id="q-min", value=params.get("min_ms", ""), type="number", min=0, className="input narrow")),
            field("max ms", dcc.Input(id="q-max", value=params.get("max_ms", ""), type="number", min=0, className="input narrow")),
            field("limit", dcc.Input(id="q-limit", value=params.get("limit", DEFAULT_LIMIT), type="number", min=1, max=MAX_LIMIT,
                                     className="input narrow")),
            html.Button("Search", id="q-search", className="button primary"),
        ], className="search-form"),
        html.Div([
            dcc.Input(id="q-trace-id", placeholder="trace id", className="input wide", debounce=True),
            html.Button("Open trace", id="q-open", className="button"),
        ], className="search-form"),
        loading(html.Div(id="traces-body", children=traces_body(app, source, params)), "traces-loading"),
    ])


def _options(value: str | None) -> list[dict]:
    return [{"label": value, "value": value}] if value else []


def zipkin_query(params: dict[str, str]) -> dict[str, Any]:
    """The URL's search fields as ``/api/v2/traces`` parameters (durations in microseconds)."""
    window = state.window(params)
    query: dict[str, Any] = window.zipkin_params(limit=_int(params.get("limit"), DEFAULT_LIMIT, 1, MAX_LIMIT))
    for param, name in (("service", "serviceName"), ("remote", "remoteServiceName"), ("span", "spanName"), ("tags", "annotationQuery")):
        if params.get(param):
            query[name] = params[param]
    for param, name in (("min_ms", "minDuration"), ("max_ms", "maxDuration")):
        value = _float(params.get(param))
        if value is not None:
            query[name] = int(value * 1000)
    return query


def summarize(trace: list[dict]) -> dict:
    """One result row: start, duration, root, span count, errors and services of a trace."""
    starts = [s["timestamp"] for s in trace if s.get("timestamp")]
    ends = [s["timestamp"] + (s.get("duration") or 0) for s in trace if s.get("timestamp")]
    ids = {s["id"] for s in trace}
    root = next((s for s in trace if not s.get("parentId") or s["parentId"] not in ids), trace[0]) if trace else {}
    services = Counter((s.get("localEndpoint") or {}).get("serviceName") or "unknown" for s in trace)
    start_us = min(starts, default=0)
    return {
        "trace_id": trace[0]["traceId"] if trace else "",
        "start_us": start_us,
        "duration_ms": (max(ends) - start_us) / 1000 if ends else 0.0,
        "spans": len(trace),
        "errors": sum(1 for s in trace if "error" in (s.get("tags") or {})),
        "root": f"{(root.get('localEndpoint') or {}).get('serviceName', 'unknown')}: {root.get('name', '')}",
        "root_service": (root.get("localEndpoint") or {}).get("serviceName", "unknown"),
        "services": ", ".join(f"{name} ×{n}" for name, n in services.most_common(6)) + (" …" if len(services) > 6 else ""),
    }


def scatter_figure(app: Any, summaries: list[dict]) -> go.Figure:
    if not summaries:
        return message_figure("No traces match.", height=260)
    figure = go.Figure()
    for errors, name, color in ((False, "traces", None), (True, "traces with errors", ERROR_COLOR)):
        points = [s for s in summaries if bool(s["errors"]) == errors]
        if not points:
            continue
        figure.add_trace(go.Scatter(
            x=[datetime.fromtimestamp(s["start_us"] / 1e6, UTC) for s in points], y=[s["duration_ms"] for s in points],
            mode="markers", name=name, customdata=[s["trace_id"] for s in points],
            text=[f"{s['root']}<br>{fmt_ms(s['duration_ms'])}, {s['spans']} spans" for s in points],
            hovertemplate="%{text}<extra></extra>",
            marker={"size": [min(28, 7 + s["spans"] ** 0.5) for s in points], "opacity": 0.75,
                    "color": color or [service_color(s["root_service"]) for s in points], "line": {"width": 1, "color": "#fff"}},
        ))
    figure.update_layout(height=280, margin={"l": 50, "r": 20, "t": 20, "b": 40}, plot_bgcolor="#fff", paper_bgcolor="#fff",
                         yaxis={"title": "duration (ms)", "rangemode": "tozero", "gridcolor": "#eee"}, xaxis={"gridcolor": "#eee"},
                         legend={"orientation": "h", "y": 1.05}, clickmode="event")
    return figure


def traces_body(app: Any, source: DataSource, params: dict[str, str]) -> list:
    answer = ask("trace search", source.zipkin, "traces", zipkin_query(params))
    if not answer.ok:
        return [status(answer)]
    summaries = sorted((summarize(t) for t in answer.value or [] if t), key=lambda s: s["start_us"], reverse=True)
    shared = {k: params[k] for k in state.SHARED if k in params}
    rows = [{
        **s, "start": datetime.fromtimestamp(s["start_us"] / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
        "trace_link": f"[{s['trace_id']}]({href(app, 'trace', shared | {'id': s['trace_id']})})",
    } for s in summaries]
    return [
        status(answer),
        html.Div(f"{len(rows)} trace{'s' if len(rows) != 1 else ''}", id="traces-count", className="muted"),
        dcc.Graph(id="traces-scatter", figure=scatter_figure(app, summaries), config={"displaylogo": False}),
        table("traces-table", RESULT_COLUMNS, rows, page_size=25) if rows else
        empty("No traces match this search in the chosen window. Widen the time range or remove a condition."),
    ]


def _int(value: Any, default: int, low: int, high: int) -> int:
    try:
        return max(low, min(high, int(float(value))))
    except (TypeError, ValueError):
        return default


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def register(app: Any, source: DataSource) -> None:
    from dashboard.app import url_update

    @app.callback(Output("traces-body", "children"), Input("url", "search"), Input("refresh-timer", "n_intervals"),
                  prevent_initial_call=True)  # the page is drawn with its data; this refreshes it
    def refresh_traces(search, _tick):
        return drawn("trace search results", lambda: traces_body(app, source, state.parse_query(search)))

    @app.callback(Output("q-service", "options"), Input("q-service", "id"))
    def list_services(_id):
        answer = ask("services", source.zipkin, "services")
        return [{"label": s, "value": s} for s in sorted(answer.value or [])]

    @app.callback(Output("q-remote", "options"), Output("q-span", "options"), Input("q-service", "value"))
    def list_names(service):
        if not service:
            return [], []
        remote, spans = ask_all(("remote services", source.zipkin, "remoteServices", {"serviceName": service}),
                                ("span names", source.zipkin, "spans", {"serviceName": service}))
        return ([{"label": s, "value": s} for s in sorted(remote.value or [])], [{"label": s, "value": s} for s in sorted(spans.value or [])])

    @app.callback(Output("url", "search", allow_duplicate=True), Output("synced-search", "data", allow_duplicate=True),
                  Input("q-search", "n_clicks"), Input("q-tags", "n_submit"),
                  [State(f"q-{f}", "value") for f in ("service", "remote", "span", "tags", "min", "max", "limit")], State("url", "search"),
                  prevent_initial_call=True)
    def search_traces(_clicks, _submit, service, remote, span, tags, min_ms, max_ms, limit, search):
        return url_update(search, service=service or "", remote=remote or "", span=span or "", tags=(tags or "").strip(),
                          min_ms="" if min_ms in (None, "") else min_ms, max_ms="" if max_ms in (None, "") else max_ms,
                          limit="" if limit in (None, "", DEFAULT_LIMIT) else limit)

    def open_trace(trace_id: str | None, search: str | None) -> tuple:
        if not trace_id:
            return no_update, no_update
        shared = {k: v for k, v in state.parse_query(search).items() if k in state.SHARED}
        return app.get_relative_path("/trace"), state.encode_query(shared | {"id": trace_id})

    # two callbacks: the scatter exists only once results are in, and a callback may not wait on a missing input
    @app.callback(Output("url", "pathname", allow_duplicate=True), Output("url", "search", allow_duplicate=True),
                  Input("traces-scatter", "clickData"), State("url", "search"), prevent_initial_call=True)
    def open_clicked_trace(click, search):
        return open_trace((click or {}).get("points", [{}])[0].get("customdata"), search)

    @app.callback(Output("url", "pathname", allow_duplicate=True), Output("url", "search", allow_duplicate=True),
                  Input("q-open", "n_clicks"), Input("q-trace-id", "n_submit"), State("q-trace-id", "value"), State("url", "search"),
                  prevent_initial_call=True)
    def open_typed_trace(_open, _submit, typed_id, search):
        return open_trace((typed_id or "").strip().lower(), search)
