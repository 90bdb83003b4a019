"""One trace: a WebGL waterfall with collapsible subtrees and the critical path, span details,
a paged span list (only one page of rows is ever in the browser), and the trace as JSON.

A trace does not change once complete, so this view does not auto-refresh; the spans are kept
server-side in a small cache so that collapsing or selecting does not ship them again."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any

from dash import Input, Output, State, dcc, html, no_update

from dashboard.components import drawn, empty, failure, loading, number_column, stat, table
from dashboard.data import DataSource
from dashboard.errors import DataSourceError
from dashboard.state import parse_query
from dashboard.theme import fmt_ms
from dashboard.waterfall import VISIBLE_ROWS
from dashboard.waterfall import TraceTree, build_tree, critical_path_ms, span_rows, view_from_relayout, waterfall_figure

PATH = "trace"
PAGE_ROWS = 50
SPAN_COLUMNS = [
    {"name": "service", "id": "service"}, {"name": "span", "id": "name"}, {"name": "kind", "id": "kind"},
    number_column("depth", "depth", 0), number_column("start ms", "start_ms", 3), number_column("duration ms", "duration_ms", 3),
    number_column("children", "children", 0), {"name": "error", "id": "error"}, {"name": "critical path", "id": "critical"},
    {"name": "span id", "id": "span_id"},
]


class TraceCache:
    """The last few traces opened, as fetched spans and their tree (a 10k-span trace is ~5 MB of JSON)."""

    def __init__(self, source: DataSource, size: int = 8) -> None:
        self._source = source
        self._size = size
        self._items: OrderedDict[str, tuple[list[dict], TraceTree]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, trace_id: str) -> tuple[list[dict], TraceTree]:
        with self._lock:
            if trace_id in self._items:
                self._items.move_to_end(trace_id)
                return self._items[trace_id]
        spans = self._source.zipkin(f"trace/{trace_id}")
        if not isinstance(spans, list):
            raise DataSourceError(f"trace {trace_id}: unexpected answer from the API")
        entry = (spans, build_tree(spans))
        with self._lock:
            self._items[trace_id] = entry
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return entry


def layout(app: Any, params: dict[str, str], source: DataSource) -> html.Div:
    # drawn by show_trace: the spans are fetched once, into the cache its callbacks share
    trace_id = params.get("id", "")
    return html.Div([
        html.H2(["Trace ", html.Code(trace_id, id="trace-id")]),
        loading(html.Div(id="trace-body", children=empty("Loading trace…")), "trace-loading"),
    ])


def trace_body(cache: TraceCache, trace_id: str) -> list:
    if not trace_id:
        return [empty("No trace id given: search for traces on the Traces page.")]
    try:
        spans, tree = cache.get(trace_id)
    except DataSourceError as exc:
        if " 404" in str(exc):
            return [empty(f"Trace {trace_id} was not found (it may be older than the retention or not yet written).")]
        return [failure(f"Trace {trace_id} could not be loaded: {exc}")]
    if not spans:
        return [empty(f"Trace {trace_id} has no spans.")]
    started = datetime.fromtimestamp(tree.start_us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
    errors = sum(1 for n in tree.nodes if n.error)
    rows = span_rows(tree)
    return [
        html.Div([
            stat("spans", str(len(spans)), "trace-span-count"), stat("services", str(len(tree.services))),
            stat("depth", str(tree.depth)), stat("duration", fmt_ms(tree.duration_us / 1000), "trace-duration"),
            stat("critical path", f"{len(tree.critical)} spans"), stat("errors", str(errors), color="#c62828" if errors else None),
            stat("started", started),
        ], className="stats"),
        html.Div([
            html.Button("Collapse / expand selected", id="trace-toggle", className="button"),
            html.Button("Collapse below depth 1", id="trace-collapse-all", className="button"),
            html.Button("Expand all", id="trace-expand-all", className="button"),
            html.Button("Download JSON", id="trace-download-button", className="button"),
            dcc.Download(id="trace-download"),
            html.Span("Click a span to select it; drag to pan, scroll to zoom, double-click to go back to the top. "
                      f"Black line: the critical path ({fmt_ms(critical_path_ms(tree))} summed).", className="hint"),
        ], className="toolbar"),
        dcc.Store(id="trace-collapsed", data=[]),
        dcc.Store(id="trace-selected"),
        dcc.Store(id="trace-view", data={"first": 0, "rows": VISIBLE_ROWS}),
        dcc.Graph(id="waterfall", figure=waterfall_figure(tree), config={"displaylogo": False, "scrollZoom": True},
                  className="waterfall"),
        html.Div(id="span-details", children=empty("Select a span to see its tags, annotations and endpoints.")),
        html.H3("Spans"),
        table("span-table", SPAN_COLUMNS, _table_page(rows, 0), page_action="custom", page_current=0, page_size=PAGE_ROWS,
              page_count=max(1, -(-len(rows) // PAGE_ROWS)), sort_action="none",
              style_data_conditional=[{"if": {"filter_query": "{error} = 'error'"}, "color": "#c62828"},
                                      {"if": {"filter_query": "{critical} = 'yes'", "column_id": "critical"}, "fontWeight": "600"}]),
    ]


def _table_page(rows: list[dict], page: int) -> list[dict]:
    chunk = rows[page * PAGE_ROWS:(page + 1) * PAGE_ROWS]
    return [{**r, "id": r["key"], "span_id": r["id"]} for r in chunk]


def span_details(spans: list[dict], tree: TraceTree, key: int | None) -> Any:
    if key is None or not 0 <= key < len(spans):
        return empty("Select a span to see its tags, annotations and endpoints.")
    node = tree.nodes[key]
    span = node.span

    def endpoint(e: dict | None) -> str:
        if not e:
            return "–"
        address = e.get("ipv4") or e.get("ipv6") or ""
        return f"{e.get('serviceName', '')} {address}{':' + str(e['port']) if e.get('port') else ''}".strip()

    facts = [("span id", span.get("id")), ("parent id", span.get("parentId") or "–"), ("kind", span.get("kind") or "–"),
             ("start", f"+{(node.start_us - tree.start_us) / 1000:.3f} ms"), ("duration", f"{node.duration_us / 1000:.3f} ms"),
             ("local endpoint", endpoint(span.get("localEndpoint"))), ("remote endpoint", endpoint(span.get("remoteEndpoint"))),
             ("on critical path", "yes" if key in tree.critical else "no")]
    tags = sorted((span.get("tags") or {}).items())
    annotations = span.get("annotations") or []
    return html.Div([
        html.H3(f"{node.service}: {node.name}", id="span-details-title"),
        html.Table([html.Tr([html.Th(k), html.Td(str(v))]) for k, v in facts], className="kv"),
        html.H4("Tags"),
        html.Table([html.Tr([html.Th(k), html.Td(v, className="error" if k == "error" else None)]) for k, v in tags], className="kv")
        if tags else empty("No tags."),
        html.H4("Annotations"),
        html.Table([html.Tr([html.Th(f"+{(a['timestamp'] - tree.start_us) / 1000:.3f} ms"), html.Td(a.get("value"))])
                    for a in annotations], className="kv") if annotations else empty("No annotations."),
    ], className="span-details")


def register(app: Any, source: DataSource) -> None:
    cache = TraceCache(source)

    def trace_id_of(search: str | None) -> str:
        return parse_query(search).get("id", "").strip().lower()

    @app.callback(Output("trace-body", "children"), Input("url", "search"))
    def show_trace(search):
        return drawn("trace", lambda: trace_body(cache, trace_id_of(search)))

    @app.callback(Output("trace-view", "data"), Input("waterfall", "relayoutData"), State("trace-view", "data"),
                  prevent_initial_call=True)
    def follow_view(relayout, current):
        view = view_from_relayout(relayout, current)
        return no_update if view is None else view

    @app.callback(Output("waterfall", "figure"), Input("trace-collapsed", "data"), Input("trace-selected", "data"),
                  Input("trace-view", "data"), State("url", "search"), prevent_initial_call=True)
    def redraw(collapsed, selected, view, search):
        try:
            _, tree = cache.get(trace_id_of(search))
        except DataSourceError:
            return no_update
        view = view or {}
        return waterfall_figure(tree, collapsed or [], selected, view.get("first", 0), view.get("rows", VISIBLE_ROWS))

    @app.callback(Output("span-table", "data"), Output("span-table", "page_count"), Input("trace-collapsed", "data"),
                  Input("span-table", "page_current"), State("url", "search"), prevent_initial_call=True)
    def list_spans(collapsed, page, search):
        try:
            _, tree = cache.get(trace_id_of(search))
        except DataSourceError:
            return no_update, no_update
        rows = span_rows(tree, collapsed or [])
        return _table_page(rows, page or 0), max(1, -(-len(rows) // PAGE_ROWS))

    @app.callback(Output("trace-selected", "data"), Input("waterfall", "clickData"), Input("span-table", "active_cell"),
                  prevent_initial_call=True)
    def select_span(click, cell):
        from dash import ctx

        if ctx.triggered_id == "waterfall":
            points = (click or {}).get("points") or []
            key = points[0].get("customdata") if points else None
        else:
            key = (cell or {}).get("row_id")
        return key if isinstance(key, int) else no_update

    @app.callback(Output("span-details", "children"), Input("trace-selected", "data"), State("url", "search"), prevent_initial_call=True)
    def show_span(key, search):
        try:
            spans, tree = cache.get(trace_id_of(search))
        except DataSourceError as exc:
            return failure(str(exc))
        return span_details(spans, tree, key)

    @app.callback(Output("trace-collapsed", "data", allow_duplicate=True), Input("trace-toggle", "n_clicks"),
                  State("trace-selected", "data"), State("trace-collapsed", "data"), prevent_initial_call=True)
    def toggle_subtree(_clicks, selected, collapsed):
        if selected is None:
            return no_update
        collapsed = set(collapsed or [])
        collapsed ^= {selected}
        return sorted(collapsed)

    @app.callback(Output("trace-collapsed", "data", allow_duplicate=True), Input("trace-collapse-all", "n_clicks"),
                  Input("trace-expand-all", "n_clicks"), State("url", "search"), prevent_initial_call=True)
    def collapse_all(_collapse, _expand, search):
        from dash import ctx

        if ctx.triggered_id == "trace-expand-all":
            return []
        try:
            _, tree = cache.get(trace_id_of(search))
        except DataSourceError:
            return no_update
        return [n.key for n in tree.nodes if n.children and n.depth >= 1]

    @app.callback(Output("trace-download", "data"), Input("trace-download-button", "n_clicks"), State("url", "search"),
                  prevent_initial_call=True)
    def download(_clicks, search):
        trace_id = trace_id_of(search)
        try:
            spans, _ = cache.get(trace_id)
        except DataSourceError:
            return no_update
        return {"content": json.dumps(spans, indent=1), "filename": f"trace-{trace_id}.json", "type": "application/json"}
