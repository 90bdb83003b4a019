"""The collector's FastAPI application: ingestion, the Zipkin query API (at /api/v2 and
/zipkin/api/v2), /zipkin/config.json for Zipkin's UI, /metrics and /health.

``create_app`` takes its collaborators (settings, span publisher, a ClickHouse client factory,
metrics) so tests build it in-process; ``collector.server`` wires the real ones.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from collector import ingest, query
from collector.metrics import Metrics
from meshscope.settings import ServerSettings
from storage.errors import StorageError

logger = logging.getLogger(__name__)


_TOKEN_REQUIRED = "a valid bearer token is required"


def _authorized(token: str | None, request: Request) -> bool:
    """True when no token is configured or the request carries it as a bearer token."""
    if not token:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(given.strip().encode(), token.encode())


async def _require_token(request: Request) -> None:
    # async: a plain function would be run in a worker thread for every request (a thread hop
    # that costs more than the check)
    if not _authorized(request.app.state.settings.auth_token, request):
        raise HTTPException(401, _TOKEN_REQUIRED, headers={"WWW-Authenticate": "Bearer"})


def _refusal(token: str | None, request: Request) -> Response | None:
    """What _require_token answers, for the ingestion fast path: None to go on, else the 401."""
    if _authorized(token, request):
        return None
    return PlainTextResponse(_TOKEN_REQUIRED, status_code=401, headers={"WWW-Authenticate": "Bearer"})


def config_json(settings: ServerSettings) -> dict:
    """Zipkin UI (Lens) configuration, with Zipkin's defaults."""
    return {
        "environment": "",
        "queryLimit": 10,
        "defaultLookback": 900000,
        "searchEnabled": True,
        "logsUrl": None,
        "supportUrl": None,
        "archivePostUrl": None,
        "archiveUrl": None,
        "dependency": {"enabled": True, "lowErrorRate": 0.5, "highErrorRate": 0.75},
    }


def create_app(settings: ServerSettings, publisher, clickhouse: Callable, metrics: Metrics) -> FastAPI:
    """``publisher`` has ``publish(spans)``; ``clickhouse()`` returns a clickhouse-connect client."""
    app = FastAPI(title="meshscope", summary="Zipkin-compatible collector and query API", version="1")
    app.state.settings = settings
    app.state.publisher = publisher
    app.state.clickhouse = clickhouse
    app.state.metrics = metrics
    auth = [Depends(_require_token)]
    # ingestion POSTs skip FastAPI's layers (collector.ingest.IngestFastPath); same answers
    app.add_middleware(ingest.IngestFastPath, state=app.state,
                       authorized=lambda request: _refusal(settings.auth_token, request))
    app.include_router(ingest.router, dependencies=auth, tags=["ingestion"])
    app.include_router(query.router, prefix="/api/v2", dependencies=auth, tags=["query"])
    app.include_router(query.router, prefix="/zipkin/api/v2", dependencies=auth, tags=["query"], include_in_schema=False)

    @app.get("/zipkin/config.json", tags=["query"])
    def get_config() -> dict:
        return config_json(settings)

    @app.get("/metrics", response_class=PlainTextResponse, tags=["operations"])
    def get_metrics() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/health", tags=["operations"])
    def get_health() -> dict:
        return {"status": "UP"}

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("query", "path", "body"))
        return PlainTextResponse(f"{where}: {first.get('msg', 'invalid request')}", status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return PlainTextResponse(str(exc.detail), status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(StorageError)
    async def _storage_down(request: Request, exc: StorageError) -> Response:
        logger.error("storage error on %s: %s", request.url.path, exc)
        return JSONResponse({"error": "storage unavailable, retry later"}, status_code=503, headers={"Retry-After": "5"})

    return app
