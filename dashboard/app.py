"""The Dash application: a URL-routed shell around the pages.

``create_app(api_base_url)`` returns a ``dash.Dash`` whose Flask ``server`` the API server mounts
under ``/dashboard/`` (``requests_pathname_prefix``; routes stay at ``/`` inside the mount). Run alone
with ``python -m dashboard --api http://host:9411``. ``MESHSCOPE_AUTH_TOKEN``, when set, is sent to
the API as a bearer token.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import dash
from dash import Input, Output, State, dcc, html, no_update

from dashboard import state
from dashboard.components import drawn, empty, header, loading
from dashboard.data import DataSource, HttpDataSource
from dashboard.pages import alerts, overview, recommendations, service, topology, trace, traces

logger = logging.getLogger(__name__)

PAGES = {module.PATH: module for module in (overview, service, topology, traces, trace, recommendations, alerts)}


def create_app(api_base_url: str, requests_pathname_prefix: str = "/dashboard/", *, data_source: DataSource | None = None,
               auth_token: str | None = None, **kwargs: Any) -> dash.Dash:
    """The dashboard reading from the API at ``api_base_url`` (or from ``data_source`` when given).

    ``kwargs`` go to ``dash.Dash`` (e.g. ``routes_pathname_prefix`` when the app is served unmounted
    under a prefix)."""
    source = data_source or HttpDataSource(api_base_url, auth_token or os.environ.get("MESHSCOPE_AUTH_TOKEN"))
    kwargs.setdefault("routes_pathname_prefix", "/")
    app = dash.Dash(
        __name__, requests_pathname_prefix=requests_pathname_prefix, title="meshscope", update_title=None,
        suppress_callback_exceptions=True, serve_locally=True, **kwargs,
    )
    app.layout = html.Div([
        dcc.Location(id="url", refresh="callback-nav"),
        dcc.Store(id="synced-search"),  # the query string last written by a control, see render_page
        dcc.Store(id="rendered-path"),
        dcc.Interval(id="refresh-timer", interval=state.DEFAULT_REFRESH * 1000),
        loading(html.Div(id="page", className="page"), "page-loading", target_components={"page": "children"}),
    ])
    _register_shell(app, source)
    for module in PAGES.values():
        module.register(app, source)
    return app


def url_update(search: str | None, **updates: Any) -> tuple:
    """Outputs (url.search, synced-search) for a control's new value, or no update when the URL
    already says so. ``synced-search`` tells ``render_page`` not to redraw the page for it."""
    new = state.encode_query(state.parse_query(search) | updates)
    # compare meanings, not strings: a control reporting its value on mount must not reload the page
    if state.parse_query(new) == state.parse_query(state.encode_query(state.parse_query(search))):
        return no_update, no_update
    return new, new


def page_of(app: dash.Dash, pathname: str | None) -> str:
    try:
        return (app.strip_relative_path(pathname or "/") or "").split("/")[0]
    except dash.exceptions.UnsupportedRelativePath:
        return "?"


def _register_shell(app: dash.Dash, source: DataSource) -> None:
    @app.callback(Output("page", "children"), Output("rendered-path", "data"), Input("url", "pathname"), Input("url", "search"),
                  State("synced-search", "data"), State("rendered-path", "data"))
    def render_page(pathname, search, synced, rendered):
        # a control already shows what it wrote to the URL: redraw only for navigation (links, back/forward)
        if rendered is not None and rendered == pathname and synced == (search or ""):
            return no_update, no_update
        page = page_of(app, pathname)
        params = state.parse_query(search)
        module = PAGES.get(page)
        if module is None:
            return [header(app, page, params), empty(f"There is no page at {pathname}.")], pathname
        body = drawn(f"{page or 'overview'} page", lambda: module.layout(app, params, source))
        return [header(app, page, params), html.Div(body, className="content")], pathname

    @app.callback(Output("url", "search", allow_duplicate=True), Output("synced-search", "data", allow_duplicate=True),
                  Input("range", "value"), Input("refresh-every", "value"), State("url", "search"), prevent_initial_call=True)
    def remember_time_controls(range_key, refresh, search):
        return url_update(search, range=range_key, refresh=refresh)

    @app.callback(Output("refresh-timer", "interval"), Output("refresh-timer", "disabled"), Input("url", "search"))
    def set_refresh(search):
        seconds = state.refresh_seconds(state.parse_query(search))
        return max(seconds, 1) * 1000, seconds == 0
