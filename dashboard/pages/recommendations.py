"""Recommendations: per service, what to do, why (the evidence), and how confident."""

from __future__ import annotations

from typing import Any

from dash import Input, Output, dcc, html

from dashboard import state
from dashboard.components import ask, drawn, empty, href, loading, status
from dashboard.data import DataSource
from dashboard.theme import MUTED_COLOR, OK_COLOR, WARN_COLOR, fmt_bytes

PATH = "recommendations"
ACTIONS = {"scale_out": ("Scale out", WARN_COLOR), "scale_in": ("Scale in", "#1f77b4"), "scale_up": ("Scale up", WARN_COLOR),
           "none": ("No change", OK_COLOR)}


def layout(app: Any, params: dict[str, str], source: DataSource) -> html.Div:
    return html.Div([
        html.H2("Recommendations"),
        loading(html.Div(id="recommendations-body", children=recommendations_body(app, source, params)), "recommendations-loading"),
    ])


def evidence_table(evidence: dict[str, Any]) -> html.Table | None:
    """Every number the recommendation used, by name (their units differ: a table, not one chart)."""
    rows = [(name, value) for name, value in (evidence or {}).items() if value is not None]
    if not rows:
        return None

    def shown(value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return str(value)
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"

    return html.Table([html.Tr([html.Th(name.replace("_", " ")), html.Td(shown(value))]) for name, value in rows],
                      className="kv evidence")


def recommendation_card(app: Any, params: dict[str, str], rec: dict) -> html.Div:
    action = rec.get("action") or "none"
    title, color = ACTIONS.get(action, (action.replace("_", " "), MUTED_COLOR))
    current, recommended = rec.get("current_instances"), rec.get("recommended_instances")
    what = title
    if current is not None and recommended is not None and current != recommended:
        what += f": {current} → {recommended} instances"
    if rec.get("cpu_request") is not None or rec.get("memory_request") is not None:
        cpu = rec.get("cpu_request")
        what += f" (requests: CPU {'–' if cpu is None else f'{cpu:.2f} cores'}, memory {fmt_bytes(rec.get('memory_request'))})"
    confidence = rec.get("confidence")
    evidence = evidence_table(rec.get("evidence") or {})
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
        html.Details([html.Summary("evidence"), evidence], open=True) if evidence else empty("No evidence figures."),
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
