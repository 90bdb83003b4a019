"""From accepted spans to the Kafka span topic, through the spool, at-least-once.

``publish(spans)`` groups a request's traces by the partition their trace id maps to (kafka-python's
default partitioner, murmur2 of the key) and encodes one OTLP message per partition, keyed by the
id of its first trace: every trace lands in the partition it would alone, with one spool frame and
one Kafka record per partition instead of per trace (``docs/wire-model.md``). Until the sender
has learnt the topic's partition count from the broker, each trace is its own message. The
messages go to the on-disk spool before the HTTP answer is sent; a sender thread reads the spool
in order and produces to Kafka. So a broker that is away costs nothing but spool space
(503 + Retry-After when full), and a killed collector re-sends its spool when it starts again.
Spool segments are kept until the writers' consumer group has committed them, and everything
spooled is sent again when the broker lost its log (``meshscope.retention``, shared with the
agents); ``retain_until_committed=False`` deletes them once Kafka acknowledged them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from kafka import KafkaProducer

from collector.metrics import Metrics
from collector.recent import RecentSpanMessages
from collector.spool import Spool
from meshscope.retention import Retention
from meshscope.wire import span_message_groups

logger = logging.getLogger(__name__)

_READ_BATCH = 5000


class SpanPublisher:
    def __init__(
        self,
        spool: Spool,
        bootstrap: str,
        topic: str,
        consumer_group: str,
        metrics: Metrics,
        retain_until_committed: bool = True,
        recent: RecentSpanMessages | None = None,
        ensure_topics: Callable[[], None] | None = None,
    ) -> None:
        self.spool = spool
        self.bootstrap = bootstrap
        self.topic = topic
        self.consumer_group = consumer_group
        self.metrics = metrics
        self.retain_until_committed = retain_until_committed
        self.recent = recent  # for the writer thread of this process: the spans of what is spooled
        self.kafka_ok = False
        self.ensure_topics = ensure_topics  # run with each new producer (see meshscope.topics)
        self._producer: KafkaProducer | None = None
        # the topic's partition count, learnt by the sender thread; read by the request side
        self.partitions: int | None = None
        self.retention = Retention(
            spool, bootstrap, consumer_group if retain_until_committed else None,
            on_rewind=lambda: metrics.inc("meshscope_publish_rewinds_total"),
        )
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ request side

    def publish(self, spans: list[dict]) -> None:
        """Spool ``spans`` as one message per partition; raises SpoolFullError (nothing spooled)."""
        groups = span_message_groups(spans, self.partitions)
        self.spool.append_all([(key, value) for key, value, _ in groups])
        if self.recent is not None:
            # after the append: were a message consumed before it is remembered, it would decode
            for _, value, group in groups:
                self.recent.remember(value, group)
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
        self._drop_producer(timeout=1)
        self.retention.close()
        self.spool.close()

    def pending(self) -> bool:
        """True while spooled records are not yet acknowledged by the broker."""
        return self.retention.pending()

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                sent = self._send_some()
                self.retention.maybe_release()
                self.metrics.set("meshscope_spool_bytes", self.spool.size_bytes)
                backoff = 0.1
                if not sent:
                    self._wake.wait(0.2)
                    self._wake.clear()
            except Exception as exc:
                self.kafka_ok = False
                self.metrics.inc("meshscope_publish_errors_total")
                logger.warning("publishing to Kafka failed (%s); spans stay spooled, retrying in %.1fs", exc, backoff)
                self._drop_producer(timeout=0)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _drop_producer(self, timeout: float) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=timeout)
            except Exception:
                logger.debug("closing the Kafka producer failed", exc_info=True)

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
                metrics_enabled=False,  # kafka-python's own sensors, read by nothing here: ~1% of ingestion's CPU
            )
            if self.ensure_topics is not None:  # a broker that was away may have lost them
                self.ensure_topics()
        return self._producer

    def _send_some(self) -> int:
        records = self.spool.read(self.retention.cursor, _READ_BATCH)
        if not records:
            return 0
        producer = self._producer_client()
        futures = [(position, producer.send(self.topic, key=key, value=value)) for position, (key, value) in records]
        producer.flush(timeout=15)
        self.partitions = len(producer.partitions_for(self.topic))  # known now: the sends needed it
        sent = 0
        for position, future in futures:
            metadata = future.get(timeout=0)
            if not self.retention.acknowledged(position, self.topic, metadata.partition, metadata.offset):
                return len(futures)  # the broker lost its log: everything goes again
            sent += 1
        self.kafka_ok = True
        self.metrics.inc("meshscope_messages_published_total", sent)
        return len(futures)

