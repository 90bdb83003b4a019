"""What every shop service shares: its command line, request counters, failure injection, trace
header forwarding, HTTP clients for its dependencies, and the admin endpoints.

Admin endpoints (served by every service, never slowed or failed by injection):

- ``GET /admin/stats``: what this service counted itself (see ``Stats.snapshot``).
- ``GET /admin/traces``: the trace headers of the last requests that carried any.
- ``GET|POST /admin/slow?ms=N``: add N ms before handling each non-admin request (0 turns it off).
- ``GET|POST /admin/fail?ratio=R``: answer 503 to a fraction R of non-admin requests, exactly
  and deterministically (every 1/R-th request, by error diffusion), 0 turns it off.
- ``GET|POST /admin/reset``: turn off both injections (counters are kept).
- ``GET /health``: liveness, never slowed or failed either.

Every request is counted when its response starts, ``/admin/*`` included; a ``/admin/stats``
response does not include itself.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextvars
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import httpx
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from examples.shop import topology
from examples.shop.errors import DatabaseError, DependencyError

logger = logging.getLogger(__name__)

# The trace headers of the request being handled, copied onto outbound calls when forwarding.
incoming_trace_headers: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar(
    "incoming_trace_headers", default={})

ERROR_STATUS = 500  # a response at or above this status is an error, as the load generator counts
RECENT_TRACES = 500
# Clients drop idle connections well before servers close them, so that no request is ever sent
# on a connection the server is closing (that request would be lost, and the counts with it).
KEEPALIVE_CLIENT_S = 5.0
KEEPALIVE_SERVER_S = 30


@dataclass(slots=True)
class Counter:
    requests: int = 0
    errors: int = 0
    statuses: collections.Counter = field(default_factory=collections.Counter)

    def add(self, status: int | str) -> None:
        self.requests += 1
        if not isinstance(status, int) or status >= ERROR_STATUS:
            self.errors += 1
        self.statuses[str(status)] += 1

    def as_dict(self) -> dict:
        return {"requests": self.requests, "errors": self.errors, "statuses": dict(self.statuses)}


class Stats:
    """Counters of one service: inbound per route template and per raw path, outbound per
    dependency and request, SQL statements per template, injected delays and failures."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.routes: dict[str, Counter] = collections.defaultdict(Counter)
        self.paths: dict[str, Counter] = collections.defaultdict(Counter)
        self.calls: dict[str, dict[str, Counter]] = collections.defaultdict(lambda: collections.defaultdict(Counter))
        self.sql: collections.Counter = collections.Counter()
        self.injected = {"slowed": 0, "failed": 0}
        self.extra: dict[str, Any] = {}

    def snapshot(self) -> dict:
        return {
            "service": self.service,
            "routes": {key: counter.as_dict() for key, counter in sorted(self.routes.items())},
            "paths": {key: counter.as_dict() for key, counter in sorted(self.paths.items())},
            "calls": {dependency: {key: counter.as_dict() for key, counter in sorted(requests.items())}
                      for dependency, requests in sorted(self.calls.items())},
            "sql": dict(sorted(self.sql.items())),
            "injected": dict(self.injected),
            **self.extra,
        }


class Injection:
    """Slow and failing behaviour switched on at run time through the admin endpoints."""

    def __init__(self) -> None:
        self.slow_ms = 0
        self.fail_ratio = 0.0
        self._fail_debt = 0.0

    def should_fail(self) -> bool:
        # Error diffusion: exactly ratio * n failures after n requests, evenly spread.
        if self.fail_ratio <= 0:
            return False
        self._fail_debt += self.fail_ratio
        if self._fail_debt >= 1.0 - 1e-9:
            self._fail_debt -= 1.0
            return True
        return False

    def set_fail(self, ratio: float) -> None:
        self.fail_ratio = min(max(ratio, 0.0), 1.0)
        self._fail_debt = 0.0

    def as_dict(self) -> dict:
        return {"slow_ms": self.slow_ms, "fail_ratio": self.fail_ratio}


