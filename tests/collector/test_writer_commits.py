"""The writer commits offsets only once their batch is stored, and a commit the broker refuses
leaves the same consumer consuming.

The consumer here is a stand-in that hands out records and records commits (the Kafka path has
its real end-to-end and crash tests in test_crash.py and tests/e2e); the store is the real one."""
from __future__ import annotations

import threading
import time

from kafka.errors import RebalanceInProgressError
from kafka.structs import TopicPartition

from collector import writer as writer_module
from collector.metrics import Metrics
from collector.writer import Writer
from meshscope.settings import ServerSettings
from meshscope.wire import encode_spans

TOPIC = "spans"


class Record:
    def __init__(self, offset: int, value: bytes) -> None:
        self.topic, self.partition, self.offset, self.value, self.timestamp = TOPIC, 0, offset, value, 1_700_000_000_000


class ScriptedConsumer:
    """Hands out one record per poll, then nothing; records each commit with what was stored then."""

    def __init__(self, records: list[Record], stored_offsets: list[int]) -> None:
        self.records = records
        self.stored_offsets = stored_offsets
        self.commits: list[tuple[int, list[int]]] = []
        self.position = 0  # the next offset to hand out

    def poll(self, timeout_ms: int, max_records: int) -> dict:
        if not self.records:
            time.sleep(timeout_ms / 1000)
            return {}
        record = self.records.pop(0)
        self.position = record.offset + 1
        return {TopicPartition(TOPIC, 0): [record]}

    def assignment(self) -> set:
        return {TopicPartition(TOPIC, 0)}

    def highwater(self, partition):
        return None

    def commit(self, offsets: dict | None = None) -> None:
        offset = offsets[TopicPartition(TOPIC, 0)].offset if offsets else self.position
        self.commits.append((offset, list(self.stored_offsets)))


def _records(count: int) -> list[Record]:
    """Records of one span each, whose span id is the record's offset + 1."""
    return [Record(offset, encode_spans([{"traceId": f"{offset + 1:032x}", "id": f"{offset + 1:016x}", "name": "get",
                                          "timestamp": 1_700_000_000_000_000, "localEndpoint": {"serviceName": "svc"}}]))
            for offset in range(count)]


def _consume_until(writer: Writer, consumer: ScriptedConsumer, done) -> list[BaseException]:
    """Run the writer's consume loop on ``consumer`` until ``done()``; the exceptions it raised."""
    raised: list[BaseException] = []

    def consume():
        try:
            writer._consume(consumer)
        except BaseException as exc:
            raised.append(exc)

    consuming = threading.Thread(target=consume)
    consuming.start()
    deadline = time.monotonic() + 30
    while not done() and not raised and time.monotonic() < deadline:
        time.sleep(0.05)
    writer._stop.set()
    consuming.join(30)
    return raised


def _writer(clickhouse, batch_ms: int = 10_000) -> Writer:
    settings = ServerSettings(clickhouse_url=clickhouse.url, clickhouse_database=clickhouse.database, spans_topic=TOPIC,
                              writer_batch_size=3, writer_batch_ms=batch_ms)
    return Writer(settings, clickhouse.client, Metrics())


def test_only_stored_batches_are_committed(clickhouse, monkeypatch):
    stored_offsets: list[int] = []  # the next offset after each stored batch, in store order
    real_store = writer_module.store_batch

    def slow_store(client, database, spans, *args, **kwargs):
        time.sleep(0.15)  # long enough for a commit that did not wait for the store to show
        real_store(client, database, spans, *args, **kwargs)
        stored_offsets.append(int(spans[-1]["id"], 16))  # the span id is its offset + 1

    monkeypatch.setattr(writer_module, "store_batch", slow_store)
    consumer = ScriptedConsumer(_records(12), stored_offsets)
    assert _consume_until(_writer(clickhouse), consumer, lambda: len(stored_offsets) >= 4) == []
    assert stored_offsets == [3, 6, 9, 12]
    # every commit names a batch stored before it, in order
    assert [offset for offset, _ in consumer.commits] == [3, 6, 9, 12]
    assert all(offset in stored_then for offset, stored_then in consumer.commits)


def test_a_failed_commit_leaves_the_consumer_consuming(clickhouse):
    """A commit refused during a rebalance: the batch is stored, its records come again; the same
    consumer goes on (a new one would wait for the group to give up on this one)."""
    stored_offsets: list[int] = []
    consumer = ScriptedConsumer(_records(6), stored_offsets)
    real_commit = consumer.commit
    refused = []

    def commit(offsets=None):
        if not refused:
            refused.append(offsets)
            raise RebalanceInProgressError()
        real_commit(offsets)

    consumer.commit = commit
    writer = _writer(clickhouse)
    assert _consume_until(writer, consumer, lambda: len(consumer.commits) >= 1) == []
    assert refused and [offset for offset, _ in consumer.commits] == [6]


def test_a_writer_that_caught_up_stores_its_batch_at_once(clickhouse):
    """Two records, then nothing: the part-filled batch is stored and committed once a poll comes
    back empty, long before ``writer_batch_ms`` (a minute here, past the 30 s this test waits)."""
    stored_offsets: list[int] = []
    consumer = ScriptedConsumer(_records(2), stored_offsets)
    assert _consume_until(_writer(clickhouse, batch_ms=60_000), consumer, lambda: len(consumer.commits) >= 1) == []
    assert [offset for offset, _ in consumer.commits] == [2]
    assert clickhouse.client.query(f"SELECT count() FROM {clickhouse.database}.spans").result_rows[0][0] == 2
