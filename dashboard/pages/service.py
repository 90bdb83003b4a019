"""Service: response time, throughput and errors over time with anomalies; endpoint and SQL
tables; CPU and memory per instance against limits; version comparison."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html
from plotly.subplots import make_subplots

from dashboard import state
from dashboard.components import (Answer, ask, ask_all, drawn, empty, href, loading, number_column, percent_column, stat, status, table)
from dashboard.data import DataSource
from dashboard.errors import DataSourceError
from dashboard.theme import (ERROR_COLOR, MUTED_COLOR, OK_COLOR, WARN_COLOR, fmt_bytes, fmt_ms, fmt_rate, fmt_ratio,
                             health_color, message_figure, service_color)

PATH = "service"
ANOMALY_ROWS = {"latency_p99": 1, "throughput": 2, "error_ratio": 3}
VERDICT_COLORS = {"better": OK_COLOR, "worse": ERROR_COLOR, "no_significant_difference": MUTED_COLOR, "insufficient_data": WARN_COLOR}


def layout(app: Any, params: dict[str, str], source: DataSource) -> html.Div:
    names, body = service_page(app, source, params)
    return html.Div([
        html.Div([
            html.H2("Service"),
            dcc.Dropdown(id="service-picker", value=params.get("service"), placeholder="choose a service", className="service-picker",
                         options=[{"label": n, "value": n} for n in names]),
        ], className="title-row"),
        loading(html.Div(id="service-body", children=body), "service-loading"),
    ])


def _time(ts_ms: float) -> datetime:
    return datetime.fromtimestamp(ts_ms / 1000, UTC)


@lru_cache(maxsize=8)
def _subplots_layout(rows: int, cols: int, titles: tuple[str, ...], shared_xaxes: bool, vertical_spacing: float | None) -> str:
    """The layout plotly's make_subplots draws (axes domains, titles), as JSON, computed once: the
    figures below are plain dicts, because building them from plotly's validating objects took
    ~40 ms per service page on the server."""
    options = {"vertical_spacing": vertical_spacing} if vertical_spacing is not None else {}
    return json.dumps(make_subplots(rows=rows, cols=cols, shared_xaxes=shared_xaxes, subplot_titles=titles, **options).to_dict()["layout"])


def subplots(rows: int, cols: int, titles: tuple[str, ...], shared_xaxes: bool = False, vertical_spacing: float | None = None) -> dict:
    return json.loads(_subplots_layout(rows, cols, titles, shared_xaxes, vertical_spacing))


def _axes(row: int, col: int, cols: int) -> dict:
    """The axis references of subplot (row, col), numbered as make_subplots numbers them."""
    n = (row - 1) * cols + col
    suffix = "" if n == 1 else str(n)
    return {"xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}


def red_figure(series: list[dict], anomalies: list[dict], service: str) -> dict | go.Figure:
    """Percentiles, throughput and error ratio stacked on one shared time axis, anomalies shaded."""
    if not series:
        return message_figure(f"No requests from {service} in this window.")
    points = sorted(series, key=lambda p: p["ts"])
    x = [_time(p["ts"]) for p in points]
    layout = subplots(3, 1, ("Response time (ms)", "Throughput (requests/s)", "Error ratio"), shared_xaxes=True, vertical_spacing=0.07)
    data = [{"type": "scatter", "x": x, "y": [p.get(name) for p in points], "name": name, "mode": "lines",
             "line": {"color": color, "dash": dash, "width": 1.8}, **_axes(1, 1, 1)}
            for name, color, dash in (("p50", "#1f77b4", "solid"), ("p95", "#ff7f0e", "solid"), ("p99", "#d62728", "solid"),
                                      ("max", "#bbbbbb", "dot"))]
    data.append({"type": "scatter", "x": x, "y": [p.get("rps") for p in points], "name": "requests/s", "mode": "lines",
                 "fill": "tozeroy", "line": {"color": service_color(service), "width": 1.8}, **_axes(2, 1, 1)})
    data.append({"type": "scatter", "x": x, "y": [p.get("error_ratio") for p in points], "name": "error ratio", "mode": "lines",
                 "fill": "tozeroy", "line": {"color": ERROR_COLOR, "width": 1.8}, **_axes(3, 1, 1)})
    step_ms = (points[1]["ts"] - points[0]["ts"]) if len(points) > 1 else 60_000
    marks: dict[int, tuple[list, list, list]] = defaultdict(lambda: ([], [], []))
    shapes = []
    for anomaly in anomalies:
        row = ANOMALY_ROWS.get(anomaly.get("metric"))
        if row is None:
            continue
        start, end = anomaly["start"], max(anomaly.get("end") or anomaly["start"], anomaly["start"] + step_ms)
        axes = _axes(row, 1, 1)
        shapes.append({"type": "rect", "x0": _time(start), "x1": _time(end), "y0": 0, "y1": 1, "xref": axes["xaxis"],
                       "yref": f"{axes['yaxis']} domain", "fillcolor": ERROR_COLOR, "opacity": 0.12, "line": {"width": 0}})
        xs, ys, texts = marks[row]
        xs.append(_time(start))
        ys.append(anomaly.get("observed"))
        texts.append(f"anomaly in {anomaly['metric']}: observed {anomaly.get('observed')} vs baseline {anomaly.get('baseline')}"
                     f" (score {anomaly.get('score')}, {anomaly.get('method')})")
    for row, (xs, ys, texts) in marks.items():
        data.append({"type": "scatter", "x": xs, "y": ys, "mode": "markers", "name": "anomaly", "text": texts,
                     "hovertemplate": "%{text}<extra></extra>", "marker": {"symbol": "x", "size": 11, "color": ERROR_COLOR},
                     "showlegend": row == min(marks), **_axes(row, 1, 1)})
    for row in (1, 2, 3):
        layout[f"yaxis{'' if row == 1 else row}"].update(rangemode="tozero", gridcolor="#eeeeee")
        layout[f"xaxis{'' if row == 1 else row}"]["gridcolor"] = "#eeeeee"
    layout["yaxis3"]["tickformat"] = ".1%"
    layout.update(shapes=shapes, height=620, margin={"l": 50, "r": 20, "t": 40, "b": 30}, hovermode="x unified",
                  plot_bgcolor="#ffffff", paper_bgcolor="#ffffff", legend={"orientation": "h", "y": -0.08, "x": 0})
    return {"data": data, "layout": layout}


def resources_figure(samples: list[dict], service: str) -> dict | go.Figure:
    """CPU and memory per instance, memory against its limit."""
    if not samples:
        return message_figure(f"No CPU or memory samples from {service}'s agents in this window.", height=220)
    by_instance: dict[str, list[dict]] = defaultdict(list)
    for sample in samples:
        by_instance[sample.get("instance") or "?"].append(sample)
    layout = subplots(1, 2, ("CPU (cores) per instance", "Memory per instance (dashed: limit)"))
    palette = ("#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f")
    data = []
    for i, (instance, rows) in enumerate(sorted(by_instance.items())):
        rows.sort(key=lambda r: r["ts"])
        x = [_time(r["ts"]) for r in rows]
        color = palette[i % len(palette)]
        version = rows[-1].get("version")
        label = f"{instance} ({version})" if version else instance
        data.append({"type": "scatter", "x": x, "y": [r.get("cpu") for r in rows], "name": label, "legendgroup": instance,
                     "mode": "lines", "line": {"color": color}, **_axes(1, 1, 2)})
        data.append({"type": "scatter", "x": x, "y": [r.get("memory_rss") for r in rows], "name": label, "legendgroup": instance,
                     "mode": "lines", "showlegend": False, "line": {"color": color}, **_axes(1, 2, 2)})
        if any(r.get("memory_limit") for r in rows):
            data.append({"type": "scatter", "x": x, "y": [r.get("memory_limit") for r in rows], "name": f"{instance} limit",
                         "legendgroup": instance, "mode": "lines", "showlegend": False,
                         "line": {"color": color, "dash": "dash", "width": 1}, **_axes(1, 2, 2)})
    for axis in ("yaxis", "yaxis2"):
        layout[axis].update(rangemode="tozero", gridcolor="#eeeeee")
    layout["yaxis2"].update(tickformat=".3s", ticksuffix="B")
    layout.update(height=300, margin={"l": 50, "r": 20, "t": 40, "b": 30}, plot_bgcolor="#ffffff", paper_bgcolor="#ffffff",
                  legend={"orientation": "h", "y": -0.2})
    return {"data": data, "layout": layout}


def trace_search_for(service: str, row: dict) -> dict[str, str]:
    """Traces-page parameters that find the traces of one endpoint or SQL statement.

    The agents name HTTP spans ``method route`` in lower case (Zipkin's convention) and SQL spans by
    the statement type (``select``), calling the database's remote service."""
    method = (row.get("method") or "").strip()
    if (row.get("kind") or "").startswith("sql"):
        query = {"service": service, "remote": row.get("remote_service") or row.get("database") or ""}
        if method:
            query["span"] = method.lower()
        return query
    endpoint = (row.get("endpoint") or "").strip()
    name = endpoint if not method or endpoint.upper().startswith(method.upper() + " ") else f"{method} {endpoint}"
    return {"service": service, "span": name.lower()}


def endpoint_rows(app: Any, service: str, rows: list[dict], params: dict[str, str]) -> list[dict]:
    shared = {k: params[k] for k in state.SHARED if k in params}
    out = []
    for row in sorted(rows, key=lambda r: r.get("cumulative_ms") or 0, reverse=True):
        out.append({**{k: row.get(k) for k in ("endpoint", "method", "count", "errors", "error_ratio", "cumulative_ms", "avg_ms",
                                               "p50", "p95", "p99", "max", "rows", "database", "remote_service")},
                    "traces": f"[traces]({href(app, 'traces', shared | trace_search_for(service, row))})"})
    return out


HTTP_COLUMNS = [
    {"name": "endpoint", "id": "endpoint"}, {"name": "method", "id": "method"}, number_column("count", "count", 0),
    number_column("errors", "errors", 0), percent_column("error ratio", "error_ratio"), number_column("cumulative ms", "cumulative_ms", 0),
    number_column("avg ms", "avg_ms"), number_column("p50 ms", "p50"), number_column("p95 ms", "p95"), number_column("p99 ms", "p99"),
    number_column("max ms", "max"), {"name": "", "id": "traces", "presentation": "markdown"},
]
SQL_COLUMNS = [
    {"name": "statement", "id": "endpoint"}, {"name": "database", "id": "database"}, number_column("count", "count", 0),
    number_column("errors", "errors", 0), number_column("cumulative ms", "cumulative_ms", 0), number_column("avg ms", "avg_ms"),
    number_column("p99 ms", "p99"), number_column("rows", "rows", 0), {"name": "", "id": "traces", "presentation": "markdown"},
]


def versions_section(answer: Answer) -> html.Div:
    if not answer.ok:
        return status(answer)
    data = answer.value or {}
    versions = data.get("versions") or []
    if len(versions) < 2:
        return empty("One version is running: nothing to compare." if versions else "No version information in this window.")
    verdict = data.get("verdict") or "insufficient_data"
    confidence = data.get("confidence")
    return html.Div([
        html.Div([
            html.Span(verdict.replace("_", " "), className="badge", id="version-verdict",
                      style={"backgroundColor": VERDICT_COLORS.get(verdict, MUTED_COLOR)}),
            html.Span(f" candidate {data.get('candidate')} against baseline {data.get('baseline')}"
                      + (f", {data.get('test')}" if data.get("test") else "")
                      + (f", confidence {confidence:.0%}" if isinstance(confidence, (int, float)) else "")),
        ], className="verdict"),
        table("versions-table", [{"name": "version", "id": "version"}, number_column("count", "count", 0),
                                 percent_column("error ratio", "error_ratio"), number_column("p50 ms", "p50"), number_column("p99 ms", "p99")],
              [{k: v.get(k) for k in ("version", "count", "error_ratio", "p50", "p99")} for v in versions], page_size=10),
    ])


def service_body(app: Any, source: DataSource, params: dict[str, str]) -> list:
    return service_page(app, source, params)[1]


# the parts of the API's /service_page answer, in the order the page uses them, with their names on the page
PARTS = (("summary", "services"), ("series", "series"), ("anomalies", "anomalies"), ("endpoints", "endpoints"),
         ("sql", "SQL statements"), ("resources", "resources"), ("versions", "versions"))


def service_page(app: Any, source: DataSource, params: dict[str, str]) -> tuple[list[str], list]:
    """The names of all services (for the picker) and the page below the picker, from one query
    (the API's /service_page; seven concurrent ones from an API without it)."""
    service = params.get("service")
    window = state.window(params)
    if not service:
        summary = ask("services", source.analysis, "services", window.analysis_params())
        return _names(summary, None), [status(summary), empty("Choose a service above (or from the Overview).")]
    q = window.analysis_params(service=service)
    page = ask("service page", _page_or_none, source, q)
    if page.ok and page.value is None:  # an older API: ask each question
        summary, *answers = ask_all(
            ("services", source.analysis, "services", window.analysis_params()),
            ("series", source.analysis, "series", q | {"group_by": "none"}),
            ("anomalies", source.analysis, "anomalies", q),
            ("endpoints", source.analysis, "endpoints", q | {"kind": "http"}),
            ("SQL statements", source.analysis, "endpoints", q | {"kind": "sql"}),
            ("resources", source.analysis, "resources", q),
            ("versions", source.analysis, "versions", q),
        )
        return _names(summary, service), _body(app, params, service, summary, *answers)
    summary, *answers = _parts(page)
    names = sorted(set((page.value or {}).get("services") or []) | {service})
    return names, _body(app, params, service, summary, *answers, timing=page)


def _page_or_none(source: DataSource, params: dict[str, Any]) -> dict | None:
    try:
        return source.analysis("service_page", params)
    except DataSourceError as exc:
        if exc.status == 404:
            return None
        raise


def _parts(page: Answer) -> list[Answer]:
    """One answer per part of the page's answer, as if each had been asked alone (a failed page
    fails every part with its reason; its time is said once, by the page's answer)."""
    if not page.ok:
        return [Answer(what, None, page.error, 0.0) for _, what in PARTS]
    value, errors = page.value, page.value.get("errors") or {}
    out = []
    for part, what in PARTS:
        if part in errors:
            out.append(Answer(what, None, f"{what}: {errors[part]}", 0.0))
        elif part == "summary":
            out.append(Answer(what, [value["summary"]] if value.get("summary") else [], None, 0.0))
        else:
            out.append(Answer(what, value.get(part), None, 0.0))
    return out


def _names(summary: Answer, service: str | None) -> list[str]:
    return sorted({s.get("service") for s in summary.value or [] if s.get("service")} | ({service} if service else set()))


def _body(app: Any, params: dict[str, str], service: str, summary: Answer, series: Answer, anomalies: Answer, http: Answer,
          sql: Answer, resources: Answer, versions: Answer, timing: Answer | None = None) -> list:
    row = next((s for s in summary.value or [] if s.get("service") == service), None)
    if row:
        stats = html.Div([
            stat("requests/s", fmt_rate(row.get("rps")), "service-rps"),
            stat("error ratio", fmt_ratio(row.get("error_ratio")), "service-error-ratio", health_color(row.get("error_ratio"))),
            stat("p50", fmt_ms(row.get("p50"))), stat("p95", fmt_ms(row.get("p95"))), stat("p99", fmt_ms(row.get("p99")), "service-p99"),
            stat("Apdex", "–" if row.get("apdex") is None else f"{row['apdex']:.2f}"),
            stat("instances up", f"{int(row.get('instances_up') or 0)}/{int(row.get('instances_total') or 0)}"),
            stat("memory", fmt_bytes(row.get("memory_rss"))),
        ], className="stats")
    else:
        stats = empty(f"{service} has no traffic in this window." if summary.ok else "")
    red = red_figure(series.value or [], anomalies.value or [], service) if series.ok else message_figure(series.error, color=ERROR_COLOR)
    return [
        status(*([timing] if timing is not None and timing.ok else []), summary, series, anomalies, http, sql, resources, versions),
        stats,
        dcc.Graph(id="service-red", figure=red, config={"displaylogo": False}),
        html.H3("Endpoints"),
        table("endpoints-table", HTTP_COLUMNS, endpoint_rows(app, service, http.value or [], params))
        if http.value else empty("No HTTP endpoints seen." if http.ok else "Endpoints unavailable."),
        html.H3("SQL statements"),
        table("sql-table", SQL_COLUMNS, endpoint_rows(app, service, sql.value or [], params))
        if sql.value else empty("No SQL statements seen." if sql.ok else "SQL statements unavailable."),
        html.H3("CPU and memory"),
        dcc.Graph(id="service-resources", config={"displaylogo": False},
                  figure=resources_figure(resources.value or [], service) if resources.ok else message_figure(resources.error, 220, ERROR_COLOR)),
        html.H3("Versions"),
        versions_section(versions),
    ]


def register(app: Any, source: DataSource) -> None:
    from dashboard.app import url_update

    @app.callback(Output("service-body", "children"), Input("url", "search"), Input("refresh-timer", "n_intervals"),
                  prevent_initial_call=True)  # the page is drawn with its data; this refreshes it
    def refresh_service(search, _tick):
        return drawn("service page", lambda: service_body(app, source, state.parse_query(search)))

    @app.callback(Output("url", "search", allow_duplicate=True), Output("synced-search", "data", allow_duplicate=True),
                  Input("service-picker", "value"), State("url", "search"), prevent_initial_call=True)
    def choose_service(value, search):
        return url_update(search, service=value or "")
