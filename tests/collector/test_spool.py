"""The on-disk spool (order, bound, torn-write recovery) and ingestion while Kafka is away."""

from __future__ import annotations

import orjson
import pytest
from fastapi.testclient import TestClient

from collector.app import create_app
from collector.errors import SpoolFullError
from collector.metrics import Metrics
from collector.publisher import SpanPublisher
from collector.spool import Spool
from meshscope.devbroker import free_port
from meshscope.settings import ServerSettings


def test_records_come_back_in_order_across_segments(tmp_path):
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=200)
    for n in range(50):
        spool.append_all([(f"k{n}".encode(), f"value {n}".encode())])
    assert len(spool.segments()) > 1
    position, seen = spool.start(), []
    while records := spool.read(position, 7):
        seen += [record for _, record in records]
        position = records[-1][0]
    assert seen == [(f"k{n}".encode(), f"value {n}".encode()) for n in range(50)]
    freed = spool.release(spool.segments()[-1])
    assert freed > 0 and spool.read(spool.start(), 100)[0][1][0] != b"k0"


def test_full_spool_refuses_all_of_a_request(tmp_path):
    spool = Spool(tmp_path, max_bytes=100)
    spool.append_all([(b"k", b"x" * 50)])
    with pytest.raises(SpoolFullError):
        spool.append_all([(b"k", b"y" * 10), (b"k", b"z" * 40)])
    assert [value for _, (_, value) in spool.read(spool.start(), 10)] == [b"x" * 50]


def test_torn_last_record_is_cut_on_reopen(tmp_path):
    spool = Spool(tmp_path, max_bytes=1 << 20)
    spool.append_all([(b"a", b"first"), (b"b", b"second")])
    spool.close()
    segment = sorted(tmp_path.glob("*.seg"))[-1]
    segment.write_bytes(segment.read_bytes()[:-3])  # a crash in the middle of a write
    reopened = Spool(tmp_path, max_bytes=1 << 20)
    assert [value for _, (_, value) in reopened.read(reopened.start(), 10)] == [b"first"]
    reopened.append_all([(b"c", b"third")])
    assert [value for _, (_, value) in reopened.read(reopened.start(), 10)] == [b"first", b"third"]


def test_kafka_away_spools_then_503_when_full(tmp_path, clickhouse):
    unreachable = f"127.0.0.1:{free_port()}"
    settings = ServerSettings(kafka_bootstrap=unreachable, spool_dir=tmp_path / "spool", spool_max_bytes=4096)
    metrics = Metrics()
    publisher = SpanPublisher(Spool(settings.spool_dir, settings.spool_max_bytes), unreachable, settings.spans_topic,
                              settings.consumer_group, metrics).start()
    span = {"traceId": "a" * 32, "id": "b" * 16, "name": "x" * 200, "timestamp": 1, "localEndpoint": {"serviceName": "s"}}
    statuses = []
    try:
        with TestClient(create_app(settings, publisher, lambda: clickhouse.client, metrics)) as api:
            for n in range(40):
                response = api.post("/api/v2/spans", content=orjson.dumps([{**span, "id": f"{n + 1:016x}"}]),
                                    headers={"content-type": "application/json"})
                statuses.append(response.status_code)
                if response.status_code == 503:
                    assert response.headers["retry-after"]
                    break
    finally:
        publisher.close()
    assert statuses[0] == 202 and statuses[-1] == 503
    assert metrics.get("meshscope_spans_spooled_total") == statuses.count(202)
    # what was accepted is still on disk for the next start
    reopened = Spool(tmp_path / "spool", 4096)
    assert len(reopened.read(reopened.start(), 100)) == statuses.count(202)


def test_a_huge_trace_is_split_into_messages_kafka_accepts(tmp_path):
    from meshscope.wire import MAX_SPAN_MESSAGE_BYTES as MAX_MESSAGE_BYTES
    from meshscope.wire import decode_spans

    spool = Spool(tmp_path, max_bytes=1 << 26)
    publisher = SpanPublisher(spool, "127.0.0.1:1", "spans", "group", Metrics())  # never started: nothing is sent
    spans = [{"traceId": "a" * 32, "id": f"{n + 1:016x}", "name": "q", "tags": {"sql": "y" * 2000}} for n in range(1000)]
    publisher.publish(spans)
    records = spool.read(spool.start(), 100)
    assert len(records) > 1 and all(len(value) <= MAX_MESSAGE_BYTES and key == b"a" * 32 for _, (key, value) in records)
    assert sum(len(decode_spans(value)) for _, (_, value) in records) == 1000


def test_a_batch_spanning_segments_is_read_back_in_order(tmp_path):
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=200)
    records = [(f"k{n}".encode(), f"value {n}".encode() * 3) for n in range(30)]
    spool.append_all(records[:1])
    spool.append_all(records[1:])
    assert len(spool.segments()) > 3 and all(spool.segment_size(s) <= 200 for s in spool.segments())
    assert [record for _, record in spool.read(spool.start(), 100)] == records
    spool.close()
    reopened = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=200)
    assert [record for _, record in reopened.read(reopened.start(), 100)] == records


def test_traces_of_one_partition_share_a_message_that_lands_where_each_would_alone(tmp_path):
    from kafka.partitioner.default import DefaultPartitioner

    from meshscope.wire import decode_spans

    class Cluster:  # what DefaultPartitioner reads of the producer's metadata
        def topics(self):
            return {"spans"}

        def partitions_for_topic(self, topic):
            return {0, 1, 2, 3}

        available_partitions_for_topic = partitions_for_topic

    def partition(key: bytes) -> int:
        return DefaultPartitioner().partition("spans", key, key, None, None, Cluster())

    spool = Spool(tmp_path, max_bytes=1 << 26)
    publisher = SpanPublisher(spool, "127.0.0.1:1", "spans", "group", Metrics())  # never started: nothing is sent
    spans = [{"traceId": f"{t:032x}", "id": f"{t * 10 + n + 1:016x}", "name": "q", "localEndpoint": {"serviceName": f"s{n}"}}
             for t in range(1, 41) for n in range(3)]
    publisher.publish(spans)  # partition count not learnt yet: one message per trace
    assert len(spool.read(spool.start(), 100)) == 40
    spool.release(spool.active_segment() + 1)
    spool.roll(spool.active_segment())
    publisher.partitions = 4
    publisher.publish(spans)
    records = spool.read(spool.start(), 100)[-4:]
    assert len({partition(key) for _, (key, _) in records}) == 4
    seen = []
    for _, (key, value) in records:
        decoded = decode_spans(value)
        assert {partition(span["traceId"].encode()) for span in decoded} == {partition(key)}
        seen += decoded
    assert sorted((s["traceId"], s["id"]) for s in seen) == sorted((s["traceId"], s["id"]) for s in spans)


def test_a_partition_too_large_for_one_message_is_split_between_traces(tmp_path):
    from meshscope.wire import MAX_SPAN_MESSAGE_BYTES as MAX_MESSAGE_BYTES
    from meshscope.wire import decode_spans, span_messages

    spans = [{"traceId": f"{t:032x}", "id": f"{n + 1:016x}", "tags": {"sql": "y" * 2000}} for t in range(1, 5) for n in range(200)]
    records = [(key, value) for key, value, _ in span_messages(spans, 1)]
    assert len(records) > 1 and all(len(value) <= MAX_MESSAGE_BYTES and key == f"{1:032x}".encode() for key, value in records)
    traces = [{span["traceId"] for span in decode_spans(value)} for _, value in records]
    assert sorted(trace_id for ids in traces for trace_id in ids) == sorted({s["traceId"] for s in spans})  # none split