class ShopMiddleware:
    """Counts every request (by route template once routed) and remembers its trace headers."""

    def __init__(self, app, shop: Shop) -> None:
        self.app = app
        self.shop = shop

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        shop = self.shop
        headers = {}
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1").lower()
            if name in topology.TRACE_HEADERS:
                headers[name] = raw_value.decode("latin-1")
        if headers:
            shop.recent_traces.append({"method": scope["method"], "path": scope["path"], "headers": headers})
        incoming_trace_headers.set(headers)
        status: list[int | str] = []

        async def send_counting(message) -> None:
            if message["type"] == "http.response.start" and not status:
                status.append(message["status"])
                shop.count(scope, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_counting)
        except BaseException:
            if not status:  # the server answers 500 for an exception before the response started
                status.append(500)
                shop.count(scope, 500)
            raise


class Dependencies:
    """One keep-alive HTTP client per dependency; counts every call and its outcome."""

    def __init__(self, shop: Shop, urls: dict[str, str], timeout: float) -> None:
        self.shop = shop
        self.urls = urls
        self.timeout = timeout
        self._clients: dict[str, httpx.AsyncClient] = {}

    def client(self, dependency: str) -> httpx.AsyncClient:
        if dependency not in self._clients:
            # trust_env=False: never route the shop's traffic through a proxy from the environment.
            self._clients[dependency] = httpx.AsyncClient(
                base_url=self.urls[dependency], timeout=self.timeout, trust_env=False,
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=32,
                                    keepalive_expiry=KEEPALIVE_CLIENT_S))
        return self._clients[dependency]

    async def call(self, dependency: str, method: str, path: str, *, route: str | None = None,
                   **kwargs) -> httpx.Response:
        """Call ``dependency``; raise DependencyError on a 5xx answer or a transport error.
        ``route`` names the request in the counters (defaults to ``path``)."""
        headers = dict(kwargs.pop("headers", None) or {})
        if self.shop.forward_headers:
            headers.update(incoming_trace_headers.get())
        counter = self.shop.stats.calls[dependency][f"{method} {route or path}"]
        try:
            response = await self.client(dependency).request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            counter.add(type(exc).__name__)
            raise DependencyError(dependency, f"{type(exc).__name__}: {exc}") from exc
        counter.add(response.status_code)
        if response.status_code >= ERROR_STATUS:
            raise DependencyError(dependency, f"{method} {path} answered {response.status_code}")
        return response

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()


class Shop:
    """The per-process state of one service, reachable from handlers as ``request.app.state.shop``."""

    def __init__(self, name: str, forward_headers: bool, dependency_urls: dict[str, str],
                 timeout: float = 10.0) -> None:
        self.name = name
        self.forward_headers = forward_headers
        self.stats = Stats(name)
        self.injection = Injection()
        self.recent_traces: collections.deque = collections.deque(maxlen=RECENT_TRACES)
        self.dependencies = Dependencies(self, dependency_urls, timeout)

    def count(self, scope, status: int | str) -> None:
        method = scope["method"]
        route = scope.get("route")
        template = getattr(route, "path", None) or scope["path"]
        self.stats.routes[f"{method} {template}"].add(status)
        self.stats.paths[f"{method} {scope['path']}"].add(status)


async def apply_injection(request: Request) -> None:
    """A dependency of every route, so that an injected failure is counted under its route."""
    if request.url.path.startswith("/admin/") or request.url.path == "/health":
        return
    shop: Shop = request.app.state.shop
    if shop.injection.slow_ms > 0:
        shop.stats.injected["slowed"] += 1
        await asyncio.sleep(shop.injection.slow_ms / 1000)
    if shop.injection.should_fail():
        shop.stats.injected["failed"] += 1
        raise HTTPException(503, f"injected failure in {shop.name}")


