"""The exporter thread: encodes what the ``Recorder`` collected and publishes it to Kafka.

Never awaited by the proxy. Every ``flush_interval_s`` it takes finished spans (to the spans topic,
one message per partition with the whole traces that map to it, keyed by the first one's id, as
the collector does: ``meshscope.wire.span_messages``; one per trace until the producer knows the
topic's partition count), closed metric intervals (keyed by service, to the
metrics topic) and resource samples (keyed by service, to the resources topic), appends them to
the on-disk spool and sends the spool, oldest first, while the broker answers (after a failure,
again every ``retry_interval_s``). Spooled messages are kept until the writers' consumer group
has committed them, and sent again when the broker lost its log (``meshscope.retention``, shared
with the collector). When the spool is full, acknowledged messages still waiting for the commit
make room first; beyond that messages are dropped, and their items are added to the
``telemetry.dropped`` count that is itself published.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from agents.spool import Message, Spool
from agents.telemetry import Recorder
from meshscope.retention import Retention
from meshscope.wire import encode_latency, encode_resources, span_messages

logger = logging.getLogger(__name__)

RECORDS_PER_MESSAGE = 500
SPOOL_BATCH = 500


class Publisher(Protocol):
    """Where the exporter sends messages: Kafka here; an in-memory one in the tests."""

    def publish(self, messages: list[Message]) -> list[Message]:
        """Deliver in order; return the messages that were not acknowledged. Sets ``partition``
        and ``offset`` of those acknowledged when the transport knows them."""

    def partitions(self, topic: str) -> int | None:
        """The topic's partition count once known (spans are then grouped per partition)."""

    def close(self) -> None: ...


class KafkaPublisher:
    """kafka-python producer that reports which messages were not acknowledged."""

    def __init__(
        self, bootstrap: str, send_timeout_s: float = 5.0, client_id: str = "meshscope-agent",
        ensure_topics: Callable[[], None] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.send_timeout_s = send_timeout_s
        self.client_id = client_id
        self.ensure_topics = ensure_topics  # run with each new producer (see meshscope.topics)
        self._producer = None
        self._partitions: dict[str, int] = {}  # learnt from the producer's metadata after a send

    def _get_producer(self):
        if self._producer is None:
            from kafka import KafkaProducer

            timeout_ms = int(self.send_timeout_s * 1000)
            self._producer = KafkaProducer(
                bootstrap_servers=self.bootstrap.split(","),
                client_id=self.client_id,
                acks="all",  # a leader change on a real cluster must not lose acknowledged telemetry
                linger_ms=20,
                retries=3,
                max_block_ms=timeout_ms,
                request_timeout_ms=timeout_ms,
                delivery_timeout_ms=timeout_ms * 2 + 100,
                reconnect_backoff_max_ms=2000,
            )
            if self.ensure_topics is not None:  # the broker answered: the topics before the first send
                self.ensure_topics()
        return self._producer

    def publish(self, messages: list[Message]) -> list[Message]:
        """Send and wait; returns the messages not acknowledged, in their order."""
        if not messages:
            return []
        from kafka.errors import KafkaError

        try:
            producer = self._get_producer()
        except Exception as exc:  # NoBrokersAvailable and friends: the broker is away
            logger.info("Kafka producer unavailable (%s)", exc)
            return list(messages)
        futures = []
        for index, message in enumerate(messages):
            try:
                futures.append(producer.send(message.topic, key=message.key, value=message.value))
            except KafkaError as exc:  # metadata not available within max_block_ms
                logger.info("Kafka send failed (%s)", exc)
                failed = self._settle(producer, messages[:index], futures) + list(messages[index:])
                self.close(timeout=0)
                return failed
        return self._settle(producer, messages, futures)

    def _settle(self, producer, messages: list[Message], futures: list) -> list[Message]:
        try:
            producer.flush(timeout=self.send_timeout_s)
        except Exception as exc:  # KafkaTimeoutError: some are still in flight
            logger.info("Kafka flush incomplete (%s)", exc)
        failed = []
        for message, future in zip(messages, futures):
            if future.is_done and future.succeeded():
                message.partition, message.offset = future.value.partition, future.value.offset
                if message.topic not in self._partitions:
                    self._partitions[message.topic] = len(producer.partitions_for(message.topic))  # known: it was sent
            else:
                failed.append(message)
        if failed:
            # Start over with a fresh producer once the broker is back: its metadata request
            # recreates topics a restarted broker lost (a tansu memory-storage broker otherwise
            # acknowledges produce requests for the vanished topics and keeps nothing).
            self.close(timeout=0)
        return failed

    def partitions(self, topic: str) -> int | None:
        return self._partitions.get(topic)

    def close(self, timeout: float = 1.0) -> None:
        self._partitions.clear()  # the next producer learns them again (a restarted broker may differ)
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=timeout)
            except Exception:
                logger.exception("closing the Kafka producer")


