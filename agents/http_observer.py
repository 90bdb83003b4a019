"""HTTP/1.1 observer: the thin glue between ``HttpConversation`` and ``Telemetry``.

Trace context (``tracecontext``) and when the agent changes request bytes -- the only change it
ever makes, and only to the header block of a request head:

- Inbound listener, request carrying a trace id and span id (B3 multi, ``b3`` or ``traceparent``):
  forwarded untouched. The SERVER span joins the caller's span (same span id, ``shared: true``,
  Zipkin's B3 convention), so whatever the service forwards is already its context.
- Inbound listener, request without ids (none at all, or only a sampling flag such as ``b3: 0``):
  the SERVER span starts a trace, and its context is inserted before the blank line that ends the
  head (``X-B3-TraceId``, ``X-B3-SpanId``, ``X-B3-Sampled`` and ``traceparent``), replacing a
  sampling-only header if there was one, so that a service that forwards headers links its calls.
- Outbound listener, every request: the CLIENT span is a new child of the context the request
  carries (else of the one inbound request in flight, else a new trace); the request's
  trace-context headers are replaced by the CLIENT span's (in the formats the request used, B3
  multi and ``traceparent`` when it had none) so that the dependency's SERVER span joins it.
- ``propagate=False`` (``MESHSCOPE_PROPAGATE_CONTEXT=false``): nothing is ever changed.

Metrics count every request: per endpoint ``METHOD /normalized/route``, status class (``2xx``..,
``aborted`` when the connection ended before a response, ``unknown`` when the parser lost the
stream), errors (5xx and aborted), body sizes and the total time from the request's first byte
to the response's last.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import math

from agents import routes, tracecontext
from agents.http_parser import ABORTED, DESYNCED, UNKNOWN, Exchange, HttpConversation
from agents.observer import ListenerContext, Telemetry
from agents.tracecontext import may_carry_context

logger = logging.getLogger(__name__)

_STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
_routes_memo = routes.memo  # its lookup inlined in _finish; normalize() fills it
_pop_new_trace = tracecontext.NEW_TRACES.pop  # new traces come pre-drawn (see tracecontext)


@functools.lru_cache(maxsize=1024)
def _ip_field(host: str) -> tuple[str, str] | None:
    """("ipv4"|"ipv6", address) for an IP literal; None for a host name."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.is_unspecified:  # a listener on 0.0.0.0 says nothing about where the service is
        return None
    return ("ipv4" if ip.version == 4 else "ipv6"), str(ip)


def _endpoint_address(address: str) -> dict:
    """A Zipkin endpoint's ip and port fields from ``host:port``."""
    host, _, port = address.rpartition(":")
    endpoint: dict = {}
    field = _ip_field(host.strip("[]"))
    if field is not None:
        endpoint[field[0]] = field[1]
    if port.isdigit() and int(port):
        endpoint["port"] = int(port)
    return endpoint


# An exchange's trace state (``Exchange.tag``), a plain tuple: built on every request, and a tuple
# is the cheapest object to build (no __init__ call): (trace_id, span_id, parent_id, sampled, debug,
# shared), read through these indexes.
TRACE_ID, SPAN_ID, PARENT_ID, SAMPLED, DEBUG, SHARED = range(6)


