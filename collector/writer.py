"""The Kafka -> ClickHouse writer: at-least-once, idempotent, batched by size and time.

One consumer group reads the spans, metrics and resources topics. Records are decoded as they
are polled; a batch is inserted when it holds ``writer_batch_size`` rows, when its oldest row has
waited ``writer_batch_ms``, or when a poll finds nothing more to read (the writer has caught up:
under a steady flow batches still fill by size or time, and after a burst its last rows are
queryable within a poll's wait, 0.2 s, not ``writer_batch_ms``); offsets are committed only after
the insert succeeded. A crash before the commit re-delivers the batch: identical span rows
collapse (the spans table's fingerprint), latency and resource rows share their whole sorting key.
A commit the broker refuses (a rebalance, the broker away) only means the same: the consumer goes
on, and its next poll re-joins the group.

A span record may hold several traces (``docs/wire-model.md``): nothing here is per message but
the dead letter. A record that cannot be decoded is parked whole in ``dead_letters`` with its
topic, partition and offset, counted, and never blocks the partition. After each span insert the
dependency links of the traces touched are recomputed (``collector.links``) from the batch's
spans and those of the same traces stored before it, so links of a trace split across batches or
restarts stay exact. In `serve`, the spans of the messages this process spooled come back from
``collector.recent`` instead of being decoded again (the same spans decoding would give).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Iterable

from kafka import KafkaConsumer
from kafka.errors import KafkaError

from collector.links import LinkSpan, TraceLinkSpans, add_link_span, aggregate, link_spans_by_trace, trace_links
from collector.metrics import Metrics
from collector.recent import RecentSpanMessages
from meshscope.settings import WriterMixin
from meshscope.wire import WireError, decode_latency, decode_resources, decode_spans
from storage import zipkin_queries
from storage.writer import insert_dead_letters, insert_latency, insert_resources, insert_spans

logger = logging.getLogger(__name__)


def tune_gc() -> None:
    """Fewer cyclic-GC passes for a process that ingests: a writer batch holds tens of thousands of
    span dicts, and CPython's default (a pass every 700 allocations, a full one that walks every
    live object) then spends about half the writer's time collecting. Reference counting frees
    spans as usual; only cycles wait longer. Objects alive at start-up are frozen out of it."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)


class _Batch:
    def __init__(self) -> None:
        self.spans: list[dict] = []
        self.spans_received_us: list[int] = []  # per span: its Kafka message's timestamp
        self.latency: list = []
        self.resources: list = []
        self.dead_letters: list[tuple] = []
        self.started = 0.0

    @property
    def rows(self) -> int:
        return len(self.spans) + len(self.latency) + len(self.resources) + len(self.dead_letters)


