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


# spans in Zipkin's normalized form that decode_spans does not give back unchanged
NOT_ROUND_TRIPPING = [
    {"traceId": "1" * 32, "id": "2" * 16, "tags": {"peer.service": "db"}},  # remote endpoint from OTel tags
    {"traceId": "1" * 32, "id": "2" * 16, "tags": {"net.peer.port": "x"}},  # ... which may not even decode
    {"traceId": "1" * 32, "id": "2" * 16, "tags": {"zipkin.debug": "yes"}},  # a reserved attribute key
    {"traceId": "1" * 32, "id": "2" * 16, "tags": {"a": "b", "zipkin.remote.service_name": "x"}},
]


def _decoded_alone(span: dict) -> list[dict] | None:
    try:
        return wire.decode_spans(wire.encode_spans([span]))
    except Exception:
        return None


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_round_trips_holds_for_zipkin_spans(path):
    for span in load_spans(path):
        assert wire.round_trips(span) == (_decoded_alone(span) == [span])


@pytest.mark.parametrize("span", NOT_ROUND_TRIPPING, ids=lambda s: next(iter(s["tags"])))
def test_round_trips_is_false_when_decoding_changes_the_span(span):
    assert _decoded_alone(span) != [span]
    assert not wire.round_trips(span)
    with_remote = {**span, "remoteEndpoint": {"serviceName": "b"}}
    assert wire.round_trips(with_remote) == (_decoded_alone(with_remote) == [with_remote])


@pytest.mark.parametrize("partitions", [None, 1, 4])
def test_each_span_message_holds_its_group(partitions):
    spans = [span for path in FILES for span in load_spans(path)]
    groups = wire.span_message_groups(spans, partitions)
    assert sorted(id(span) for _, _, group in groups for span in group) == sorted(map(id, spans))
    for _, value, group in groups:
        assert canonical(wire.decode_spans(value)) == canonical(group)
    assert wire.span_messages(spans, partitions) == [(key, value, len(group)) for key, value, group in groups]


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


def _encoded_by_protobuf(spans: list[dict]) -> bytes:
    """What encode_spans wrote before it encoded by hand: protobuf's own serializer."""
    from collections import defaultdict

    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1 import trace_pb2

    def kv(key, value):
        if isinstance(value, bool):
            return KeyValue(key=key, value=AnyValue(bool_value=value))
        if isinstance(value, int):
            return KeyValue(key=key, value=AnyValue(int_value=value))
        return KeyValue(key=key, value=AnyValue(string_value=str(value)))

    def span_message(span):
        trace_id = span["traceId"].lower()
        out = trace_pb2.Span(trace_id=bytes.fromhex(trace_id.rjust(32, "0")), span_id=bytes.fromhex(span["id"]),
                             name=span.get("name") or "", kind=wire._ZIPKIN_TO_OTLP_KIND.get(span.get("kind"), 0))
        if span.get("parentId"):
            out.parent_span_id = bytes.fromhex(span["parentId"])
        timestamp, duration = span.get("timestamp") or 0, span.get("duration")
        out.start_time_unix_nano = timestamp * 1000
        if duration:
            out.end_time_unix_nano = (timestamp + duration) * 1000
        if len(trace_id) == 16:
            out.attributes.append(kv(wire.ATTR_TRACE_ID_64, True))
        for key, value in (span.get("tags") or {}).items():
            out.attributes.append(kv(key, str(value)))
        remote = span.get("remoteEndpoint") or {}
        for attr, key in wire._REMOTE_ENDPOINT_ATTRS:
            if remote.get(key) not in (None, ""):
                out.attributes.append(kv(attr, remote[key]))
        if span.get("debug"):
            out.attributes.append(kv(wire.ATTR_DEBUG, True))
        if span.get("shared"):
            out.attributes.append(kv(wire.ATTR_SHARED, True))
        for annotation in span.get("annotations") or ():
            out.events.append(trace_pb2.Span.Event(time_unix_nano=annotation["timestamp"] * 1000, name=annotation["value"]))
        if "error" in (span.get("tags") or {}):
            out.status.code = trace_pb2.Status.STATUS_CODE_ERROR
            out.status.message = str(span["tags"]["error"])
        return out

    by_endpoint = defaultdict(list)
    for span in spans:
        by_endpoint[wire._endpoint_key(span.get("localEndpoint"))].append(span_message(span))
    data = trace_pb2.TracesData()
    for endpoint, messages in by_endpoint.items():
        resource_spans = data.resource_spans.add()
        resource_spans.resource.CopyFrom(Resource(attributes=[kv(k, v) for k, v in endpoint]))
        resource_spans.scope_spans.add().spans.extend(messages)
    return data.SerializeToString()


