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
    from collector.publisher import MAX_MESSAGE_BYTES
    from meshscope.wire import decode_spans

    spool = Spool(tmp_path, max_bytes=1 << 26)
    publisher = SpanPublisher(spool, "127.0.0.1:1", "spans", "group", Metrics())  # never started: nothing is sent
    spans = [{"traceId": "a" * 32, "id": f"{n + 1:016x}", "name": "q", "tags": {"sql": "y" * 2000}} for n in range(1000)]
    publisher.publish(spans)
    records = spool.read(spool.start(), 100)
    assert len(records) > 1 and all(len(value) <= MAX_MESSAGE_BYTES and key == b"a" * 32 for _, (key, value) in records)
    assert sum(len(decode_spans(value)) for _, (_, value) in records) == 1000
