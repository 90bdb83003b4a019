"""Decoders: Zipkin's v1 -> v2 conversion cases, and garbage of every kind read without crashing."""

from __future__ import annotations

import json
import random

import pytest

from collector.decoders import json_v1, json_v2, otlp, proto3, thrift
from collector.decoders.normalize import normalize_span_id
from collector.errors import DecodeError, SpanError

FRONTEND = {"serviceName": "Frontend", "ipv4": "127.0.0.1", "port": 8080}
BACKEND = {"serviceName": "backend", "ipv4": "192.168.99.101", "port": 9000}


def test_v1_span_with_both_sides_becomes_client_and_shared_server():
    v1 = {
        "traceId": "86154a4ba6e91385", "parentId": "86154a4ba6e91385", "id": "4d1e00c0db9010db", "name": "GET",
        "timestamp": 1472470996199000, "duration": 207000,
        "annotations": [
            {"timestamp": 1472470996199000, "value": "cs", "endpoint": FRONTEND},
            {"timestamp": 1472470996238000, "value": "sr", "endpoint": BACKEND},
            {"timestamp": 1472470996403000, "value": "ss", "endpoint": BACKEND},
            {"timestamp": 1472470996406000, "value": "cr", "endpoint": FRONTEND},
            {"timestamp": 1472470996300000, "value": "cache.miss", "endpoint": BACKEND},
        ],
        "binaryAnnotations": [{"key": "http.path", "value": "/api", "endpoint": FRONTEND},
                              {"key": "clnt/finagle.version", "value": "6.45.0", "endpoint": FRONTEND}],
    }
    decoded = json_v1.decode_v1_spans([v1])
    assert decoded.rejected == []
    client, server = decoded.spans
    assert client == {
        "traceId": "86154a4ba6e91385", "parentId": "86154a4ba6e91385", "id": "4d1e00c0db9010db", "kind": "CLIENT",
        "name": "get", "timestamp": 1472470996199000, "duration": 207000,
        "localEndpoint": {"serviceName": "frontend", "ipv4": "127.0.0.1", "port": 8080},
        "tags": {"http.path": "/api", "clnt/finagle.version": "6.45.0"},
    }
    assert server == {
        "traceId": "86154a4ba6e91385", "parentId": "86154a4ba6e91385", "id": "4d1e00c0db9010db", "kind": "SERVER",
        "name": "get", "timestamp": 1472470996238000, "duration": 165000,
        "localEndpoint": {"serviceName": "backend", "ipv4": "192.168.99.101", "port": 9000},
        "annotations": [{"timestamp": 1472470996300000, "value": "cache.miss"}], "shared": True,
    }


def test_v1_local_span_and_address_annotations():
    local = {"traceId": "a" * 16, "id": "b" * 16, "name": "compute", "timestamp": 10, "duration": 5,
             "binaryAnnotations": [{"key": "lc", "value": "", "endpoint": FRONTEND}]}
    client = {"traceId": "a" * 16, "id": "c" * 16, "parentId": "b" * 16, "name": "query",
              "annotations": [{"timestamp": 20, "value": "cs", "endpoint": FRONTEND}, {"timestamp": 30, "value": "cr", "endpoint": FRONTEND}],
              "binaryAnnotations": [{"key": "sa", "value": True, "endpoint": {"serviceName": "mysql", "port": 3306}}]}
    spans = json_v1.decode_v1_spans([local, client]).spans
    assert spans[0] == {"traceId": "a" * 16, "id": "b" * 16, "name": "compute", "timestamp": 10, "duration": 5,
                        "localEndpoint": {"serviceName": "frontend", "ipv4": "127.0.0.1", "port": 8080}}
    assert spans[1]["kind"] == "CLIENT" and spans[1]["timestamp"] == 20 and spans[1]["duration"] == 10
    assert spans[1]["remoteEndpoint"] == {"serviceName": "mysql", "port": 3306}


