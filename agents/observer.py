"""The seam between the proxy and the protocol decoders.

The proxy (agents/proxy.py) owns sockets and forwarding. For each accepted connection it asks the
listener's protocol ("http", "mysql", "tcp") for a ``ConnectionObserver`` and feeds it the bytes
of both directions with a monotonic timestamp. An observer never raises into the proxy and never
blocks: what it derives (spans, metric observations) goes to the ``Telemetry`` sink, which only
appends to in-memory aggregates or a bounded queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(slots=True, frozen=True)
class ListenerContext:
    """What an observer knows about where it sits."""

    service: str  # the service this agent runs beside
    instance: str
    version: str
    direction: str  # "inbound" (SERVER spans) or "outbound" (CLIENT spans)
    remote_service: str  # outbound: the dependency's name; inbound: ""
    listen_address: str  # host:port the agent listens on
    upstream_address: str  # host:port it forwards to
    protocol: str  # "http", "mysql" or "tcp"


@dataclass(slots=True, frozen=True)
class TraceContext:
    trace_id: str  # 16 or 32 lowercase hex
    span_id: str  # 16 lowercase hex
    sampled: bool | None = None


class Telemetry(Protocol):
    """Where observers put what they derive. Implementations must be cheap and never block."""

    def emit_span(self, span: dict) -> None:
        """A finished Zipkin v2 span (dict, JSON v2 shape, microsecond timestamp/duration)."""

    def observe(
        self,
        *,
        kind: str,
        endpoint: str,
        method: str,
        status_class: str,
        remote_service: str,
        database: str,
        duration_ms: float,
        error: bool,
        rows: int = 0,
        request_bytes: int = 0,
        response_bytes: int = 0,
    ) -> None:
        """One request or statement, counted into the current interval's latency record."""

    def should_sample(self, trace_id: str, sampled: bool | None) -> bool:
        """Head sampling decision for a new span (errors and slow requests are kept regardless)."""

    def current_inbound_context(self) -> TraceContext | None:
        """The trace context of the inbound request in flight, when exactly one is (so that an
        outbound call or SQL statement made while serving it can be its child), else None."""


class ConnectionObserver(Protocol):
    def client_data(self, data: bytes, now_ns: int) -> bytes:
        """Bytes from the client; returns the bytes to forward upstream (normally ``data`` itself;
        the HTTP observer may return them with trace-context headers inserted)."""

    def server_data(self, data: bytes, now_ns: int) -> None:
        """Bytes from the upstream server, forwarded to the client untouched."""

    def closed(self, now_ns: int) -> None:
        """The connection ended (either side); finish or abandon what is pending."""
