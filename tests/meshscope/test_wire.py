"""The wire model: every Zipkin field survives the OTLP round trip; metrics and samples too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshscope import wire
from meshscope.sketch import LatencySketch

TESTDATA = Path(__file__).parents[3] / "shared" / "zipkin-testdata"
FILES = sorted(TESTDATA.glob("*.json"))


def load_spans(path: Path) -> list[dict]:
    data = json.loads(path.read_text())
    return data if isinstance(data, list) else [data]


def canonical(spans):
    return sorted(spans, key=lambda s: json.dumps(s, sort_keys=True))


def test_testdata_is_there():
    assert len(FILES) >= 6


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_zipkin_span_survives_the_otlp_round_trip(path):
    spans = load_spans(path)
    assert canonical(wire.decode_spans(wire.encode_spans(spans))) == canonical(spans)


def test_every_optional_field_and_edge_case_round_trips():
    spans = [
        {"traceId": "00000000000000000000000000000001", "id": "0000000000000002", "kind": "PRODUCER",
         "name": "send", "timestamp": 1, "duration": 1, "debug": True, "shared": True,
         "localEndpoint": {"serviceName": "a", "ipv4": "10.0.0.1", "ipv6": "::1", "port": 1},
         "remoteEndpoint": {"serviceName": "b", "ipv4": "10.0.0.2", "ipv6": "fe80::1", "port": 65535},
         "annotations": [{"timestamp": 2, "value": "x"}, {"timestamp": 2, "value": "x"}],
         "tags": {"error": "", "k": "v", "peer.service": "z"}},
        {"traceId": "0000000000000001", "id": "0000000000000003"},  # 64-bit trace id, nothing else
        {"traceId": "0000000000000001", "id": "0000000000000004", "duration": 5},  # duration, no timestamp
        {"traceId": "0000000000000001", "id": "0000000000000005", "timestamp": 7},  # timestamp, no duration
    ]
    assert canonical(wire.decode_spans(wire.encode_spans(spans))) == canonical(spans)


def test_spans_are_grouped_by_trace_for_keyed_messages():
    spans = [{"traceId": "AB" * 8, "id": "1" * 16}, {"traceId": "ab" * 8, "id": "2" * 16}, {"traceId": "cd" * 8, "id": "3" * 16}]
    groups = dict(wire.spans_by_trace(spans))
    assert sorted(groups) == ["ab" * 8, "cd" * 8]
    assert len(groups["ab" * 8]) == 2


@pytest.mark.parametrize("decode", [wire.decode_spans, wire.decode_latency, wire.decode_resources])
@pytest.mark.parametrize("payload", [b"\xff\xff\xff", b"\x0a\x05abc", b"\x0a\x03\x0a\x01"])
def test_undecodable_payloads_raise_wire_error(decode, payload):
    with pytest.raises(wire.WireError):
        decode(payload)


def test_latency_records_round_trip():
    fast, slow = LatencySketch(), LatencySketch()
    for value in (0.0, 1.5, 2.5, 3.5):
        fast.add(value)
    slow.add(900.0)
    records = [
        wire.LatencyRecord(1_700_000_000, 10, "orders", "orders-1", "v2", "http.server", "GET /orders/{id}",
                           method="GET", status_class="2xx", sketch=fast, request_bytes=10, response_bytes=2000),
        wire.LatencyRecord(1_700_000_000, 10, "orders", "orders-1", "v2", "sql.client", "SELECT * FROM t WHERE id = ?",
                           method="SELECT", status_class="error", remote_service="db", database="shop",
                           sketch=slow, errors=1, rows=3),
    ]
    back = {r.endpoint: r for r in wire.decode_latency(wire.encode_latency(records))}
    for record in records:
        got = back[record.endpoint]
        assert got.key() == record.key()
        assert (got.errors, got.rows, got.request_bytes, got.response_bytes) == (
            record.errors, record.rows, record.request_bytes, record.response_bytes)
        assert (got.sketch.buckets, got.sketch.zero_count, got.sketch.count, got.sketch.sum) == (
            record.sketch.buckets, record.sketch.zero_count, record.sketch.count, record.sketch.sum)
        assert (got.service, got.instance, got.version, got.interval_start, got.interval_s) == (
            "orders", "orders-1", "v2", 1_700_000_000, 10)


def test_resource_samples_round_trip():
    samples = [wire.ResourceSample(1_700_000_000_123, "db", "db-1", "", "process.memory.rss", 1.5e8),
               wire.ResourceSample(1_700_000_000_123, "db", "db-1", "", "health.up", 1.0)]
    assert wire.decode_resources(wire.encode_resources(samples)) == samples
