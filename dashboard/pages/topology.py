"""Topology: services, databases and external calls, with rate, errors and latency on each edge."""

from __future__ import annotations

from typing import Any

import dash_cytoscape as cyto
from dash import Input, Output, State, html, no_update

from dashboard import state
from dashboard.components import ask, drawn, empty, href, loading, number_column, percent_column, status, table
from dashboard.data import DataSource
from dashboard.theme import ERROR_RATIO_BAD, ERROR_RATIO_WARN, fmt_ms, fmt_rate, fmt_ratio, health_color

PATH = "topology"
# an edge also turns orange when its p99 exceeds this many milliseconds
SLOW_EDGE_P99_MS = 1000.0
STYLESHEET = [
    {"selector": "node", "style": {"label": "data(label)", "font-size": 12, "text-valign": "bottom", "text-margin-y": 6,
                                   "background-color": "data(color)", "width": 34, "height": 34, "color": "#222",
                                   "text-background-color": "#fff", "text-background-opacity": 0.8, "text-background-padding": 2}},
    {"selector": "node.database", "style": {"shape": "barrel"}},
    {"selector": "node.external", "style": {"shape": "diamond", "border-style": "dashed", "border-width": 2, "border-color": "#999"}},
    {"selector": "edge", "style": {"curve-style": "bezier", "target-arrow-shape": "triangle", "width": "data(width)",
                                   "line-color": "data(color)", "target-arrow-color": "data(color)", "label": "data(label)",
                                   "font-size": 11, "text-rotation": "none", "text-wrap": "wrap", "text-background-color": "#fff",
                                   "text-background-opacity": 0.85, "text-background-padding": 2, "color": "#333"}},
    {"selector": "edge.spans", "style": {"line-style": "dashed"}},
    {"selector": ":selected", "style": {"border-width": 3, "border-color": "#111", "line-color": "#111"}},
]
EDGE_COLUMNS = [
    {"name": "from", "id": "source"}, {"name": "to", "id": "target"}, number_column("requests/s", "rps"),
    number_column("calls", "count", 0), number_column("errors", "errors", 0), percent_column("error ratio", "error_ratio"),
    number_column("p50 ms", "p50"), number_column("p99 ms", "p99"), {"name": "from data", "id": "source_of_data"},
    {"name": "", "id": "traces", "presentation": "markdown"},
]


def layout(app: Any, params: dict[str, str], source: DataSource) -> html.Div:
    return html.Div([
        html.H2("Topology"),
        html.Div("Click a service to open it, an edge to see its traces. Solid edges come from agents, dashed ones from spans.",
                 className="hint"),
        loading(html.Div(id="topology-body", children=topology_body(app, source, params)), "topology-loading"),
    ])


def topology_data(source: DataSource, params: dict[str, str]) -> tuple[dict, list]:
    """The graph ``{nodes, edges}`` per the analysis contract, and the answers for the status line.
    When the analysis API cannot answer, the graph comes from Zipkin's dependency links."""
    window = state.window(params)
    answer = ask("topology", source.analysis, "topology", window.analysis_params())
    if answer.ok:
        return answer.value or {"nodes": [], "edges": []}, [answer]
    links = ask("dependency links", source.zipkin, "dependencies", {"endTs": window.end_ms, "lookback": window.end_ms - window.start_ms})
    if not links.ok:
        return {"nodes": [], "edges": []}, [answer, links]
    edges, names = [], set()
    for link in links.value or []:
        count, errors = link.get("callCount") or 0, link.get("errorCount") or 0
        names |= {link["parent"], link["child"]}
        edges.append({"source": link["parent"], "target": link["child"], "count": count, "errors": errors,
                      "rps": count / max(window.seconds, 1), "error_ratio": errors / count if count else None,
                      "p50": None, "p99": None, "source_of_data": "spans"})
    return {"nodes": [{"id": n, "kind": "service"} for n in sorted(names)], "edges": edges}, [answer, links]


def edge_color(edge: dict) -> str:
    color = health_color(edge.get("error_ratio"))
    if color == health_color(0.0) and (edge.get("p99") or 0) > SLOW_EDGE_P99_MS:
        return health_color(ERROR_RATIO_WARN)
    return color


