"""HttpConversation: byte-level, fed in chunks of 1, 7 and whole sizes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents import tracecontext
from agents.http_parser import ABORTED, CLOSED, COMPLETE, DESYNCED, TUNNEL, HttpConversation

REQUESTS = (
    b"GET /a?x=1 HTTP/1.1\r\nHost: x\r\n\r\n"
    b"POST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
    b"HEAD /c HTTP/1.1\r\n\r\n"
    b"POST /d HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nab\r\n\r\n\r\n0\r\n\r\n"
    b"PUT /e HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\nbody"
    b"GET /f HTTP/1.1\r\n\r\n"
)
RESPONSES = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"  # HEAD: no body despite Content-Length
    b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"
    b"HTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\nx"
)
EXPECTED = [
    ("GET", b"/a?x=1", 200, 0, 2), ("POST", b"/b", 201, 5, 0), ("HEAD", b"/c", 200, 0, 0),
    ("POST", b"/d", 500, 6, 3), ("PUT", b"/e", 204, 4, 0), ("GET", b"/f", 404, 0, 1),
]


def feed(conversation: HttpConversation, requests: bytes, responses: bytes, size: int) -> bytes:
    out = b"".join(conversation.feed_request(requests[i:i + size], i) for i in range(0, len(requests), size))
    for i in range(0, len(responses), size):
        conversation.feed_response(responses[i:i + size], 10_000 + i)
    return out


def summary(conversation: HttpConversation) -> list[tuple]:
    return [(e.method, e.target, e.status, e.request_body_bytes, e.response_body_bytes) for e in conversation.take_finished()]


@pytest.mark.parametrize("size", [1, 7, 10_000])
def test_pipelined_exchanges_are_matched_and_forwarded_unchanged(size):
    conversation = HttpConversation()
    assert feed(conversation, REQUESTS, RESPONSES, size) == REQUESTS
    assert summary(conversation) == EXPECTED
    assert conversation.state == "http" and not conversation.pending


@pytest.mark.parametrize("size", [1, 7, 10_000])
def test_head_rewrite_inserts_before_the_blank_line_of_each_head_only(size):
    conversation = HttpConversation(lambda exchange: tracecontext.rewrite(exchange.head, b"X-T: 1\r\n", False))
    out = feed(conversation, REQUESTS, RESPONSES, size)
    heads_only = REQUESTS.replace(b"\r\n\r\n", b"\r\nX-T: 1\r\n\r\n")
    # the chunked body's "ab\r\n\r\n" and its terminator are body bytes, not heads: restore them
    expected = heads_only.replace(b"6\r\nab\r\nX-T: 1\r\n\r\n\r\n0\r\nX-T: 1\r\n\r\n", b"6\r\nab\r\n\r\n\r\n0\r\n\r\n")
    assert out == expected
    assert summary(conversation) == EXPECTED


def test_timestamps_first_byte_to_last_byte():
    conversation = HttpConversation()
    conversation.feed_request(b"GET / HTTP/1.1\r\n", 100)
    conversation.feed_request(b"\r\n", 200)
    conversation.feed_response(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\na", 1_000)
    conversation.feed_response(b"bc", 5_000)
    (exchange,) = conversation.take_finished()
    assert (exchange.request_start_ns, exchange.response_start_ns, exchange.response_end_ns) == (100, 1_000, 5_000)
    assert exchange.outcome == COMPLETE


def test_partial_head_is_held_until_complete_and_flushed_on_half_close():
    conversation = HttpConversation(lambda exchange: None)
    assert conversation.feed_request(b"GET / HTTP/1.1\r\nHo", 1) == b""
    assert conversation.flush_request() == b"GET / HTTP/1.1\r\nHo"
    # after a flush the head goes out as it comes and is not rewritten
    assert conversation.feed_request(b"st: x\r\n\r\n", 2) == b"st: x\r\n\r\n"


def test_garbage_desyncs_and_passes_through():
    conversation = HttpConversation()
    tls = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256))
    assert conversation.feed_request(tls, 1) == tls
    assert conversation.state == DESYNCED
    assert conversation.feed_request(b"more", 2) == b"more"


def test_desync_after_good_requests_keeps_every_byte():
    conversation = HttpConversation(lambda e: None)
    data = b"GET /ok HTTP/1.1\r\n\r\nGET /bad HTTP/1.1\r\nBad Header\r\n\r\ntrailing"
    out = b"".join(conversation.feed_request(data[i:i + 3], i) for i in range(0, len(data), 3))
    assert out == data
    assert conversation.state == DESYNCED


def test_websocket_upgrade_becomes_a_tunnel():
    conversation = HttpConversation()
    request = b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: a\r\n\r\n"
    assert conversation.feed_request(request + b"\x81\x02hi", 1) == request + b"\x81\x02hi"
    conversation.feed_response(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x02yo", 2)
    assert conversation.state == TUNNEL
    assert conversation.feed_request(b"GET / HTTP/1.1\r\n\r\n", 3) == b"GET / HTTP/1.1\r\n\r\n"
    (exchange,) = conversation.take_finished()
    assert exchange.status == 101


def test_refused_upgrade_goes_back_to_http():
    conversation = HttpConversation()
    conversation.feed_request(b"GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", 1)
    conversation.feed_response(b"HTTP/1.1 400 Bad\r\nContent-Length: 0\r\n\r\n", 2)
    conversation.feed_request(b"GET /next HTTP/1.1\r\n\r\n", 3)
    conversation.feed_response(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 4)
    assert [(e.target, e.status) for e in conversation.take_finished()] == [(b"/ws", 400), (b"/next", 200)]


def test_connect_2xx_becomes_a_tunnel():
    conversation = HttpConversation()
    conversation.feed_request(b"CONNECT db:443 HTTP/1.1\r\nHost: db:443\r\n\r\n", 1)
    conversation.feed_response(b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x01", 2)
    assert conversation.state == TUNNEL


def test_close_ends_a_close_delimited_body_and_aborts_unanswered_requests():
    conversation = HttpConversation()
    conversation.feed_request(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n", 1)
    conversation.feed_response(b"HTTP/1.0 200 OK\r\n\r\nbody until close", 2)
    conversation.close(3)
    assert [(e.target, e.outcome, e.status) for e in conversation.take_finished()] == [(b"/a", CLOSED, 200), (b"/b", ABORTED, 0)]


def test_response_without_request_is_counted_not_fatal():
    conversation = HttpConversation()
    conversation.feed_response(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n", 1)
    assert conversation.unmatched_responses == 1
    assert conversation.state == "http"


def test_unanswered_pipelining_is_bounded():
    from agents.http_parser import MAX_PENDING

    conversation = HttpConversation()
    flood = b"GET / HTTP/1.1\r\n\r\n" * (MAX_PENDING + 5)
    assert conversation.feed_request(flood, 1) == flood
    assert conversation.feed_request(b"GET / HTTP/1.1\r\n\r\n", 2) == b"GET / HTTP/1.1\r\n\r\n"
    assert conversation.state == DESYNCED and not conversation.pending
    assert len(conversation.take_finished()) == MAX_PENDING + 5


# ------------------------------------------------------------------ properties

_bodies = st.binary(max_size=60)


@st.composite
def _conversation(draw):
    requests, responses, expected = [], [], []
    for _ in range(draw(st.integers(1, 5))):
        method = draw(st.sampled_from(["GET", "POST", "HEAD", "PUT"]))
        body = draw(_bodies) if method in ("POST", "PUT") else b""
        chunked = bool(body) and draw(st.booleans())
        head = f"{method} /r/{draw(st.integers(0, 999))} HTTP/1.1\r\nHost: h\r\n".encode()
        if chunked:
            requests.append(head + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
        else:
            requests.append(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        status = draw(st.sampled_from([200, 201, 204, 304, 404, 500]))
        payload = b"" if status in (204, 304) else draw(_bodies)
        interim = b"HTTP/1.1 100 Continue\r\n\r\n" if draw(st.booleans()) else b""
        if method == "HEAD" or status in (204, 304):
            responses.append(interim + b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n" % (status, len(payload) or 7))
            expected.append((method, status, len(body), 0))
        elif payload and draw(st.booleans()):
            pieces = [payload[:len(payload) // 2], payload[len(payload) // 2:]]
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p)
            responses.append(interim + b"HTTP/1.1 %d X\r\nTransfer-Encoding: chunked\r\n\r\n" % status + chunks + b"0\r\n\r\n")
            expected.append((method, status, len(body), len(payload)))
        else:
            responses.append(interim + b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n" % (status, len(payload)) + payload)
            expected.append((method, status, len(body), len(payload)))
    return b"".join(requests), b"".join(responses), expected


@settings(max_examples=500, deadline=None)
@given(conversation=_conversation(), request_chunk=st.integers(1, 40), response_chunk=st.integers(1, 40))
def test_any_chunking_gives_the_same_exchanges_and_bytes(conversation, request_chunk, response_chunk):
    requests, responses, expected = conversation
    tracker = HttpConversation(lambda exchange: tracecontext.rewrite(exchange.head, b"X-T: 1\r\n", False))
    out = b"".join(tracker.feed_request(requests[i:i + request_chunk], i) for i in range(0, len(requests), request_chunk))
    for i in range(0, len(responses), response_chunk):
        tracker.feed_response(responses[i:i + response_chunk], i)
    got = [(e.method, e.status, e.request_body_bytes, e.response_body_bytes) for e in tracker.take_finished()]
    assert got == expected
    assert out.count(b"X-T: 1\r\n") == len(expected)
    assert out.replace(b"X-T: 1\r\n", b"") == requests