EDGE_SPANS = [
    {"traceId": "00000000000000000000000000000001", "id": "0000000000000002", "kind": "PRODUCER",
     "name": "send ünïcode", "timestamp": 1, "duration": 1, "debug": True, "shared": True,
     "localEndpoint": {"serviceName": "a", "ipv4": "10.0.0.1", "ipv6": "::1", "port": 1},
     "remoteEndpoint": {"serviceName": "b", "ipv4": "10.0.0.2", "ipv6": "fe80::1", "port": 65535},
     "annotations": [{"timestamp": 2, "value": "x"}, {"timestamp": 3, "value": ""}],
     "tags": {"error": "", "k": "v" * 300, "empty": "", "peer.service": "z"}},
    {"traceId": "0000000000000001", "id": "0000000000000003"},
    {"traceId": "0000000000000001", "id": "0000000000000004", "duration": 5, "localEndpoint": {"serviceName": "a"}},
    {"traceId": "0000000000000001", "id": "0000000000000005", "timestamp": 1_700_000_000_000_000, "tags": {"error": "boom"}},
]


@pytest.mark.parametrize("spans", [EDGE_SPANS] + [load_spans(path) for path in FILES],
                         ids=["edge-cases"] + [path.name for path in FILES])
def test_hand_encoding_is_byte_equal_to_protobufs_serializer(spans):
    assert wire.encode_spans(spans) == _encoded_by_protobuf(spans)
    for span in spans:
        assert wire.zipkin_to_otlp_span(span).SerializeToString() == _encoded_by_protobuf([span])[-len(wire.zipkin_to_otlp_span(span).SerializeToString()):]


def test_encoding_stays_byte_equal_past_its_caches_bounds(monkeypatch):
    """The encoder's caches (attributes, names) are cleared when full: what follows still encodes right."""
    monkeypatch.setattr(wire, "_ATTRIBUTE_CACHE_MAX", 8)
    spans = [{"traceId": "0000000000000001", "id": f"{n + 1:016x}", "name": f"op {n % 13}", "timestamp": 1 + n,
              "tags": {f"k{n % 7}": f"v{n}", "http.method": "GET"}, "remoteEndpoint": {"serviceName": f"s{n % 11}"}}
             for n in range(200)]
    assert wire.encode_spans(spans) == _encoded_by_protobuf(spans)


def test_out_of_range_times_are_a_wire_error():
    with pytest.raises(wire.WireError):
        wire.encode_spans([{"traceId": "1" * 32, "id": "2" * 16, "timestamp": 2**64}])


def test_murmur2_equals_kafka_pythons():
    """The record key's partition must be the one kafka-python's DefaultPartitioner picks."""
    import random

    from kafka.partitioner.default import murmur2 as kafka_murmur2

    rng = random.Random(11)
    keys = [b"", b"a", b"ab", b"abc", b"\xff" * 4, b"\x80\xff\x00\x7f" * 9] + [
        rng.randbytes(rng.randrange(0, 70)) for _ in range(3000)]
    keys += [f"{rng.getrandbits(128):032x}".encode() for _ in range(1000)]
    for key in keys:
        assert wire.murmur2(key) == kafka_murmur2(key), key
    assert all(wire.partition_of(key, 12) == (kafka_murmur2(key) & 0x7FFFFFFF) % 12 for key in keys)
