"""The spans the writer takes back from RecentSpanMessages are what decoding the message gives."""

from __future__ import annotations

import json

import orjson
import pytest

from collector.decoders import json_v2
from collector.recent import RecentSpanMessages
from meshscope.wire import decode_spans, span_message_groups
from tests.collector.conftest import load_testdata

EDGE_CASES = [  # as clients send them; json_v2 normalizes them first
    {"traceId": "00000000000000000000000000000A01", "id": "0000000000000002", "kind": "PRODUCER", "name": "Send",
     "timestamp": 1, "duration": 1, "debug": True, "shared": True,
     "localEndpoint": {"serviceName": "A", "ipv4": "10.0.0.1", "ipv6": "::ffff:10.0.0.9", "port": 1},
     "remoteEndpoint": {"serviceName": "b", "ipv6": "fe80::1", "port": 65535},
     "annotations": [{"timestamp": 3, "value": "y"}, {"timestamp": 2, "value": "x"}, {"timestamp": 2, "value": "x"}],
     "tags": {"error": "", "k": 1, "peer.service": "z"}},
    {"traceId": "0000000000000A01", "id": "0000000000000003", "duration": 5},
    {"traceId": "0000000000000a01", "id": "0000000000000004", "parentId": "0000000000000002", "tags": {"peer.service": "db"}},
    {"traceId": "0000000000000a01", "id": "0000000000000005", "tags": {"zipkin.shared": "true"}},
    {"traceId": "0000000000000b01", "id": "0000000000000006", "tags": {"net.peer.port": "not a port"}},
]


def normalized_batches() -> list[list[dict]]:
    batches = [json_v2.decode(orjson.dumps(spans)).spans for spans in load_testdata().values()]
    batches.append(json_v2.decode(orjson.dumps(EDGE_CASES)).spans)
    return batches


def canonical(spans):
    return sorted(spans, key=lambda s: json.dumps(s, sort_keys=True))


@pytest.mark.parametrize("partitions", [None, 4])
def test_taken_spans_equal_the_decoded_message(partitions):
    recent = RecentSpanMessages()
    taken = missed = 0
    for spans in normalized_batches():
        groups = span_message_groups(spans, partitions)
        for _, value, group in groups:
            recent.remember(value, group)
        for _, value, _ in groups:
            remembered = recent.take(value)
            if remembered is None:
                missed += 1
                continue
            taken += 1
            assert canonical(remembered) == canonical(decode_spans(value))
    assert taken and missed  # the edge cases include messages that must decode
    assert len(recent) == 0


def test_a_message_is_taken_once():
    recent = RecentSpanMessages()
    spans = normalized_batches()[0]
    (_, value, group), *_ = span_message_groups(spans, None)
    recent.remember(value, group)
    recent.remember(value, group)  # the same bytes spooled again
    assert recent.take(bytes(value)) is group
    assert recent.take(value) is None


def test_messages_whose_decode_differs_are_not_kept():
    recent = RecentSpanMessages()
    for spans in (EDGE_CASES[2:3], EDGE_CASES[3:4], EDGE_CASES[4:5]):
        (_, value, group), = span_message_groups(json_v2.decode(orjson.dumps(spans)).spans, None)
        recent.remember(value, group)
        assert recent.take(value) is None


def test_the_oldest_go_past_the_bound():
    recent = RecentSpanMessages(max_spans=250)
    spans = [{"traceId": f"{n:032x}", "id": f"{n:016x}"} for n in range(1, 401)]
    values = []
    for start in range(0, 400, 100):
        (_, value, group), = span_message_groups(spans[start:start + 100], 1)
        recent.remember(value, group)
        values.append(value)
    assert [recent.take(value) is not None for value in values] == [False, False, True, True]