class Writer:
    """``start()`` runs it in a thread; ``close()`` stops it (idempotent)."""

    def __init__(self, settings: WriterMixin, client, metrics: Metrics, recent: RecentSpanMessages | None = None) -> None:
        self.settings = settings
        self.recent = recent  # span messages this process spooled: their spans need no decoding
        self.client = client
        self.database = settings.clickhouse_database
        self.metrics = metrics
        self._decoders = {
            settings.spans_topic: decode_spans,
            settings.metrics_topic: decode_latency,
            settings.resources_topic: decode_resources,
        }
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.consumer: KafkaConsumer | None = None
        self.assigned = threading.Event()

    def start(self) -> Writer:
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name="kafka-writer", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._thread = None

    def _consumer(self) -> KafkaConsumer:
        s = self.settings
        return KafkaConsumer(
            *self._decoders,
            bootstrap_servers=s.kafka_bootstrap.split(","),
            group_id=s.consumer_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=s.kafka_session_timeout_ms,
            heartbeat_interval_ms=s.kafka_heartbeat_ms,
            max_poll_records=max(500, min(s.writer_batch_size, 10000)),
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024,
            metrics_enabled=False,  # kafka-python's own sensors, read by nothing here
        )

    def run(self) -> None:
        """Consume until ``close()``; connection problems are logged and retried."""
        while not self._stop.is_set():
            try:
                self.consumer = self._consumer()
                self._consume(self.consumer)
            except Exception:
                self.metrics.inc("meshscope_writer_errors_total")
                logger.exception("writer loop failed; reconnecting")
                self._stop.wait(1.0)
            finally:
                if self.consumer is not None:
                    try:
                        self.consumer.close(autocommit=False, timeout_ms=5000)
                    except Exception:
                        logger.debug("closing the consumer failed", exc_info=True)
                    self.consumer = None

    def _consume(self, consumer: KafkaConsumer) -> None:
        batch = _Batch()
        batch_s = self.settings.writer_batch_ms / 1000
        while not self._stop.is_set():
            # a pending batch is flushed when its time is up, not at the end of a longer poll
            wait_s = min(0.2, batch_s if not batch.rows else max(0.0, batch.started + batch_s - time.monotonic()))
            polled = consumer.poll(timeout_ms=int(wait_s * 1000), max_records=self.settings.writer_batch_size)
            assignment = consumer.assignment()
            if assignment:
                self.assigned.set()
            self.metrics.set("meshscope_writer_partitions", len(assignment))
            for records in polled.values():
                for record in records:
                    if not batch.rows:
                        batch.started = time.monotonic()
                    self._add(batch, record)
            self._update_lag(consumer)
            caught_up = not polled  # nothing more came within the poll's wait: waiting on only delays queries
            if batch.rows and (caught_up or batch.rows >= self.settings.writer_batch_size
                               or time.monotonic() - batch.started >= batch_s):
                if not self._flush(batch):
                    return  # stopping with an unwritten batch: not committed, so re-delivered later
                try:
                    consumer.commit()
                except KafkaError as exc:
                    # a rebalance, or the broker away: the batch comes again, harmlessly. The consumer
                    # goes on (its next poll re-joins the group): a new one could wait minutes for the
                    # group to give up on this member, consuming nothing
                    logger.warning("offset commit failed after insert (%s); records will be re-delivered", exc)
                self.metrics.inc("meshscope_writer_batches_total")
                batch = _Batch()

    def _add(self, batch: _Batch, record) -> None:
        decode = self._decoders.get(record.topic)
        try:
            if decode is None:
                raise WireError(f"unexpected topic {record.topic}")
            value = record.value or b""
            taken = self.recent.take(value) if self.recent is not None and decode is decode_spans else None
            if taken is not None:
                self.metrics.inc("meshscope_span_messages_taken_back_total")
            items = taken if taken is not None else decode(value)
            if decode is decode_spans:
                batch.spans.extend(items)
                received_us = record.timestamp * 1000 if record.timestamp and record.timestamp > 0 else time.time_ns() // 1000
                batch.spans_received_us.extend([received_us] * len(items))
            elif decode is decode_latency:
                batch.latency.extend(items)
            else:
                batch.resources.extend(items)
        except Exception as exc:  # WireError, or a span the storage mapping cannot hold
            logger.warning("parking %s[%d]@%d: %s", record.topic, record.partition, record.offset, exc)
            batch.dead_letters.append((record.topic, record.partition, record.offset, str(exc), record.value or b""))

    def _flush(self, batch: _Batch) -> bool:
        """Insert the batch, retrying until it is stored; False if stopped first."""
        delay = 0.2
        while True:
            try:
                self._insert(batch)
                return True
            except Exception:
                self.metrics.inc("meshscope_writer_errors_total")
                logger.exception("inserting a batch of %d rows failed; retrying in %.1fs", batch.rows, delay)
                if self._stop.wait(delay):
                    return False
                delay = min(delay * 2, 10.0)

    def _insert(self, batch: _Batch) -> None:
        store_batch(self.client, self.database, batch.spans, batch.latency, batch.resources, batch.dead_letters,
                    spans_received_us=batch.spans_received_us)
        self.metrics.inc("meshscope_spans_written_total", len(batch.spans))
        self.metrics.inc("meshscope_latency_records_written_total", len(batch.latency))
        self.metrics.inc("meshscope_resource_samples_written_total", len(batch.resources))
        self.metrics.inc("meshscope_messages_parked_total", len(batch.dead_letters))

    def _update_lag(self, consumer: KafkaConsumer) -> None:
        # end_offsets() is unreliable on some brokers (tansu): use the fetch high-water marks
        lag = 0
        for partition in consumer.assignment():
            highwater = consumer.highwater(partition)
            if highwater is None:
                continue
            try:
                position = consumer.position(partition, timeout_ms=0)
            except Exception:  # not known yet (just assigned)
                continue
            if position is not None:
                lag += max(highwater - position, 0)
        self.metrics.set("meshscope_consumer_lag", lag)


def store_batch(client, database: str, spans: list[dict], latency=(), resources=(), dead_letters=(),
                spans_received_us: list[int] | None = None) -> None:
    """Insert one batch and recompute the dependency links of the traces its spans belong to."""
    if spans:
        received_us = spans_received_us if spans_received_us is not None else [time.time_ns() // 1000] * len(spans)
        batch = link_spans_by_trace(spans, received_us)
        stored = stored_link_spans(client, database, batch)  # before the insert: what earlier batches stored
        insert_spans(client, database, spans, received_us)
        update_links(client, database, batch, stored)
    insert_latency(client, database, latency)
    insert_resources(client, database, resources)
    insert_dead_letters(client, database, dead_letters)


def stored_link_spans(client, database: str, trace_ids: Iterable[str]) -> dict[str, TraceLinkSpans]:
    """What the store holds of ``trace_ids``: nothing for most traces, whose spans all come in one
    batch."""
    stored: dict[str, TraceLinkSpans] = {}
    for row in zipkin_queries.link_spans(client, database, trace_ids):
        add_link_span(stored, row[0], row[8], LinkSpan._make(row[1:8]))
    return stored


def update_links(client, database: str, batch: dict[str, TraceLinkSpans], stored: dict[str, TraceLinkSpans]) -> None:
    """Recompute and store the links of the traces of ``batch`` (their link spans in this batch,
    inserted already), from those spans and ``stored``, what the store held of them before.

    Reading the stored spans before the insert, not after, costs one query that finds nothing for
    a new trace, where reading after would need to count what the store holds of every trace.
    A trace's spans all go to one partition (keyed by trace id), so one writer links it at a time.
    """
    rows = []
    for trace_id, trace in batch.items():
        ts_us, link_spans = trace.earliest_us, trace.link_spans
        before = stored.get(trace_id)
        if before is not None:
            ts_us = min(ts_us, before.earliest_us)
            link_spans = link_spans.union(before.link_spans)
        rows.append((trace_id, ts_us, aggregate(trace_links(link_spans))))
    zipkin_queries.insert_trace_links(client, database, rows, maybe_linked=stored)