class Exporter:
    """Runs the export loop in a daemon thread; ``stop()`` flushes and is idempotent.

    ``retention`` decides when spooled messages may go (default: as soon as they are sent)."""

    def __init__(
        self,
        recorder: Recorder,
        publisher: Publisher,
        spool: Spool,
        *,
        spans_topic: str,
        metrics_topic: str,
        resources_topic: str,
        retention: Retention | None = None,
        flush_interval_s: float = 1.0,
        resource_interval_s: float = 10.0,
        retry_interval_s: float = 2.0,
        resource_sampler: Callable[[], None] | None = None,
    ) -> None:
        self.recorder = recorder
        self.publisher = publisher
        self.spool = spool
        self.retention = retention or Retention(spool, "", None)
        self.spans_topic, self.metrics_topic, self.resources_topic = spans_topic, metrics_topic, resources_topic
        self.flush_interval_s = flush_interval_s
        self.resource_interval_s = resource_interval_s
        self.retry_interval_s = retry_interval_s
        self.resource_sampler = resource_sampler
        self.published_messages = 0
        self.spool_dropped_items = 0
        self.broker_up = True
        self._next_retry = 0.0
        self._next_resources = time.monotonic() + resource_interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="meshscope-exporter", daemon=True)
        self._stopped = False

    @property
    def dropped(self) -> int:
        return self.recorder.spans_dropped + self.spool_dropped_items

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval_s):
            try:
                self.flush_once()
            except Exception:  # a background loop logs and continues
                logger.exception("telemetry export failed")

    def stop(self, timeout: float = 15.0) -> None:
        """Final flush: everything collected is published or spooled before this returns."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        try:
            self.flush_once(final=True)
        except Exception:
            logger.exception("final telemetry flush failed")
        self.publisher.close()
        self.retention.close()
        self.spool.close()

    # ------------------------------------------------------------------ one round

    def collect(self, *, with_resources: bool) -> list[Message]:
        recorder = self.recorder
        messages: list[Message] = []
        spans = recorder.take_spans()
        if spans:
            partitions = self.publisher.partitions(self.spans_topic)
            for key, value, count in span_messages(spans, partitions):
                messages.append(Message(self.spans_topic, key, value, count))
        records = recorder.take_closed()
        key = recorder.service.encode()
        for start in range(0, len(records), RECORDS_PER_MESSAGE):
            chunk = records[start:start + RECORDS_PER_MESSAGE]
            messages.append(Message(self.metrics_topic, key, encode_latency(chunk), len(chunk)))
        if with_resources:
            if self.resource_sampler is not None:
                try:
                    self.resource_sampler()
                except Exception:
                    logger.exception("resource sampling failed")
            recorder.sample("telemetry.dropped", self.dropped)
            recorder.sample("telemetry.spool_bytes", self.spool.size_bytes)
            recorder.sample("proxy.desynced", recorder.desynced)  # connections the decoders lost
            recorder.sample("proxy.unparsed_bytes", recorder.unparsed_bytes)
            recorder.sample("proxy.requests", recorder.requests)
        samples = recorder.take_samples()
        if samples:
            messages.append(Message(self.resources_topic, key, encode_resources(samples), len(samples)))
        return messages

    def flush_once(self, final: bool = False) -> None:
        now = time.monotonic()
        with_resources = final or now >= self._next_resources
        if with_resources:
            self._next_resources = now + self.resource_interval_s
        self._spool(self.collect(with_resources=with_resources))
        if final or self.broker_up or now >= self._next_retry:
            self._send()
        if self.broker_up:
            self.retention.maybe_release(force=final)

    def _spool(self, messages: list[Message]) -> None:
        refused = self.spool.add(messages)
        if refused and self.retention.release_sent():
            # acknowledged messages still waiting for the writers' commit make room for new ones
            logger.warning("agent spool full: released acknowledged telemetry before the writers committed it")
            refused = self.spool.add(refused)
        self.spool_dropped_items += sum(message.items for message in refused)

    def _send(self) -> None:
        while batch := self.spool.read(self.retention.cursor, SPOOL_BATCH):
            messages = [message for _, message in batch]
            failed = self.publisher.publish(messages)
            # the acknowledged prefix moves the cursor: order is kept, a later success is sent again
            first_failed = next(i for i, message in enumerate(messages) if message is failed[0]) if failed else len(batch)
            for position, message in batch[:first_failed]:
                if not self.retention.acknowledged(position, message.topic, message.partition, message.offset):
                    break  # the broker lost its log: the cursor is back at the start
                self.published_messages += 1
            if failed:
                self._broker_down(len(failed))
                return
        if not self.broker_up:
            logger.info("Kafka reachable again: spool replayed")
        self.broker_up = True

    def _broker_down(self, count: int) -> None:
        if self.broker_up:
            logger.warning("Kafka unreachable: spooling telemetry to %s (%d messages)", self.spool.directory, count)
        self.broker_up = False
        self._next_retry = time.monotonic() + self.retry_interval_s
