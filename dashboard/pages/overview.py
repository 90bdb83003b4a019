"""Overview: every service with its RED metrics, Apdex, health, resources and badges."""

from __future__ import annotations

from typing import Any

from dash import Input, Output, State, html

from dashboard import state
from dashboard.components import ask, drawn, empty, href, loading, number_column, percent_column, status, table
from dashboard.data import DataSource
from dashboard.theme import ERROR_RATIO_BAD, ERROR_RATIO_WARN, fmt_bytes, sparkline

PATH = ""
COLUMNS = [
    {"name": "service", "id": "service_link", "presentation": "markdown"},
    number_column("requests/s", "rps"),
    percent_column("errors", "error_ratio"),
    number_column("p50 ms", "p50", 1),
    number_column("p95 ms", "p95", 1),
    number_column("p99 ms", "p99", 1),
    number_column("Apdex", "apdex", 2),
    {"name": "instances", "id": "instances"},
    number_column("CPU cores", "cpu"),
    {"name": "memory", "id": "memory"},
    {"name": "requests/s over time", "id": "sparkline"},
    {"name": "badges", "id": "badges"},
]
SORTABLE = {c["id"] for c in COLUMNS}


def layout(app: Any, params: dict[str, str], source: DataSource) -> html.Div:
    return html.Div([
        html.H2("Services"),
        loading(html.Div(id="overview-body", children=overview_body(app, source, params)), "overview-loading"),
    ])


def overview_rows(app: Any, source: DataSource, params: dict[str, str]) -> tuple[list[dict], Any]:
    """The table rows and the status line (errors, slow queries) for ``params``."""
    window = state.window(params)
    answer = ask("services", source.analysis, "services", window.analysis_params())
    rows = []
    for s in answer.value or []:
        service = s.get("service") or ""
        badges = []
        if s.get("open_alerts"):
            badges.append(f"{s['open_alerts']} alert{'s' if s['open_alerts'] != 1 else ''}")
        if s.get("pending_recommendations"):
            n = s["pending_recommendations"]
            badges.append(f"{n} recommendation{'s' if n != 1 else ''}")
        memory = fmt_bytes(s.get("memory_rss"))
        if s.get("memory_limit"):
            memory += f" / {fmt_bytes(s['memory_limit'])}"
        up, total = s.get("instances_up"), s.get("instances_total")
        rows.append({
            "service": service,
            "service_link": f"[{service}]({href(app, 'service', _shared(params) | {'service': service})})",
            "rps": s.get("rps"), "error_ratio": s.get("error_ratio"), "p50": s.get("p50"), "p95": s.get("p95"),
            "p99": s.get("p99"), "apdex": s.get("apdex"),
            "instances": "–" if total is None else f"{int(up or 0)}/{int(total)}",
            "instances_down": (total or 0) - (up or 0),
            "cpu": s.get("cpu"), "memory": memory, "sparkline": sparkline(s.get("sparkline")),
            "badges": " · ".join(badges), "has_alerts": bool(s.get("open_alerts")),
        })
    return rows, answer


def overview_body(app: Any, source: DataSource, params: dict[str, str]) -> list:
    rows, answer = overview_rows(app, source, params)
    if not answer.ok:
        return [status(answer)]
    if not rows:
        return [status(answer), empty(f"No service has reported in the {state.RANGE_LABELS.get(state.range_key(params), 'chosen window')}. "
                                      "Services appear once their agents send metrics or spans reach the collector.")]
    sort_by = _sort_from(params.get("sort"))
    return [
        status(answer),
        html.Div(f"{len(rows)} service{'s' if len(rows) != 1 else ''}", className="muted", id="overview-count"),
        table("overview-table", COLUMNS, rows, sort_by=sort_by, filter_action="native", filter_query=params.get("filter", ""),
              page_size=50, style_data_conditional=[
                  {"if": {"filter_query": f"{{error_ratio}} >= {ERROR_RATIO_BAD}", "column_id": "error_ratio"}, "color": "#c62828", "fontWeight": "600"},
                  {"if": {"filter_query": f"{{error_ratio}} >= {ERROR_RATIO_WARN} && {{error_ratio}} < {ERROR_RATIO_BAD}", "column_id": "error_ratio"}, "color": "#ef6c00"},
                  {"if": {"filter_query": "{instances_down} > 0", "column_id": "instances"}, "color": "#c62828", "fontWeight": "600"},
                  {"if": {"filter_query": "{apdex} < 0.85", "column_id": "apdex"}, "color": "#ef6c00"},
                  {"if": {"filter_query": "{has_alerts} eq true", "column_id": "badges"}, "color": "#c62828"},
                  {"if": {"column_id": "sparkline"}, "fontFamily": "monospace", "color": "#1f77b4", "letterSpacing": "-1px"},
              ]),
        html.Div("Click a column title to sort; type in the row under the titles to filter (e.g. > 1 under requests/s).",
                 className="hint"),
    ]


def _shared(params: dict[str, str]) -> dict[str, str]:
    return {k: params[k] for k in state.SHARED if k in params}


def _sort_from(value: str | None) -> list[dict]:
    """``rps:desc,p99:asc`` -> DataTable ``sort_by``."""
    out = []
    for part in (value or "").split(","):
        column, _, direction = part.partition(":")
        if column in SORTABLE:
            out.append({"column_id": column, "direction": "asc" if direction == "asc" else "desc"})
    return out


def sort_to_param(sort_by: list[dict] | None) -> str:
    return ",".join(f"{s['column_id']}:{s['direction']}" for s in sort_by or [])


def register(app: Any, source: DataSource) -> None:
    from dashboard.app import url_update

    @app.callback(Output("overview-body", "children"), Input("url", "search"), Input("refresh-timer", "n_intervals"),
                  prevent_initial_call=True)  # the page is drawn with its data; this refreshes it
    def refresh_overview(search, _tick):
        return drawn("overview", lambda: overview_body(app, source, state.parse_query(search)))

    @app.callback(Output("url", "search", allow_duplicate=True), Output("synced-search", "data", allow_duplicate=True),
                  Input("overview-table", "sort_by"), Input("overview-table", "filter_query"), State("url", "search"),
                  prevent_initial_call=True)
    def remember_table_state(sort_by, filter_query, search):
        return url_update(search, sort=sort_to_param(sort_by), filter=filter_query or "")