def _admin_router() -> APIRouter:
    router = APIRouter(prefix="/admin")

    @router.get("/stats")
    async def stats(request: Request) -> dict:
        shop: Shop = request.app.state.shop
        return {**shop.stats.snapshot(), "injection": shop.injection.as_dict(),
                "forward_headers": shop.forward_headers}

    @router.get("/traces")
    async def traces(request: Request) -> dict:
        return {"requests": list(request.app.state.shop.recent_traces)}

    @router.api_route("/slow", methods=["GET", "POST"])
    async def slow(request: Request, ms: int = 0) -> dict:
        shop: Shop = request.app.state.shop
        shop.injection.slow_ms = max(ms, 0)
        return shop.injection.as_dict()

    @router.api_route("/fail", methods=["GET", "POST"])
    async def fail(request: Request, ratio: float = 0.0) -> dict:
        shop: Shop = request.app.state.shop
        shop.injection.set_fail(ratio)
        return shop.injection.as_dict()

    @router.api_route("/reset", methods=["GET", "POST"])
    async def reset(request: Request) -> dict:
        shop: Shop = request.app.state.shop
        shop.injection.slow_ms = 0
        shop.injection.set_fail(0.0)
        return shop.injection.as_dict()

    return router


Lifespan = Callable[[FastAPI], Awaitable[None]]


def create_app(shop: Shop, on_startup: Lifespan | None = None, on_shutdown: Lifespan | None = None) -> FastAPI:
    """A FastAPI app with the shop's middleware, admin endpoints and error translation."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if on_startup is not None:
            await on_startup(app)
        try:
            yield
        finally:
            if on_shutdown is not None:
                await on_shutdown(app)
            await shop.dependencies.close()

    app = FastAPI(title=f"shop {shop.name}", lifespan=lifespan, dependencies=[Depends(apply_injection)], openapi_url=None, docs_url=None, redoc_url=None)
    app.state.shop = shop
    app.include_router(_admin_router())
    app.add_middleware(ShopMiddleware, shop=shop)

    @app.exception_handler(DependencyError)
    async def dependency_failed(request: Request, exc: DependencyError) -> JSONResponse:
        return JSONResponse({"error": "dependency failed", "dependency": exc.dependency, "detail": exc.detail},
                            status_code=502)

    @app.exception_handler(DatabaseError)
    async def database_failed(request: Request, exc: DatabaseError) -> JSONResponse:
        return JSONResponse({"error": "database failed", "detail": str(exc)}, status_code=503)

    @app.get("/health")
    async def health() -> dict:
        return {"service": shop.name, "status": "ok"}

    return app


def argument_parser(service: topology.Service) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m {service.module}",
                                     description=f"The shop's {service.name} service.")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=service.port, help=f"listen port (default {service.port})")
    for dependency in service.dependencies:
        default = f"http://127.0.0.1:{topology.BY_NAME[dependency].port}"
        parser.add_argument(topology.dependency_flag(dependency), dest=f"url_{dependency}", default=default,
                            help=f"base URL of {dependency} (default {default})")
    parser.add_argument("--forward-headers", action=argparse.BooleanOptionalAction,
                        default=service.forwards_headers,
                        help=f"copy incoming trace headers onto outbound calls (default {service.forwards_headers})")
    parser.add_argument("--timeout", type=float, default=10.0, help="outbound call timeout in seconds")
    if service.uses_db:
        parser.add_argument("--db-host", default="127.0.0.1")
        parser.add_argument("--db-port", type=int, default=3306)
        parser.add_argument("--db-user", default="root")
        parser.add_argument("--db-password", default="")
        parser.add_argument("--db-name", default=topology.DATABASE)
        parser.add_argument("--db-pool", type=int, default=4, help="at most this many MariaDB connections")
    parser.add_argument("--log-level", default="warning")
    return parser


def shop_from_args(service: topology.Service, args: argparse.Namespace) -> Shop:
    urls = {dependency: getattr(args, f"url_{dependency}") for dependency in service.dependencies}
    return Shop(service.name, args.forward_headers, urls, timeout=args.timeout)


def serve(app: FastAPI, args: argparse.Namespace) -> None:
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    started = time.monotonic()
    logger.info("starting on %s:%d", args.host, args.port)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False,
                timeout_keep_alive=KEEPALIVE_SERVER_S, timeout_graceful_shutdown=5)
    logger.info("stopped after %.0f s", time.monotonic() - started)
