"""The shop's services and call graph as plain data, for the demo orchestrator and the tests.

Every service is started with ``command(service, ...)``:

    python -m examples.shop.services.<module> --host 127.0.0.1 --port PORT \\
        [--<dependency>-url http://127.0.0.1:PORT ...] [--db-host H --db-port P --db-user U
        --db-password PW --db-name shop] [--forward-headers | --no-forward-headers]

``dependencies`` are the services it calls over HTTP (each gets a ``--<name>-url`` flag);
``uses_db`` means it also talks to MariaDB (database ``DATABASE``) through the ``--db-*`` flags.
``forwards_headers`` says whether it copies the incoming trace headers (``TRACE_HEADERS``) onto
its outbound calls, as instrumented services do; the others start a fresh context on each call.
``port`` is only a default; the orchestrator may give every service another one.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field

DATABASE = "shop"

# B3 (multi and single header) and W3C trace-context, plus the Envoy request id.
TRACE_HEADERS = (
    "x-request-id",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
    "traceparent",
    "tracestate",
)


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    module: str
    port: int
    dependencies: tuple[str, ...] = ()
    forwards_headers: bool = False
    uses_db: bool = False
    # Endpoints it serves to its callers, "METHOD /route/template" (admin endpoints excluded).
    endpoints: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict:
        return asdict(self)


SERVICES: tuple[Service, ...] = (
    Service("front-end", "examples.shop.services.frontend", 9100,
            dependencies=("catalogue", "carts", "orders", "user"), forwards_headers=True,
            endpoints=("GET /", "GET /catalogue", "GET /catalogue/{sock_id}", "GET /search",
                       "GET /cart", "POST /cart/items", "POST /orders", "GET /orders",
                       "GET /customers/{customer_id}", "POST /login")),
    Service("catalogue", "examples.shop.services.catalogue", 9101, uses_db=True,
            endpoints=("GET /catalogue", "GET /catalogue/search", "GET /catalogue/popular",
                       "GET /catalogue/{sock_id}", "GET /tags")),
    Service("carts", "examples.shop.services.carts", 9102,
            endpoints=("GET /carts/{customer_id}", "POST /carts/{customer_id}/items",
                       "DELETE /carts/{customer_id}")),
    Service("orders", "examples.shop.services.orders", 9103,
            dependencies=("carts", "payment", "shipping"), forwards_headers=True,
            endpoints=("POST /orders", "GET /orders")),
    Service("payment", "examples.shop.services.payment", 9104,
            endpoints=("POST /paymentAuth",)),
    Service("user", "examples.shop.services.user", 9105,
            endpoints=("GET /customers/{customer_id}", "POST /login")),
    Service("shipping", "examples.shop.services.shipping", 9106, dependencies=("queue",),
            endpoints=("POST /shipping",)),
    Service("queue", "examples.shop.services.queue", 9107,
            endpoints=("POST /messages", "POST /messages/take")),
    Service("queue-worker", "examples.shop.services.worker", 9108, dependencies=("queue",)),
)

BY_NAME: dict[str, Service] = {service.name: service for service in SERVICES}


def call_graph() -> set[tuple[str, str]]:
    """Every (caller, callee) edge, the database included as ``("catalogue", "mariadb")``."""
    edges = {(service.name, dependency) for service in SERVICES for dependency in service.dependencies}
    edges |= {(service.name, "mariadb") for service in SERVICES if service.uses_db}
    return edges


def dependency_flag(dependency: str) -> str:
    return f"--{dependency}-url"


def command(
    service: Service | str,
    port: int | None = None,
    dependency_urls: dict[str, str] | None = None,
    db: dict | None = None,
    host: str = "127.0.0.1",
    python: str = sys.executable,
) -> list[str]:
    """The argv that starts ``service`` listening on ``host:port``.

    ``dependency_urls`` maps each dependency name to the base URL to call it at (e.g. its agent's
    outbound listener); missing ones default to the dependency's default port. ``db`` holds
    ``host``, ``port``, ``user``, ``password`` and optionally ``database`` for a ``uses_db`` service.
    Run it with the repository root as working directory (or ``examples`` importable).
    """
    if isinstance(service, str):
        service = BY_NAME[service]
    argv = [python, "-m", service.module, "--host", host, "--port", str(port or service.port)]
    urls = dependency_urls or {}
    unknown = set(urls) - set(service.dependencies)
    if unknown:
        raise ValueError(f"{service.name} does not call {sorted(unknown)}")
    for dependency in service.dependencies:
        if dependency in urls:
            argv += [dependency_flag(dependency), urls[dependency]]
    if service.uses_db and db:
        argv += ["--db-host", str(db["host"]), "--db-port", str(db["port"]),
                 "--db-user", str(db.get("user", "root")), "--db-password", str(db.get("password", "")),
                 "--db-name", str(db.get("database", DATABASE))]
    return argv


def as_json() -> str:
    """The services and the call graph as JSON, for orchestrators not written in Python."""
    import json

    return json.dumps({"database": DATABASE, "trace_headers": list(TRACE_HEADERS),
                       "services": [service.as_dict() for service in SERVICES],
                       "call_graph": sorted(call_graph())}, indent=2)


if __name__ == "__main__":
    print(as_json())
