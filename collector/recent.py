"""Span messages this process spooled, kept by their bytes with the spans they hold, so that the
writer thread of the same `serve` process takes those spans back when the message comes to it from
Kafka instead of decoding the OTLP protobuf again (a third of ingestion's CPU time otherwise).

The writer still reads every message from Kafka and commits as before: this only skips the decode
of bytes whose decoded form is known. It holds only messages whose spans survive the OTLP round
trip unchanged (``meshscope.wire.round_trips``), so a hit gives what decoding would. A miss (another
collector's message, one sent again after a restart or a rebalance, one evicted while the broker
was away) decodes as usual.
"""

from __future__ import annotations

import threading

from meshscope.wire import round_trips

# The writer normally consumes a message within a second of its spooling: room for a few seconds of
# a busy collector. Past it the oldest go (they decode when they come), so memory stays bounded
# while the broker is away.
MAX_SPANS = 100_000


class RecentSpanMessages:
    """``remember(value, spans)`` on the request side, ``take(value)`` in the writer thread."""

    def __init__(self, max_spans: int = MAX_SPANS) -> None:
        self.max_spans = max_spans
        self._spans: dict[bytes, list[dict]] = {}  # insertion order: oldest first
        self._count = 0
        self._lock = threading.Lock()

    def remember(self, value: bytes, spans: list[dict]) -> None:
        """Keep ``spans``, the normalized spans ``value`` (their OTLP encoding) holds, unless their
        decode would differ from them."""
        if not all(map(round_trips, spans)):
            return
        with self._lock:
            if value in self._spans:  # an identical message spooled twice: the first take has it
                return
            self._spans[value] = spans
            self._count += len(spans)
            while self._count > self.max_spans:
                self._count -= len(self._spans.pop(next(iter(self._spans))))

    def take(self, value: bytes) -> list[dict] | None:
        """The spans of ``value`` if remembered (then forgotten), else None."""
        with self._lock:
            spans = self._spans.pop(value, None)
            if spans is not None:
                self._count -= len(spans)
            return spans

    def __len__(self) -> int:
        return len(self._spans)
