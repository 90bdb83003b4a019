"""The writer stores a batch in its own thread while it polls the next: the offsets it commits are
always those of batches already stored, never those of the batch being built or being stored.

The consumer here is a stand-in that hands out records and records commits (the Kafka path has
its real end-to-end and crash tests in test_crash.py); the store is the real one."""

from __future__ import annotations

import threading
import time

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

    def poll(self, timeout_ms: int, max_records: int) -> dict:
        if not self.records:
            time.sleep(timeout_ms / 1000)
            return {}
        return {TopicPartition(TOPIC, 0): [self.records.pop(0)]}

    def assignment(self) -> set:
        return {TopicPartition(TOPIC, 0)}

    def highwater(self, partition):
        return None

    def commit(self, offsets: dict) -> None:
        self.commits.append((offsets[TopicPartition(TOPIC, 0)].offset, list(self.stored_offsets)))


def test_only_stored_batches_are_committed(clickhouse, monkeypatch):
    stored_offsets: list[int] = []  # the next offset after each stored batch, in store order
    real_store = writer_module.store_batch

    def slow_store(client, database, spans, *args, **kwargs):
        time.sleep(0.15)  # long enough for the next polls to land while this batch is stored
        real_store(client, database, spans, *args, **kwargs)
        stored_offsets.append(int(spans[-1]["id"], 16))  # the span id is its offset + 1

    monkeypatch.setattr(writer_module, "store_batch", slow_store)
    records = [Record(offset, encode_spans([{"traceId": f"{offset + 1:032x}", "id": f"{offset + 1:016x}", "name": "get",
                                              "timestamp": 1_700_000_000_000_000, "localEndpoint": {"serviceName": "svc"}}]))
               for offset in range(12)]
    settings = ServerSettings(clickhouse_url=clickhouse.url, clickhouse_database=clickhouse.database, spans_topic=TOPIC,
                              writer_batch_size=3, writer_batch_ms=10_000)
    writer = Writer(settings, clickhouse.client, Metrics())
    consumer = ScriptedConsumer(records, stored_offsets)
    consuming = threading.Thread(target=writer._consume, args=(consumer,))
    consuming.start()
    deadline = time.monotonic() + 30
    while len(stored_offsets) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    writer._stop.set()
    consuming.join(30)
    assert stored_offsets == [3, 6, 9, 12]
    # every commit names a batch stored before it, in order, and the last batch is committed on stop
    assert [offset for offset, _ in consumer.commits] == [3, 6, 9, 12]
    assert all(offset in stored_then for offset, stored_then in consumer.commits)
