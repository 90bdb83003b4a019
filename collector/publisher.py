"""From accepted spans to the Kafka span topic, through the spool, at-least-once.

``publish(spans)`` encodes one OTLP message per trace id (keyed by it, ``meshscope.wire``) and
appends the messages to the on-disk spool before the HTTP answer is sent; a sender thread reads
the spool in order and produces to Kafka. So a broker that is away costs nothing but spool space
(503 + Retry-After when full), and a killed collector re-sends its spool when it starts again.

Why segments are kept until the writers' consumer group has *committed* them, not merely until
the broker acknowledged them: a broker may lose acknowledged messages (tansu's memory storage does
when killed; so does any Kafka with ``acks=1`` or unclean leader election). The publisher watches
the offsets it is given and the group's committed offsets; when either goes backwards, the broker
has lost its log, and everything still spooled is sent again. The writer is idempotent, so the
duplicates this brings never show in query results.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from collector.metrics import Metrics
from collector.spool import Spool
from meshscope.wire import encode_spans, spans_by_trace

logger = logging.getLogger(__name__)

_READ_BATCH = 5000
# Kafka's default message.max.bytes is 1 MB: a trace whose spans encode larger goes in several
# messages (same key, so same partition and order).
MAX_MESSAGE_BYTES = 900_000
_CHECK_COMMITTED_S = 1.0


class SpanPublisher:
    def __init__(
        self,
        spool: Spool,
        bootstrap: str,
        topic: str,
        consumer_group: str,
        metrics: Metrics,
        retain_until_committed: bool = True,
    ) -> None:
        self.spool = spool
        self.bootstrap = bootstrap
        self.topic = topic
        self.consumer_group = consumer_group
        self.metrics = metrics
        self.retain_until_committed = retain_until_committed
        self.kafka_ok = False
        self._producer: KafkaProducer | None = None
        self._offsets_reader: KafkaConsumer | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cursor = spool.start()
        # per spool segment, the highest offset produced for each partition
        self._segment_offsets: dict[int, dict[int, int]] = defaultdict(dict)
        self._last_produced: dict[int, int] = {}
        self._last_committed: dict[int, int] = {}
        self._last_check = 0.0

    # ------------------------------------------------------------------ request side

    def publish(self, spans: list[dict]) -> None:
        """Spool ``spans`` as one message per trace; raises SpoolFullError (nothing spooled)."""
        records = [(trace_id.encode(), value) for trace_id, group in spans_by_trace(spans) for value in _encode(group)]
        self.spool.append(records)
        if not self.kafka_ok:
            self.metrics.inc("meshscope_spans_spooled_total", len(spans))
        self._wake.set()

    # ------------------------------------------------------------------ sender thread

    def start(self) -> SpanPublisher:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="span-publisher", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop the sender (idempotent); what is not yet sent stays spooled for the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        for client in (self._producer, self._offsets_reader):
            if client is not None:
                try:
                    client.close(timeout=1) if isinstance(client, KafkaProducer) else client.close()
                except Exception:
                    logger.debug("closing a Kafka client failed", exc_info=True)
        self._producer = self._offsets_reader = None
        self.spool.close()

    def pending(self) -> bool:
        """True while spooled records are not yet acknowledged by the broker."""
        return bool(self.spool.read(self._cursor, 1))

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                sent = self._send_some()
                self._maybe_release()
                backoff = 0.1
                if not sent:
                    self._wake.wait(0.2)
                    self._wake.clear()
            except Exception as exc:
                self.kafka_ok = False
                self.metrics.inc("meshscope_publish_errors_total")
                logger.warning("publishing to Kafka failed (%s); spans stay spooled, retrying in %.1fs", exc, backoff)
                self._drop_clients()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _drop_clients(self) -> None:
        for client in (self._producer, self._offsets_reader):
            if client is not None:
                try:
                    client.close(timeout=0) if isinstance(client, KafkaProducer) else client.close()
                except Exception:
                    pass
        self._producer = self._offsets_reader = None

    def _producer_client(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = KafkaProducer(
                bootstrap_servers=self.bootstrap.split(","),
                acks="all",
                linger_ms=5,
                compression_type="lz4",
                batch_size=256 * 1024,
                max_request_size=16 * 1024 * 1024,
                request_timeout_ms=5000,
                max_block_ms=5000,
                retries=2,
            )
        return self._producer

    def _send_some(self) -> int:
        records = self.spool.read(self._cursor, _READ_BATCH)
        if not records:
            return 0
        producer = self._producer_client()
        futures = [(position, producer.send(self.topic, key=key, value=value)) for position, key, value in records]
        producer.flush(timeout=15)
        spans = 0
        for position, future in futures:
            metadata = future.get(timeout=0)
            partition, offset = metadata.partition, metadata.offset
            if offset <= self._last_produced.get(partition, -1):
                self._rewind(f"partition {partition} offsets restarted at {offset}")
                return len(futures)
            self._last_produced[partition] = offset
            segment_offsets = self._segment_offsets[position[0]]
            segment_offsets[partition] = max(offset, segment_offsets.get(partition, -1))
            self._cursor = position
            spans += 1
        self.kafka_ok = True
        self.metrics.inc("meshscope_messages_published_total", spans)
        return len(futures)

    def _rewind(self, why: str) -> None:
        logger.warning("the broker lost its log (%s): re-sending every spooled message", why)
        self.metrics.inc("meshscope_publish_rewinds_total")
        self._cursor = self.spool.start()
        self._segment_offsets.clear()
        self._last_produced.clear()
        self._last_committed.clear()

    def _committed(self) -> dict[int, int | None]:
        if self._offsets_reader is None:
            self._offsets_reader = KafkaConsumer(
                bootstrap_servers=self.bootstrap.split(","), group_id=self.consumer_group,
                enable_auto_commit=False, request_timeout_ms=5000,
            )
        partitions = self._offsets_reader.partitions_for_topic(self.topic) or set()
        return {p: self._offsets_reader.committed(TopicPartition(self.topic, p)) for p in partitions}

    def _maybe_release(self) -> None:
        now = time.monotonic()
        if now - self._last_check < _CHECK_COMMITTED_S:
            return
        self._last_check = now
        cursor_segment = self._cursor[0]
        if not self.retain_until_committed:
            self._release_through(lambda segment: True, cursor_segment)
            return
        committed = self._committed()
        for partition, previous in self._last_committed.items():
            current = committed.get(partition)
            if current is None or current < previous:
                self._rewind(f"committed offset of partition {partition} went from {previous} to {current}")
                return
        self._last_committed = {p: c for p, c in committed.items() if c is not None}

        def is_committed(segment: int) -> bool:
            offsets = self._segment_offsets.get(segment)
            if offsets is None:
                return self.spool.segment_size(segment) == 0
            return all((committed.get(p) or 0) > offset for p, offset in offsets.items())

        self._release_through(is_committed, cursor_segment)

    def _release_through(self, is_safe, cursor_segment: int) -> None:
        segments = self.spool.segments()
        active = self.spool.active_segment()
        # the active segment, fully sent and safe, is closed so that it can go too
        caught_up = not self.spool.read(self._cursor, 1)
        if caught_up and cursor_segment == active and self._segment_offsets.get(active) and is_safe(active):
            self.spool.roll()
            cursor_segment = active + 1
            self._cursor = (cursor_segment, 0)
        release_before = None
        for segment in segments:
            if segment >= cursor_segment or not is_safe(segment):
                break
            release_before = segment + 1
        if release_before is not None:
            self.spool.release(release_before)
            for segment in [s for s in self._segment_offsets if s < release_before]:
                del self._segment_offsets[segment]
        self.metrics.set("meshscope_spool_bytes", self.spool.size_bytes)


def _encode(spans: list[dict]) -> list[bytes]:
    """One message for the spans of a trace, or several when one would be too large."""
    value = encode_spans(spans)
    if len(value) <= MAX_MESSAGE_BYTES or len(spans) == 1:
        return [value]
    middle = len(spans) // 2
    return _encode(spans[:middle]) + _encode(spans[middle:])
