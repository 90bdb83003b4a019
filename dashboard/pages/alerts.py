"""Alerts: the rules, the alerts' current states, and the history of notifications with their
delivery results."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from dash import Input, Output, html

from dashboard import state
from dashboard.components import ask_all, drawn, empty, loading, number_column, status, table
from dashboard.data import DataSource

PATH = "alerts"
STATE_STYLES = [
    {"if": {"filter_query": "{state} = 'firing'", "column_id": "state"}, "color": "#c62828", "fontWeight": "600"},
    {"if": {"filter_query": "{state} = 'pending'", "column_id": "state"}, "color": "#ef6c00"},
    {"if": {"filter_query": "{state} = 'resolved'", "column_id": "state"}, "color": "#2e7d32"},
]


def layout(app: Any, params: dict[str, str], source: DataSource) -> html.Div:
    return html.Div([html.H2("Alerts"), loading(html.Div(id="alerts-body", children=alerts_body(app, source, params)), "alerts-loading")])


def _when(ms: Any) -> str:
    if not isinstance(ms, (int, float)):
        return str(ms or "–")
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return ", ".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else ", ".join(map(str, value))
    return "" if value is None else str(value)


def alerts_body(app: Any, source: DataSource, params: dict[str, str]) -> list:
    window = state.window(params)
    current, history = ask_all(("alerts", source.analysis, "alerts", window.analysis_params()),
                               ("notification history", source.analysis, "alerts/history", window.analysis_params()))
    body: list = [status(current, history)]
    data = current.value or {}
    rules, alerts = data.get("rules") or [], data.get("alerts") or []
    firing = sum(1 for a in alerts if a.get("state") == "firing")
    if current.ok:
        body.append(html.Div(f"{firing} firing, {len(alerts) - firing} pending or resolved, {len(rules)} rules",
                             id="alerts-summary", className="muted"))
    body.append(html.H3("Current alerts"))
    if alerts:
        body.append(table("alerts-table", [{"name": "rule", "id": "rule"}, {"name": "state", "id": "state"},
                                           {"name": "labels", "id": "labels"}, {"name": "active since", "id": "active_since"},
                                           number_column("value", "value", 3)],
                          [{"rule": a.get("rule"), "state": a.get("state"), "labels": _text(a.get("labels")),
                            "active_since": _when(a.get("active_since")), "value": a.get("value")} for a in alerts],
                          style_data_conditional=STATE_STYLES))
    elif current.ok:
        body.append(empty("No alert is pending or firing."))
    body.append(html.H3("Rules"))
    if rules:
        body.append(table("rules-table", [{"name": c, "id": c} for c in ("name", "expr", "for", "severity", "receivers", "labels")],
                          [{"name": r.get("name"), "expr": r.get("expr"), "for": f"{r.get('for_s', 0):g} s",
                            "severity": r.get("severity"), "receivers": _text(r.get("receivers")),
                            "labels": _text(r.get("labels"))} for r in rules]))
    elif current.ok:
        body.append(empty("No alert rules are configured (MESHSCOPE_ALERT_RULES)."))
    body.append(html.H3("Notifications"))
    events = sorted(history.value or [], key=lambda e: e.get("ts") or 0, reverse=True)
    if events:
        body.append(table("history-table", [{"name": c, "id": c} for c in ("time", "rule", "status", "receiver", "attempts", "delivered",
                                                                         "last error", "payload")],
                          [{"time": _when(e.get("ts")), "rule": e.get("rule"), "status": e.get("status"), "receiver": e.get("receiver"),
                            "attempts": e.get("attempts"), "delivered": "yes" if e.get("delivered") else "no",
                            "last error": e.get("last_error") or "", "payload": json.dumps(e.get("payload"))[:300]} for e in events],
                          style_data_conditional=[{"if": {"filter_query": "{delivered} = 'no'", "column_id": "delivered"},
                                                   "color": "#c62828", "fontWeight": "600"},
                                                  {"if": {"filter_query": "{status} = 'firing'", "column_id": "status"}, "color": "#c62828"}],
                          tooltip_data=[{"payload": {"value": json.dumps(e.get("payload"), indent=1), "type": "text"}} for e in events]))
    elif history.ok:
        body.append(empty("No notifications were sent in this window."))
    return body


def register(app: Any, source: DataSource) -> None:
    @app.callback(Output("alerts-body", "children"), Input("url", "search"), Input("refresh-timer", "n_intervals"),
                  prevent_initial_call=True)  # the page is drawn with its data; this refreshes it
    def refresh_alerts(search, _tick):
        return drawn("alerts page", lambda: alerts_body(app, source, state.parse_query(search)))
