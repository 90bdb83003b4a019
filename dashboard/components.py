"""Building blocks shared by the pages: the header, query answers and how failures show, tables."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dash import dash_table, dcc, html

from dashboard.errors import DataSourceError, DataSourceTimeout
from dashboard.state import RANGE_LABELS, REFRESH_CHOICES, encode_query, range_key, refresh_seconds

logger = logging.getLogger(__name__)

# a query slower than this is reported on the page, so that an operator knows why it was slow to show
SLOW_QUERY_S = 2.0
NAV = (("", "Overview"), ("service", "Service"), ("topology", "Topology"), ("traces", "Traces"),
       ("recommendations", "Recommendations"), ("alerts", "Alerts"))


@dataclass(slots=True)
class Answer:
    """What one query gave: its value, or the reason there is none; and how long it took."""

    what: str
    value: Any
    error: str | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.error is None


def ask(what: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Answer:
    started = time.monotonic()
    try:
        value, error = call(*args, **kwargs), None
    except DataSourceTimeout as exc:
        value, error = None, f"{what}: the query was too slow ({exc})"
    except DataSourceError as exc:
        value, error = None, f"{what}: {exc}"
    return Answer(what, value, error, time.monotonic() - started)


def status(*answers: Answer) -> html.Div:
    """Errors and slow queries, said plainly above the content they concern."""
    notes, said = [], set()
    for answer in answers:
        if answer.error:
            if answer.error not in said:  # parts of one failed query fail with the same reason: say it once
                said.add(answer.error)
                notes.append(html.Div(answer.error, className="note note-error"))
        elif answer.seconds >= SLOW_QUERY_S:
            notes.append(html.Div(f"{answer.what} took {answer.seconds:.1f} s to query (slow).", className="note note-slow"))
    return html.Div(notes, className="notes")


def drawn(what: str, draw: Callable[[], Any]) -> Any:
    """``draw()``, or a plain sentence in its place when it fails on data it did not expect (an API
    answering outside its contract): the operator sees what failed, the log has the traceback."""
    try:
        return draw()
    except Exception as exc:  # noqa: BLE001 - the last line of defence of a page, logged in full
        logger.exception("drawing %s failed", what)
        return failure(f"The {what} could not be drawn: {type(exc).__name__}: {exc}")


def failure(message: str) -> html.Div:
    return html.Div(message, className="note note-error")


def empty(message: str) -> html.Div:
    return html.Div(message, className="empty")


def page_link(app: Any, page: str, params: dict[str, Any], text: str, className: str = "") -> dcc.Link:
    return dcc.Link(text, href=href(app, page, params), className=className)


def href(app: Any, page: str, params: dict[str, Any]) -> str:
    return app.get_relative_path("/" + page) + encode_query(params)


def header(app: Any, page: str, params: dict[str, str]) -> html.Div:
    """Navigation (links keep the time range) and the time-range and refresh pickers."""
    shared = {k: params[k] for k in ("range", "refresh") if k in params}
    links = [
        dcc.Link(title, href=href(app, path, shared | ({"service": params["service"]} if path == "service" and "service" in params else {})),
                 className="nav-link active" if path == page else "nav-link", id=f"nav-{path or 'overview'}")
        for path, title in NAV
    ]
    key = range_key(params)
    range_options = [{"label": label, "value": k} for k, label in RANGE_LABELS.items()]
    if key not in RANGE_LABELS:
        range_options.append({"label": "fixed window", "value": key})
    return html.Div([
        html.Div([html.Span("meshscope", className="brand"), *links], className="nav"),
        html.Div([
            dcc.Dropdown(id="range", options=range_options, value=key, clearable=False, searchable=False, className="picker"),
            dcc.Dropdown(id="refresh-every", options=[{"label": v, "value": k} for k, v in REFRESH_CHOICES.items()],
                         value=refresh_seconds(params), clearable=False, searchable=False, className="picker"),
        ], className="pickers"),
    ], className="header")


def loading(child: Any, id_: str, **kwargs: Any) -> dcc.Loading:
    """A spinner over ``child`` while a callback fills it, with a word so a long load reads as progress."""
    return dcc.Loading(child, id=id_, type="circle", delay_show=250, overlay_style={"visibility": "visible", "opacity": 0.5},
                       custom_spinner=html.Div([html.Div(className="spinner"), html.Span("Loading…")], className="loading"), **kwargs)


def table(id_: str, columns: list[dict], rows: list[dict], **kwargs: Any) -> dash_table.DataTable:
    options = {"page_size": 25, "sort_action": "native", "style_as_list_view": True}
    options.update(kwargs)
    return dash_table.DataTable(
        id=id_, columns=columns, data=rows, markdown_options={"link_target": "_self"},
        style_header={"fontWeight": "600", "backgroundColor": "#f5f6f8"},
        style_cell={"fontFamily": "inherit", "fontSize": "13px", "padding": "4px 8px", "textAlign": "left",
                    "whiteSpace": "nowrap", "overflow": "hidden", "textOverflow": "ellipsis", "maxWidth": 420},
        style_table={"overflowX": "auto"}, css=[{"selector": "p", "rule": "margin: 0"}], **options,
    )


def number_column(name: str, id_: str, decimals: int = 2, suffix: str = "") -> dict:
    from dash.dash_table.Format import Format, Scheme, Symbol

    number_format = Format(precision=decimals, scheme=Scheme.fixed)
    if suffix:
        number_format = number_format.symbol(Symbol.yes).symbol_suffix(suffix)
    return {"name": name, "id": id_, "type": "numeric", "format": number_format}


def percent_column(name: str, id_: str) -> dict:
    from dash.dash_table.FormatTemplate import percentage

    return {"name": name, "id": id_, "type": "numeric", "format": percentage(2)}


def stat(label: str, value: str, id_: str | None = None, color: str | None = None) -> html.Div:
    props = {"id": id_} if id_ else {}
    return html.Div([html.Div(value, className="stat-value", style={"color": color} if color else None, **props),
                     html.Div(label, className="stat-label")], className="stat")


def ask_all(*questions: tuple) -> list[Answer]:
    """``ask`` several queries at once, ``(what, call, *args)`` each; answers in the same order.
    A page's queries are independent, so a slow one does not delay the others."""
    from concurrent.futures import ThreadPoolExecutor

    if len(questions) == 1:
        return [ask(*questions[0])]
    with ThreadPoolExecutor(max_workers=min(8, len(questions))) as pool:
        return list(pool.map(lambda q: ask(*q), questions))
