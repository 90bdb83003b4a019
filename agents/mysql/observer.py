"""``MySQLObserver``: the proxy's ConnectionObserver for listeners with protocol "mysql".

The proxy constructs one per proxied connection, ``MySQLObserver(context, telemetry)``, and feeds it
both directions' bytes with a monotonic timestamp (``time.monotonic_ns()``). It forwards nothing
itself (``client_data`` returns its input unchanged) and never raises. Each finished statement is
counted into ``Telemetry.observe`` (kind ``sql.client`` outbound, ``sql.server`` inbound; endpoint =
the digest; method = the statement type) and, when sampled, or when it failed or was slow, emitted
as a Zipkin v2 span (CLIENT outbound, SERVER inbound) whose parent is the sqlcommenter
``traceparent`` in the statement, else the inbound request in flight, else none.

Options, first found: the ``options`` argument; a ``mysql_options`` attribute of the telemetry
(the agent sets it from its settings); else ``AgentSettings`` from the environment, read once per
process (``MESHSCOPE_CAPTURE_SQL_PARAMS``, ``MESHSCOPE_MASK_SQL_LITERALS``, ``MESHSCOPE_SLOW_MS``),
with the telemetry's own ``slow_ms`` when it has one.
A connection the decoder loses track of is counted once in the telemetry's ``desynced`` counter
when it has one, and always in ``STATS``.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, replace
from functools import lru_cache

from agents.mysql import sql
from agents.mysql.decoder import DecoderStats, MySQLConnectionDecoder, StatementEvent
from agents.observer import ListenerContext, Telemetry

logger = logging.getLogger(__name__)

MAX_QUERY_CHARS = 2048  # longest sql.query tag (otel's max_tag_value_length idea)
MAX_PARAMS_CHARS = 1024
MAX_ERROR_CHARS = 512
# Utility commands are counted in metrics; they become spans only when they fail (pools ping a lot).
SPANLESS_COMMANDS = frozenset(("PING", "STATISTICS", "SET_OPTION", "RESET_CONNECTION", "STMT_RESET",
                               "DEBUG", "REFRESH"))


@dataclass(slots=True, frozen=True)
class MySQLOptions:
    capture_params: bool = False
    mask_literals: bool = True
    slow_ms: float = 1000.0


@lru_cache(maxsize=1)
def default_options() -> MySQLOptions:
    """The process's options from AgentSettings (environment), read once."""
    try:
        from meshscope.settings import AgentSettings, load

        settings = load(AgentSettings)
        return MySQLOptions(settings.capture_sql_params, settings.mask_sql_literals, settings.slow_ms)
    except Exception:
        logger.exception("mysql observer: agent settings unreadable, using defaults")
        return MySQLOptions()


def _options_for(telemetry: Telemetry) -> MySQLOptions:
    options = default_options()
    slow_ms = getattr(telemetry, "slow_ms", None)  # the agent's Recorder knows its --slow-ms
    if isinstance(slow_ms, (int, float)) and slow_ms > 0:
        options = replace(options, slow_ms=float(slow_ms))
    return options


@dataclass(slots=True)
class MySQLStats:
    """Process-wide counters of the MySQL decoders (for the agent's self-metrics)."""

    connections: int = 0
    statements: int = 0
    resyncs: int = 0
    abandoned: int = 0
    tls_connections: int = 0
    compressed_connections: int = 0
    opaque_streams: int = 0
    observer_errors: int = 0

    def add(self, stats: DecoderStats) -> None:
        self.statements += stats.statements
        self.resyncs += stats.resyncs
        self.abandoned += stats.abandoned
        self.tls_connections += stats.tls
        self.compressed_connections += stats.compressed
        self.opaque_streams += stats.opaque_streams


STATS = MySQLStats()


def _address(address: str) -> dict:
    host, _, port = address.rpartition(":")
    endpoint: dict = {}
    if host and host.replace(".", "").isdigit():
        endpoint["ipv4"] = host
    if port.isdigit():
        endpoint["port"] = int(port)
    return endpoint


