"""HttpDataSource over real HTTP: answers, errors said in one line, timeouts, the bearer token."""

from __future__ import annotations

import time

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

from dashboard.data import HttpDataSource, TimeWindow
from dashboard.errors import DataSourceError, DataSourceTimeout
from tests.dashboard import seed
from tests.dashboard.conftest import ThreadedServer, free_port


@pytest.fixture(scope="module")
def odd_api():
    """An API answering badly on purpose, and recording the headers it got."""
    app = FastAPI()
    seen: dict = {}

    @app.get("/api/meshscope/v1/slow")
    def slow():
        time.sleep(1.0)
        return []

    @app.get("/api/meshscope/v1/text")
    def text():
        return PlainTextResponse("not json")

    @app.get("/api/meshscope/v1/crash")
    def crash():
        return PlainTextResponse("Internal Server Error", status_code=500)

    @app.get("/api/meshscope/v1/echo")
    def echo(request: Request):
        seen["authorization"] = request.headers.get("authorization")
        return dict(request.query_params)

    server = ThreadedServer(app, "asgi")
    server.seen = seen
    yield server
    server.stop()


def test_answers_and_contract_errors(seeded_api_url):
    source = HttpDataSource(seeded_api_url)
    assert source.zipkin("services") == sorted(seed.SERVICES)
    assert len(source.zipkin(f"trace/{seed.TRACE_ID}")) == seed.TRACE_SPANS
    with pytest.raises(DataSourceError, match=r"^/api/v2/trace/f+ answered 404: trace f+ not found$"):
        source.zipkin("trace/" + "f" * 32)


def test_bad_answers_timeouts_and_unreachable(odd_api):
    with pytest.raises(DataSourceError, match="answered 500: Internal Server Error"):
        HttpDataSource(odd_api.url).analysis("crash")
    with pytest.raises(DataSourceError, match="answered something that is not JSON"):
        HttpDataSource(odd_api.url).analysis("text")
    with pytest.raises(DataSourceTimeout, match="did not answer within 0.2 s"):
        HttpDataSource(odd_api.url, timeout_s=0.2).analysis("slow")
    with pytest.raises(DataSourceError, match="cannot reach the API"):
        HttpDataSource(f"http://127.0.0.1:{free_port()}").analysis("services")


def test_token_and_parameters(odd_api):
    window = TimeWindow(1000, 61000)
    answer = HttpDataSource(odd_api.url, auth_token="s3cret").analysis("echo", window.analysis_params(service="a", empty="", none=None))
    assert answer == {"start": "1000", "end": "61000", "service": "a"}
    assert odd_api.seen["authorization"] == "Bearer s3cret"
    assert window.zipkin_params(limit=5) == {"endTs": 61000, "lookback": 60000, "limit": 5}
