"""Recommendations: per service, what to do, why (the evidence), and how confident."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from dash import Input, Output, dcc, html

from dashboard import state
from dashboard.components import ask, drawn, empty, href, loading, status
from dashboard.data import DataSource
from dashboard.theme import MUTED_COLOR, OK_COLOR, WARN_COLOR

PATH = "recommendations"
ACTIONS = {"scale_out": ("Scale out", WARN_COLOR), "scale_in": ("Scale in", "#1f77b4"), "scale_up": ("Scale up", WARN_COLOR),
           "none": ("No change", OK_COLOR)}


def layout(app: Any, params: dict[str, str], source: DataSource) -> html.Div:
    return html.Div([
        html.H2("Recommendations"),
        loading(html.Div(id="recommendations-body", children=recommendations_body(app, source, params)), "recommendations-loading"),
    ])


def evidence_figure(evidence: dict[str, Any]) -> go.Figure | None:
    numbers = {k: v for k, v in (evidence or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if not numbers:
        return None
    names = list(numbers)
    figure = go.Figure(go.Bar(x=[numbers[n] for n in names], y=names, orientation="h", marker_color="#90caf9",
                              text=[f"{numbers[n]:.4g}" for n in names], textposition="auto"))
    figure.update_layout(height=40 + 26 * len(names), margin={"l": 10, "r": 10, "t": 10, "b": 20}, plot_bgcolor="#fff",
                         paper_bgcolor="#fff", yaxis={"automargin": True, "autorange": "reversed"}, xaxis={"gridcolor": "#eee"})
    return figure


def recommendation_card(app: Any, params: dict[str, str], rec: dict) -> html.Div:
    action = rec.get("action") or "none"
    title, color = ACTIONS.get(action, (action.replace("_", " "), MUTED_COLOR))
    current, recommended = rec.get("current_instances"), rec.get("recommended_instances")
    what = title
    if current is not None and recommended is not None and current != recommended:
        what += f": {current} → {recommended} instances"
    if rec.get("cpu_request") is not None or rec.get("memory_request") is not None:
        what += f" (requests: CPU {rec.get('cpu_request', '–')}, memory {rec.get('memory_request', '–')})"
    confidence = rec.get("confidence")
    figure = evidence_figure(rec.get("evidence") or {})
    shared = {k: params[k] for k in state.SHARED if k in params}
    service = rec.get("service") or "?"
    return html.Div([
        html.Div([dcc.Link(service, href=href(app, "service", shared | {"service": service}), className="card-title"),
                  html.Span(title, className="badge", style={"backgroundColor": color}),
                  html.Span(rec.get("direction") or "", className="muted")], className="card-head"),
        html.Div(what, className="recommendation-action"),
        html.Div([html.Span("confidence "), html.Progress(value=str(confidence or 0), max="1"),
                  html.Span(f" {confidence:.0%}" if isinstance(confidence, (int, float)) else " –")], className="confidence"),
        html.Ul([html.Li(reason) for reason in rec.get("reasons") or []]) if rec.get("reasons") else empty("No reasons given."),
        dcc.Graph(figure=figure, config={"displayModeBar": False}) if figure else empty("No evidence figures."),
    ], className="card")


def recommendations_body(app: Any, source: DataSource, params: dict[str, str]) -> list:
    window = state.window(params)
    answer = ask("recommendations", source.analysis, "recommendations", window.analysis_params(service=params.get("service")))
    if not answer.ok:
        return [status(answer)]
    recs = sorted(answer.value or [], key=lambda r: (r.get("action") == "none", -(r.get("confidence") or 0)))
    if not recs:
        return [status(answer), empty("No recommendations: not enough data yet in this window.")]
    return [status(answer), html.Div([recommendation_card(app, params, r) for r in recs], className="cards", id="recommendation-cards")]


def register(app: Any, source: DataSource) -> None:
    @app.callback(Output("recommendations-body", "children"), Input("url", "search"), Input("refresh-timer", "n_intervals"),
                  prevent_initial_call=True)  # the page is drawn with its data; this refreshes it
    def refresh_recommendations(search, _tick):
        return drawn("recommendations page", lambda: recommendations_body(app, source, state.parse_query(search)))