class MySQLObserver:
    """ConnectionObserver for one MySQL connection (see the module docstring)."""

    def __init__(self, context: ListenerContext, telemetry: Telemetry,
                 options: MySQLOptions | None = None) -> None:
        self.context = context
        self.telemetry = telemetry
        self.options = options or getattr(telemetry, "mysql_options", None) or _options_for(telemetry)
        self.decoder = MySQLConnectionDecoder(capture_params=self.options.capture_params)
        self._outbound = context.direction != "inbound"
        self._kind = "sql.client" if self._outbound else "sql.server"
        self._remote_service = context.remote_service if self._outbound else ""
        self._wall_offset_ns = time.time_ns() - time.monotonic_ns()
        self._closed = False
        self._broken = False
        self._desync_counted = False
        local = {"serviceName": context.service}
        remote = {"serviceName": context.remote_service} if context.remote_service else {}
        if self._outbound:
            remote.update(_address(context.upstream_address))
        else:
            local.update(_address(context.listen_address))
        self._local_endpoint = local
        self._remote_endpoint = remote
        STATS.connections += 1

    def connection_made(self, peername) -> None:
        """Optional proxy hook: an inbound agent's SERVER spans name the client's address."""
        if not self._outbound and isinstance(peername, tuple) and len(peername) >= 2:
            self._remote_endpoint = _address(f"{peername[0]}:{peername[1]}")

    def is_idle(self) -> bool:
        """Optional proxy hook for draining: no statement in flight on this connection."""
        return self.decoder.idle

    def client_data(self, data: bytes, now_ns: int) -> bytes:
        if not self._broken:
            try:
                self._report(self.decoder.client_data(data, now_ns))
            except Exception:
                self._break()
        return data

    def server_data(self, data: bytes, now_ns: int) -> None:
        if not self._broken:
            try:
                self._report(self.decoder.server_data(data, now_ns))
            except Exception:
                self._break()

    def closed(self, now_ns: int) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if not self._broken:
                self._report(self.decoder.closed(now_ns))
            STATS.add(self.decoder.stats)
        except Exception:
            self._break()

    def _break(self) -> None:
        # A bug in our own code (or in the telemetry sink): stop decoding this connection; the
        # proxy keeps forwarding.
        STATS.observer_errors += 1
        self._broken = True
        logger.exception("mysql observer failed; connection %s no longer decoded",
                         self.context.listen_address)

    def _report(self, events: list[StatementEvent]) -> None:
        if self.decoder.stats.resyncs and not self._desync_counted:
            self._desync_counted = True
            if hasattr(self.telemetry, "desynced"):
                self.telemetry.desynced += 1
        for event in events:
            duration_ms = event.duration_ns / 1e6
            self.telemetry.observe(
                kind=self._kind, endpoint=event.digest, method=event.statement_type,
                status_class="error" if event.error else "ok", remote_service=self._remote_service,
                database=event.database, duration_ms=duration_ms, error=event.error, rows=event.rows,
                request_bytes=event.request_bytes, response_bytes=event.response_bytes,
            )
            self._maybe_span(event, duration_ms)

    def _maybe_span(self, event: StatementEvent, duration_ms: float) -> None:
        if event.command in SPANLESS_COMMANDS and not event.error:
            return
        parent = sql.traceparent(event.text) if event.text else None
        if parent is None:
            inbound = self.telemetry.current_inbound_context() if self._outbound else None
            if inbound is not None:
                parent = (inbound.trace_id, inbound.span_id, inbound.sampled)
        if parent is None:
            trace_id, parent_id, sampled = f"{random.getrandbits(128):032x}", None, None
        else:
            trace_id, parent_id, sampled = parent
        if not (event.error or duration_ms >= self.options.slow_ms
                or self.telemetry.should_sample(trace_id, sampled)):
            return
        self.telemetry.emit_span(self.span(event, trace_id, parent_id))

    def span(self, event: StatementEvent, trace_id: str, parent_id: str | None) -> dict:
        """The Zipkin v2 span of ``event`` (JSON v2 shape; empty fields omitted)."""
        tags = {"db.system": "mysql", "db.statement.type": event.statement_type,
                "db.command": event.command}
        if event.text:
            text = event.text[:MAX_QUERY_CHARS + 1]
            query = sql.mask(text) if self.options.mask_literals else text
            if event.text_truncated or len(query) > MAX_QUERY_CHARS:
                query = query[:MAX_QUERY_CHARS] + "..."
            tags["sql.query"] = query
        if event.database:
            tags["db.name"] = event.database
        if event.user:
            tags["db.user"] = event.user
        if event.rows_returned or event.result_sets:
            tags["db.rows_returned"] = str(event.rows_returned)
        if event.rows_affected:
            tags["db.rows_affected"] = str(event.rows_affected)
        if event.warnings:
            tags["db.warnings"] = str(event.warnings)
        if event.params is not None and self.options.capture_params:
            tags["sql.params"] = ", ".join(event.params)[:MAX_PARAMS_CHARS]
        if event.error_code is not None:
            tags["mysql.error_code"] = str(event.error_code)
            if event.sqlstate:
                tags["mysql.sqlstate"] = event.sqlstate
            tags["error"] = f"{event.error_code} ({event.sqlstate or 'HY000'}): {event.error_message}"[:MAX_ERROR_CHARS]
        elif event.aborted:
            tags["error"] = event.error_message or "connection closed"
        span = {
            "traceId": trace_id,
            "id": f"{random.getrandbits(64) or 1:016x}",
            "kind": "CLIENT" if self._outbound else "SERVER",
            "name": event.statement_type.lower(),
            "timestamp": (event.start_ns + self._wall_offset_ns) // 1000,
            "duration": max(1, event.duration_ns // 1000),
            "localEndpoint": self._local_endpoint,
            "tags": tags,
        }
        if parent_id:
            span["parentId"] = parent_id
        if self._remote_endpoint:
            span["remoteEndpoint"] = self._remote_endpoint
        return span