class HttpObserver:
    """``ConnectionObserver`` for one HTTP/1.1 connection. Never raises into the proxy."""

    __slots__ = (
        "context", "telemetry", "conversation", "inbound", "kind", "client", "propagate", "_slow_ms",
        "_counted_desync", "_add", "_cap", "_started", "_finished", "_remote", "_known", "_sample_below", "_defer",
    )

    def __init__(self, context: ListenerContext, telemetry: Telemetry, *, propagate: bool | None = None) -> None:
        self.context = context
        self.telemetry = telemetry
        self.inbound = context.direction == "inbound"
        self.kind = "http.server" if self.inbound else "http.client"
        self.propagate = getattr(telemetry, "propagate", True) if propagate is None else propagate
        self.conversation = HttpConversation(self._on_request_head)
        self.client: dict = {}
        self._slow_ms = getattr(telemetry, "slow_ms", math.inf)
        self._counted_desync = False
        self._remote = context.remote_service
        # optional fast paths of agents.telemetry.Recorder, looked up once per connection
        self._add = getattr(telemetry, "add", None)
        self._defer = getattr(telemetry, "defer", None)
        self._cap = getattr(telemetry, "endpoint", None)
        track = self.inbound and getattr(telemetry, "track_inbound", True)
        self._started = getattr(telemetry, "inbound_started", None) if track else None
        self._finished = getattr(telemetry, "inbound_finished", None) if track else None
        # a new trace's head-sampling decision, inlined when the telemetry exposes its threshold
        self._sample_below = getattr(telemetry, "sample_below", None)
        known = getattr(telemetry, "known_endpoints", None)
        self._known = known(self.kind, self._remote) if known is not None else None

    def connection_made(self, client_address: tuple | None) -> None:
        """Optional hook: the proxy tells who the client is (a SERVER span's remote endpoint)."""
        if client_address:
            self.client = _endpoint_address(f"{client_address[0]}:{client_address[1]}")

    # ------------------------------------------------------------------ ConnectionObserver

    def client_data(self, data: bytes, now_ns: int) -> bytes:
        conversation = self.conversation
        try:
            out = conversation.feed_request(data, now_ns)
        except Exception:  # a bug must never cost traffic: fall back to raw forwarding
            logger.exception("HTTP observer failed on request bytes; passing the connection through")
            conversation.state = DESYNCED
            out = conversation.flush_request() + data
        if conversation.finished:
            self._finish_all()
        if conversation.state == DESYNCED:
            self._count_desync(len(data))
        return out

    def server_data(self, data: bytes, now_ns: int) -> None:
        conversation = self.conversation
        try:
            conversation.feed_response(data, now_ns)
        except Exception:
            logger.exception("HTTP observer failed on response bytes; passing the connection through")
            conversation.state = DESYNCED
        finished = conversation.finished
        if finished:  # _finish_all, inlined: a response finishes an exchange on every request
            conversation.finished = []
            for exchange in finished:
                try:
                    self._finish(exchange)
                except Exception:
                    logger.exception("HTTP observer failed to account for an exchange")
        if conversation.state == DESYNCED:
            self._count_desync(len(data))

    def client_eof(self, now_ns: int) -> bytes:
        """Optional hook: the client half-closed; bytes held back (a partial head) go out now."""
        return self.conversation.flush_request()

    def is_idle(self) -> bool:
        """Optional hook: no request in progress (a draining proxy may close the connection)."""
        c = self.conversation
        return c.state == "http" and not c.pending and not c._in_head and not c._held and not c._head_buf

    def closed(self, now_ns: int) -> None:
        try:
            self.conversation.close(now_ns)
            self._finish_all()
        except Exception:
            logger.exception("HTTP observer failed at connection close")

    # ------------------------------------------------------------------ internals

    def _count_desync(self, size: int) -> None:
        telemetry = self.telemetry
        if not self._counted_desync:
            self._counted_desync = True
            if hasattr(telemetry, "desynced"):
                telemetry.desynced += 1
            logger.debug("HTTP stream desynced on %s: %s", self.context.listen_address, self.conversation.desync_reason)
        if hasattr(telemetry, "unparsed_bytes"):
            telemetry.unparsed_bytes += size

    def _on_request_head(self, exchange: Exchange) -> bytes | None:
        telemetry = self.telemetry
        head = exchange.head
        incoming = tracecontext.extract(head) if may_carry_context(head) else None
        replacement = None
        if incoming is None and self.inbound:
            # the common case: a new trace, drawn in advance with its header lines (tracecontext)
            try:
                trace_id, span_id, key, sampled_lines, unsampled_lines = _pop_new_trace()
            except IndexError:
                trace_id, span_id, key, sampled_lines, unsampled_lines = tracecontext.new_trace()
            below = self._sample_below
            # Recorder.should_sample's rule for a trace without a decision, inlined
            sampled = telemetry.should_sample(trace_id, None) if below is None else key < below
            state = (trace_id, span_id, "", sampled, False, False)
            if self.propagate:
                replacement = head[:-2] + (sampled_lines if sampled else unsampled_lines)
        elif self.inbound and incoming.span_id:
            state = (
                incoming.trace_id, incoming.span_id, incoming.parent_id,
                telemetry.should_sample(incoming.trace_id, incoming.sampled), incoming.debug, True,
            )
        else:
            if self.inbound:
                parent_trace, parent_span, parent_sampled = "", "", incoming.sampled
            elif incoming is not None and incoming.span_id:
                parent_trace, parent_span, parent_sampled = incoming.trace_id, incoming.span_id, incoming.sampled
            else:
                current = telemetry.current_inbound_context()
                if current is not None:
                    parent_trace, parent_span, parent_sampled = current.trace_id, current.span_id, current.sampled
                else:
                    parent_trace, parent_span, parent_sampled = "", "", incoming.sampled if incoming else None
            trace_id = parent_trace or tracecontext.new_trace_id()
            debug = bool(incoming and incoming.debug)
            state = (
                trace_id, tracecontext.new_span_id(), parent_span,
                True if debug else telemetry.should_sample(trace_id, parent_sampled), debug, False,
            )
            if self.propagate:
                formats = incoming.formats if incoming is not None and incoming.span_id else (tracecontext.B3_MULTI | tracecontext.W3C)
                headers = tracecontext.headers_for(state[TRACE_ID], state[SPAN_ID], state[PARENT_ID], state[SAMPLED], debug, formats)
                replacement = tracecontext.rewrite(head, headers, incoming is not None)
        exchange.tag = state
        if self._started is not None:
            self._started(id(exchange), state[TRACE_ID], state[SPAN_ID], state[SAMPLED])
        return replacement

    def _finish_all(self) -> None:
        conversation = self.conversation
        finished, conversation.finished = conversation.finished, []
        for exchange in finished:
            try:
                self._finish(exchange)
            except Exception:
                logger.exception("HTTP observer failed to account for an exchange")

    def _finish(self, exchange: Exchange) -> None:
        if self._finished is not None:
            self._finished(id(exchange))  # at once: outbound observers read what is in flight
        if self._defer is not None:
            # Not now: this runs right after the response was written to the client, and whatever
            # the agent does then, on a busy machine, holds up the client it has just woken (30 µs
            # of work there added ~45 µs to bench-http's fixed-rate latency). The recorder
            # accounts for it soon, in a batch, with warm caches.
            self._defer(self, exchange)
        else:
            self.account(exchange)

    def account(self, exchange: Exchange) -> None:
        """The exchange's metrics, and its span when it is sampled, errs or is slow."""
        state: tuple | None = exchange.tag
        status = exchange.status
        outcome = exchange.outcome
        if outcome == ABORTED:
            status_class, error = ABORTED, True
        elif outcome == UNKNOWN and not status:
            status_class, error = UNKNOWN, False
        else:
            status_class = _STATUS_CLASSES.get(status // 100, UNKNOWN)
            error = status >= 500
        method = exchange.method
        target = exchange.target
        endpoint = method + " " + (_routes_memo.get(target) or routes.normalize(target))
        duration_ns = exchange.response_end_ns - exchange.request_start_ns
        if duration_ns < 0:
            duration_ns = 0
        duration_ms = duration_ns / 1e6
        if self._add is not None:
            if endpoint not in self._known:
                endpoint = self._cap(self.kind, self._remote, endpoint)
            self._add((self.kind, self._remote, endpoint, method, status_class, ""), duration_ms, error, 0,
                      exchange.request_body_bytes, exchange.response_body_bytes,
                      (exchange.response_end_ns + self.telemetry.wall_offset_ns) / 1e9)
        else:
            self.telemetry.observe(
                kind=self.kind, endpoint=endpoint, method=method, status_class=status_class,
                remote_service=self._remote, database="", duration_ms=duration_ms, error=error,
                request_bytes=exchange.request_body_bytes, response_bytes=exchange.response_body_bytes,
            )
        if state is None or not (state[SAMPLED] or error or duration_ms >= self._slow_ms):
            return
        self.telemetry.emit_span(self._span(exchange, state, endpoint, status_class, error, duration_ns))

    def _span(self, exchange: Exchange, state: tuple, endpoint: str, status_class: str, error: bool, duration_ns: int) -> dict:
        context = self.context
        offset = getattr(self.telemetry, "wall_offset_ns", 0)
        tags = {
            "http.method": exchange.method,
            "http.path": routes.path_of(exchange.target),
            "http.route": endpoint.partition(" ")[2] or endpoint,
            "service.instance.id": context.instance,
        }
        if context.version:
            tags["service.version"] = context.version
        if exchange.status:
            tags["http.status_code"] = str(exchange.status)
        if exchange.request_body_bytes:
            tags["http.request.size"] = str(exchange.request_body_bytes)
        if exchange.response_body_bytes:
            tags["http.response.size"] = str(exchange.response_body_bytes)
        if exchange.response_start_ns:
            tags["http.ttfb_ms"] = f"{(exchange.response_start_ns - exchange.request_start_ns) / 1e6:.3f}"
        if error:
            tags["error"] = str(exchange.status) if exchange.status >= 500 else status_class
        local = {"serviceName": context.service, **_endpoint_address(context.listen_address if self.inbound else "")}
        if self.inbound:
            remote = dict(self.client)
        else:
            remote = {"serviceName": context.remote_service, **_endpoint_address(context.upstream_address)}
        span = {
            "traceId": state[TRACE_ID],
            "id": state[SPAN_ID],
            "kind": "SERVER" if self.inbound else "CLIENT",
            "name": f"{exchange.method.lower()} {tags['http.route']}",
            "timestamp": (exchange.request_start_ns + offset) // 1000,
            "duration": max(duration_ns // 1000, 1),
            "localEndpoint": local,
            "tags": tags,
        }
        if state[PARENT_ID]:
            span["parentId"] = state[PARENT_ID]
        if remote:
            span["remoteEndpoint"] = remote
        if state[SHARED]:
            span["shared"] = True
        if state[DEBUG]:
            span["debug"] = True
        return span