@pytest.mark.parametrize("decode", [json_v2.decode, json_v1.decode, proto3.decode, thrift.decode, otlp.decode_protobuf, otlp.decode_json])
def test_random_bytes_never_crash(decode):
    rng = random.Random(7)
    for size in (0, 1, 7, 64, 1000):
        for _ in range(30):
            body = bytes(rng.randrange(256) for _ in range(size))
            try:
                decoded = decode(body)
            except DecodeError:
                continue
            assert isinstance(decoded.spans, list)


@pytest.mark.parametrize("body", [b"[1, 2]", b'[{"traceId": 5, "id": "x"}]', b'[{"traceId": "a", "id": "b", "annotations": 3}]',
                                  b'[{"traceId": "' + b"a" * 16 + b'", "id": "' + b"b" * 16 + b'", "localEndpoint": {"port": 99999}}]',
                                  b'[{"traceId": "' + b"0" * 16 + b'", "id": "' + b"b" * 16 + b'"}]',
                                  b'[{"traceId": "' + b"a" * 16 + b'", "id": "' + b"b" * 16 + b'", "parentId": 12}]',
                                  b'[{"id": []}]', b'[{"traceId": "' + b"a" * 16 + b'", "id": 7}]'])
def test_invalid_spans_are_rejected_with_a_reason(body):
    decoded = json_v2.decode(body)
    assert decoded.spans == [] and decoded.rejected and all(reason.startswith("span ") for reason in decoded.rejected)


def _one(span: dict):
    decoded = json_v2.decode(json.dumps([{"traceId": "a" * 16, "id": "b" * 16, **span}]).encode())
    return decoded.spans[0] if decoded.spans else decoded.rejected[0]


def test_endpoints_that_compare_equal_normalize_apart():
    # the endpoint cache keys on types too: True == 1 == 1.0, yet they are not the same endpoint
    assert _one({"localEndpoint": {"serviceName": 1, "port": 1}})["localEndpoint"] == {"serviceName": "1", "port": 1}
    assert _one({"localEndpoint": {"serviceName": True, "port": 1.0}})["localEndpoint"] == {"serviceName": "true", "port": 1}
    assert _one({"localEndpoint": {"serviceName": 1, "port": True}}) == "span 0: port must be a number, got True"
    assert _one({"localEndpoint": {"serviceName": "a", "ipv4": ["10.0.0.1"], "port": 80}})["localEndpoint"] == {"serviceName": "a", "port": 80}


@pytest.mark.parametrize("bad_id", ["b" * 7 + "-" + "b" * 8, " " + "b" * 15, "b" * 15 + "g", "", "１" * 16])
def test_ids_with_other_characters_are_rejected(bad_id):
    assert "is not lower-hex" in _one({"id": bad_id}) or "must be 16 hex" in _one({"id": bad_id})


def test_ids_and_tags_are_normalized():
    span = _one({"id": "B" * 16, "parentId": "C" * 16, "tags": {"a": "x", "n": 1, "b": True, "z": None}})
    assert (span["id"], span["parentId"]) == ("b" * 16, "c" * 16)
    assert span["tags"] == {"a": "x", "n": "1", "b": "true", "z": ""}
    assert _one({"tags": {"a": "x"}})["tags"] == {"a": "x"}


@pytest.mark.parametrize("span_id, expected", [
    ("0123456789abcdef", "0123456789abcdef"), ("ABCDEF0123456789", "abcdef0123456789"), ("1234567890123456", "1234567890123456"),
    ("0123456789abcdeg", None), ("\u0663" * 16, None), (" 123456789abcdef", None), ("123456789abcdef ", None),
    ("0123456789abcdef\u0130", None), ("", None), ("0123456789abcde", None),
])
def test_span_ids_are_lower_hex_of_16(span_id, expected):
    """Zipkin's id rules, on the compiled check (a C loop) and the plain one (str.strip) alike."""
    if expected is None:
        with pytest.raises(SpanError):
            normalize_span_id(span_id)
    else:
        assert normalize_span_id(span_id) == expected
