"""The agent's ``Telemetry``: what observers feed, kept in memory until the exporter takes it.

Hot path only: ``observe`` adds to the current interval's ``LatencyRecord`` (a dict keyed like the
storage row), ``emit_span`` appends to a bounded deque (full: drop and count). The event loop
rotates intervals (``rotate``, also done lazily by ``observe``), so the current dict is only ever
touched by the loop thread; the exporter thread takes closed intervals and spans through deques,
whose append/popleft are atomic. A key's record leaves exactly once per interval.

An observer may also ``defer`` its accounting of a finished exchange: the exchange waits in
``pending`` (at most ``PENDING_BATCH``, and never past the loop's next ``rotate``, every half
second) and is accounted with the others in one pass, each at its own time (``add``'s ``at``).
An exchange's accounting with cold caches, after its response went out, costs the request's
client more than its own CPU time (see ``HttpObserver``); in a batch it runs warm.
"""

from __future__ import annotations

import logging
import time
from collections import deque

from agents.observer import TraceContext
from agents.tracecontext import sample_key
from meshscope.wire import LatencyRecord, ResourceSample

logger = logging.getLogger(__name__)

OTHER = "OTHER"
PENDING_BATCH = 64


class Recorder:
    """Per-interval latency records, finished spans and resource samples of one agent."""

    def __init__(
        self,
        service: str,
        instance: str,
        version: str,
        *,
        interval_s: int = 10,
        sample_rate: float = 1.0,
        slow_ms: float = 1000.0,
        max_endpoints: int = 500,
        max_queued_spans: int = 20000,
        clock=time.time,
    ) -> None:
        self.service, self.instance, self.version = service, instance, version
        self.interval_s = interval_s
        self.sample_rate = sample_rate
        self.sample_below = int(sample_rate * 2**64)  # the observers inline should_sample's test
        self.slow_ms = slow_ms
        self.max_endpoints = max_endpoints
        self.max_queued_spans = max_queued_spans
        self._clock = clock
        # monotonic -> unix epoch, for span timestamps (observers see monotonic nanoseconds)
        self.wall_offset_ns = time.time_ns() - time.monotonic_ns()
        self._current_start = self._interval_start(clock())
        self._current_end = self._current_start + interval_s  # add() compares the clock to it only
        self._current: dict[tuple, LatencyRecord] = {}
        self.closed: deque[list[LatencyRecord]] = deque()
        self.spans: deque[dict] = deque()
        self.samples: deque[ResourceSample] = deque(maxlen=10000)
        self._endpoints: dict[tuple[str, str], set[str]] = {}
        self._inflight: dict[int, tuple[str, str, bool]] = {}
        self.pending: list[tuple] = []  # (observer, exchange) whose accounting was deferred
        # current_inbound_context() is only needed by outbound observers: the agent turns the
        # bookkeeping on when it has outbound listeners (two dict operations per request saved)
        self.track_inbound = True
        self.propagate = True  # the agent sets MESHSCOPE_PROPAGATE_CONTEXT here
        self.mysql_options = None  # the agent's MySQL decoding options (agents.mysql.observer)
        self.spans_dropped = 0
        self.requests = 0  # every observation since start (a counter the tests and bench read)
        self.desynced = 0  # connections whose traffic the parser could not follow
        self.unparsed_bytes = 0

    def _interval_start(self, now: float) -> int:
        return int(now) // self.interval_s * self.interval_s

    # ------------------------------------------------------------------ Telemetry protocol

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
        endpoint = self.endpoint(kind, remote_service, endpoint)
        self.add((kind, remote_service, endpoint, method, status_class, database), duration_ms, error, rows, request_bytes, response_bytes)

    def add(
        self, key: tuple, duration_ms: float, error: bool, rows: int, request_bytes: int, response_bytes: int, at=None,
    ) -> None:
        """``observe`` with the key ready (kind, remote_service, capped endpoint, method,
        status_class, database): the positional fast path the HTTP observer uses. ``at``: when
        the exchange ended (unix seconds), for an accounting deferred past it; else now."""
        if at is None:
            if self._clock() >= self._current_end:  # the current interval is over (end is whole seconds)
                self.rotate()
        elif at >= self._current_end:
            self._close_current(self._interval_start(at))
        record = self._current.get(key)
        if record is None:
            kind, remote_service, endpoint, method, status_class, database = key
            record = self._current[key] = LatencyRecord(
                self._current_start, self.interval_s, self.service, self.instance, self.version,
                kind, endpoint, method, status_class, remote_service, database,
            )
        record.sketch.add(duration_ms)
        if error:
            record.errors += 1
        if rows:
            record.rows += rows
        if request_bytes:
            record.request_bytes += request_bytes
        if response_bytes:
            record.response_bytes += response_bytes
        self.requests += 1

    def emit_span(self, span: dict) -> None:
        spans = self.spans
        if len(spans) >= self.max_queued_spans:
            self.spans_dropped += 1
            return
        spans.append(span)

    def defer(self, observer, exchange) -> None:
        """``observer.account(exchange)`` later, in a batch (see the module's docstring)."""
        pending = self.pending
        pending.append((observer, exchange))
        if len(pending) >= PENDING_BATCH:
            self.account_pending()

    def account_pending(self) -> None:
        pending, self.pending = self.pending, []
        for observer, exchange in pending:
            try:
                observer.account(exchange)
            except Exception:
                logger.exception("an observer failed to account for an exchange")

    def should_sample(self, trace_id: str, sampled: bool | None) -> bool:
        if sampled is not None:
            return sampled
        # consistent on the trace id, so that every agent on a trace decides the same way
        try:
            return sample_key(trace_id) < self.sample_below
        except ValueError:
            return self.sample_rate >= 1.0

    def current_inbound_context(self) -> TraceContext | None:
        inflight = self._inflight
        if len(inflight) != 1:
            return None
        trace_id, span_id, sampled = next(iter(inflight.values()))
        return TraceContext(trace_id, span_id, sampled)

    # ------------------------------------------------------------------ helpers for observers

    def known_endpoints(self, kind: str, remote_service: str) -> set[str]:
        """The set ``endpoint`` checks first (observers test membership inline)."""
        known = self._endpoints.get((kind, remote_service))
        if known is None:
            known = self._endpoints[(kind, remote_service)] = set()
        return known

    def endpoint(self, kind: str, remote_service: str, endpoint: str) -> str:
        """``endpoint``, or ``OTHER`` once ``max_endpoints`` distinct ones were seen for this
        kind and remote service (one listener's traffic)."""
        known = self._endpoints.get((kind, remote_service))
        if known is None:
            known = self._endpoints[(kind, remote_service)] = set()
        if endpoint in known:
            return endpoint
        if len(known) >= self.max_endpoints:
            return OTHER
        known.add(endpoint)
        return endpoint

    def inbound_started(self, key: int, trace_id: str, span_id: str, sampled: bool) -> None:
        self._inflight[key] = (trace_id, span_id, sampled)

    def inbound_finished(self, key: int) -> None:
        self._inflight.pop(key, None)

    # ------------------------------------------------------------------ loop side

    def _close_current(self, new_start: int) -> None:
        if self._current:
            self.closed.append(list(self._current.values()))
        self._current = {}
        self._current_start = new_start
        self._current_end = new_start + self.interval_s

    def rotate(self) -> None:
        """Close the current interval if its time is over (the loop calls this on a timer);
        deferred accounting first, into the intervals its exchanges ended in."""
        if self.pending:
            self.account_pending()
        start = self._interval_start(self._clock())
        if start > self._current_start:
            self._close_current(start)

    def close_all(self) -> None:
        """At shutdown: the partial current interval leaves now (its only publication)."""
        self.account_pending()
        self._close_current(self._current_start + self.interval_s)

    # ------------------------------------------------------------------ exporter side

    def take_closed(self) -> list[LatencyRecord]:
        records: list[LatencyRecord] = []
        closed = self.closed
        while closed:
            records.extend(closed.popleft())
        return records

    def take_spans(self, limit: int = 100000) -> list[dict]:
        spans, taken = self.spans, []
        while spans and len(taken) < limit:
            taken.append(spans.popleft())
        return taken

    def take_samples(self) -> list[ResourceSample]:
        samples, taken = self.samples, []
        while samples:
            taken.append(samples.popleft())
        return taken

    def sample(self, metric: str, value: float, timestamp_ms: int | None = None) -> None:
        stamp = int(self._clock() * 1000) if timestamp_ms is None else timestamp_ms
        self.samples.append(ResourceSample(stamp, self.service, self.instance, self.version, metric, float(value)))