def elements(graph: dict) -> list[dict]:
    nodes = {n["id"]: n for n in graph.get("nodes") or []}
    for edge in graph.get("edges") or []:  # an edge may name a node the node list lacks
        for end in (edge["source"], edge["target"]):
            nodes.setdefault(end, {"id": end, "kind": "service"})
    out = []
    for node in nodes.values():
        kind = node.get("kind") or "service"
        out.append({"data": {"id": node["id"], "label": node["id"], "kind": kind, "color": health_color(node.get("error_ratio"))
                             if node.get("error_ratio") is not None or kind == "service" else "#90a4ae"},
                    "classes": kind})
    for i, edge in enumerate(graph.get("edges") or []):
        rps = edge.get("rps")
        label = f"{fmt_rate(rps)} · {fmt_ratio(edge.get('error_ratio'))} err"
        if edge.get("p99") is not None:
            label += f"\np99 {fmt_ms(edge['p99'])}"
        width = 1.5 + min(6.0, (rps or 0) ** 0.5)
        out.append({"data": {"id": f"e{i}", "source": edge["source"], "target": edge["target"], "label": label, "color": edge_color(edge),
                             "width": width, "rps": rps, "error_ratio": edge.get("error_ratio")},
                    "classes": edge.get("source_of_data") or "agent"})
    return out


def topology_body(app: Any, source: DataSource, params: dict[str, str]) -> list:
    graph, answers = topology_data(source, params)
    if not graph.get("edges") and not graph.get("nodes"):
        if any(not a.ok for a in answers) and len(answers) > 1 and not answers[-1].ok:
            return [status(*answers)]
        return [status(*answers), empty("No calls between services in this window.")]
    shared = {k: params[k] for k in state.SHARED if k in params}
    rows = [{**{k: e.get(k) for k in ("source", "target", "rps", "count", "errors", "error_ratio", "p50", "p99", "source_of_data")},
             "traces": f"[traces]({href(app, 'traces', shared | {'service': e['source'], 'remote': e['target']})})"}
            for e in graph.get("edges") or []]
    notes = [status(*answers)]
    if not answers[0].ok:
        notes.append(html.Div("Showing dependency links from spans only (rates are averages over the window).", className="note note-slow"))
    return [
        *notes,
        cyto.Cytoscape(id="topology-graph", elements=elements(graph), stylesheet=STYLESHEET, style={"width": "100%", "height": "520px"},
                       layout={"name": "breadthfirst", "directed": True, "spacingFactor": 1.3, "padding": 30},
                       minZoom=0.2, maxZoom=3, userZoomingEnabled=True, className="graph"),
        html.Div([html.Span("●", style={"color": health_color(0.0)}), " healthy  ",
                  html.Span("●", style={"color": health_color(ERROR_RATIO_WARN)}), f" ≥ {ERROR_RATIO_WARN:.0%} errors or p99 > {SLOW_EDGE_P99_MS:g} ms  ",
                  html.Span("●", style={"color": health_color(ERROR_RATIO_BAD)}), f" ≥ {ERROR_RATIO_BAD:.0%} errors"], className="legend"),
        html.H3("Edges"),
        table("topology-edges", EDGE_COLUMNS, rows, sort_by=[{"column_id": "rps", "direction": "desc"}]),
    ]


def click_target(app: Any, params: dict[str, str], node: dict | None, edge: dict | None) -> tuple[str, str] | None:
    """(pathname, search) to open for a tapped node or edge; None for nothing to open."""
    shared = {k: params[k] for k in state.SHARED if k in params}
    if edge:
        return app.get_relative_path("/traces"), state.encode_query(shared | {"service": edge["source"], "remote": edge["target"]})
    if node and node.get("kind", "service") == "service":
        return app.get_relative_path("/service"), state.encode_query(shared | {"service": node["id"]})
    return None


def register(app: Any, source: DataSource) -> None:
    @app.callback(Output("topology-body", "children"), Input("url", "search"), Input("refresh-timer", "n_intervals"),
                  prevent_initial_call=True)  # the page is drawn with its data; this refreshes it
    def refresh_topology(search, _tick):
        return drawn("topology", lambda: topology_body(app, source, state.parse_query(search)))

    @app.callback(Output("url", "pathname", allow_duplicate=True), Output("url", "search", allow_duplicate=True),
                  Input("topology-graph", "tapNodeData"), Input("topology-graph", "tapEdgeData"), State("url", "search"),
                  prevent_initial_call=True)
    def open_clicked(node, edge, search):
        from dash import ctx

        tapped = ctx.triggered_id and ctx.triggered[0]["prop_id"].endswith("tapEdgeData")
        target = click_target(app, state.parse_query(search), None if tapped else node, edge if tapped else None)
        return target if target else (no_update, no_update)
