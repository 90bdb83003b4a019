"""Transparency: bytes forwarded exactly, both ways, whatever the parser thinks of them."""

from __future__ import annotations

import re
import socket
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.agents.support import AgentThread, MemoryPublisher, RecordingServer, exchange_raw, recv_until_closed, wait_until

INJECTED = re.compile(rb"(X-B3-TraceId|X-B3-SpanId|X-B3-ParentSpanId|X-B3-Sampled|traceparent): [^\r]*\r\n")


@pytest.fixture(scope="module")
def recording():
    server = RecordingServer(reply=b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" * 3 + b"\x00\xff raw tail")
    yield server
    server.stop()


def _agent(upstream_port: int, propagate: bool) -> AgentThread:
    return AgentThread({
        "service": "fwd", "inbound": [f"127.0.0.1:0=127.0.0.1:{upstream_port}/http"],
        "propagate_context": str(propagate).lower(), "sample_rate": "1",
    }, publisher=MemoryPublisher()).start()


@pytest.fixture(scope="module")
def exact_agent(recording):
    agent = _agent(recording.port, propagate=False)
    yield agent
    agent.stop()


@pytest.fixture(scope="module")
def injecting_agent(recording):
    agent = _agent(recording.port, propagate=True)
    yield agent
    agent.stop()


def _last_received(server: RecordingServer, count_before: int) -> bytes:
    wait_until(lambda: len(server.received) > count_before, timeout=5)
    return server.received[-1]


PIPELINE = (
    b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
    b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world"
    b"PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    b"HEAD /d HTTP/1.1\r\nHost: x\r\n\r\n"
)


@pytest.mark.parametrize("chunk", [0, 1, 7])
def test_pipelined_requests_forwarded_byte_for_byte(exact_agent, recording, chunk):
    before = len(recording.received)
    reply = exchange_raw(exact_agent.port(), PIPELINE, chunk)
    assert _last_received(recording, before) == PIPELINE
    assert reply == recording.reply


def test_injection_changes_only_trace_headers(injecting_agent, recording):
    before = len(recording.received)
    exchange_raw(injecting_agent.port(), PIPELINE, 3)
    received = _last_received(recording, before)
    assert received != PIPELINE
    assert INJECTED.sub(b"", received) == PIPELINE
    # each of the four heads got one trace id, and all four are different traces
    assert len(set(re.findall(rb"X-B3-TraceId: (\w+)", received))) == 4


def test_requests_with_context_pass_untouched_inbound(injecting_agent, recording):
    request = (b"GET /t HTTP/1.1\r\nX-B3-TraceId: 463ac35c9f6413ad48485a3953bb6124\r\n"
               b"X-B3-SpanId: a2fb4a1d1a96d312\r\nX-B3-Sampled: 1\r\n\r\n")
    before = len(recording.received)
    exchange_raw(injecting_agent.port(), request)
    assert _last_received(recording, before) == request


def test_not_http_passes_through(exact_agent, recording):
    tls_hello = bytes.fromhex("160301020001") + bytes(range(256)) * 4
    before = len(recording.received)
    assert exchange_raw(exact_agent.port(), tls_hello, 100) == recording.reply
    assert _last_received(recording, before) == tls_hello
    assert exact_agent.agent.recorder.desynced >= 1


# ------------------------------------------------------------------ fuzzing

_methods = st.sampled_from([b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"OPTIONS", b"PATCH", b"G\x00T", b""])
_paths = st.sampled_from([b"/", b"/users/1", b"/a?b=c", b"*", b"/\xff", b"http://h/x", b""])
_header = st.tuples(st.sampled_from([b"Host", b"Content-Length", b"Transfer-Encoding", b"Connection", b"Upgrade", b"X-Any", b"Expect", b"Bad Name"]),
                    st.sampled_from([b"x", b"0", b"5", b"chunked", b"upgrade", b"websocket", b"100-continue", b"-1", b"\xff"]))


@st.composite
def http_like(draw):
    messages = []
    for _ in range(draw(st.integers(1, 4))):
        head = draw(_methods) + b" " + draw(_paths) + b" HTTP/1." + draw(st.sampled_from([b"1", b"0", b"x"])) + b"\r\n"
        head += b"".join(name + b": " + value + b"\r\n" for name, value in draw(st.lists(_header, max_size=4)))
        messages.append(head + b"\r\n" + draw(st.binary(max_size=40)))
    data = b"".join(messages)
    if draw(st.booleans()):  # mutate: flip, cut or insert bytes
        for _ in range(draw(st.integers(1, 4))):
            position = draw(st.integers(0, max(len(data) - 1, 0)))
            action = draw(st.sampled_from(["flip", "cut", "insert"]))
            if action == "flip" and data:
                data = data[:position] + bytes([data[position] ^ draw(st.integers(1, 255))]) + data[position + 1:]
            elif action == "cut":
                data = data[:position] + data[position + draw(st.integers(1, 10)):]
            else:
                data = data[:position] + draw(st.binary(min_size=1, max_size=8)) + data[position:]
    return data


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(payload=http_like(), chunk=st.sampled_from([0, 1, 3, 16]))
def test_fuzz_random_and_mutated_http_forwarded_exactly(exact_agent, recording, payload, chunk):
    before = len(recording.received)
    assert exchange_raw(exact_agent.port(), payload, chunk) == recording.reply
    assert _last_received(recording, before) == payload


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(payload=http_like(), chunk=st.sampled_from([0, 1, 5]))
def test_fuzz_with_injection_only_adds_trace_headers(injecting_agent, recording, payload, chunk):
    before = len(recording.received)
    assert exchange_raw(injecting_agent.port(), payload, chunk) == recording.reply
    assert INJECTED.sub(b"", _last_received(recording, before)) == payload


# ------------------------------------------------------------------ connection behaviour

def test_server_reset_reaches_the_client_and_is_counted():
    def reset_after_request(sock: socket.socket) -> bytes:
        data = sock.recv(65536)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
        return data

    server = RecordingServer(handler=reset_after_request)
    publisher = MemoryPublisher()
    agent = AgentThread({"service": "rst", "inbound": [f"127.0.0.1:0=127.0.0.1:{server.port}/http"], "interval_s": "1"}, publisher=publisher).start()
    try:
        with socket.create_connection(("127.0.0.1", agent.port())) as sock:
            sock.sendall(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            assert recv_until_closed(sock, 5) == b""
        agent.stop()
        records = publisher.records()
        assert [(r.endpoint, r.status_class, r.errors) for r in records] == [("GET /x", "aborted", 1)]
    finally:
        agent.stop()
        server.stop()


def test_client_reset_and_unreachable_upstream_do_not_break_the_agent(recording):
    from meshscope.devbroker import free_port

    dead = AgentThread({"service": "dead", "inbound": [f"127.0.0.1:0=127.0.0.1:{free_port()}/http"]}, publisher=MemoryPublisher()).start()
    try:
        assert exchange_raw(dead.port(), b"GET / HTTP/1.1\r\n\r\n") == b""
    finally:
        dead.stop()
    agent = _agent(recording.port, propagate=False)
    try:
        for _ in range(5):
            sock = socket.create_connection(("127.0.0.1", agent.port()))
            sock.sendall(b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\npartial")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.close()
        before = len(recording.received)
        assert exchange_raw(agent.port(), PIPELINE) == recording.reply
        # the reset connections may still be recorded upstream after ``before``: look for the
        # pipeline among everything received since, not at the end
        assert wait_until(lambda: PIPELINE in recording.received[before:], timeout=5)
        assert wait_until(lambda: not agent.agent.listeners[0].connections, timeout=5)
    finally:
        agent.stop()


def test_slow_client_gets_backpressure_not_buffering():
    total = 48 * 1024 * 1024
    sent = []

    def firehose(sock: socket.socket) -> bytes:
        sock.recv(65536)
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
        block = b"z" * 65536
        count = 0
        try:
            while count < total:
                count += sock.send(block[: min(len(block), total - count)])
                sent.append(count)
        except OSError:
            pass
        return b""

    server = RecordingServer(handler=firehose)
    agent = AgentThread({"service": "slow", "inbound": [f"127.0.0.1:0=127.0.0.1:{server.port}/http"]}, publisher=MemoryPublisher()).start()
    try:
        with socket.create_connection(("127.0.0.1", agent.port())) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(1.0)  # the client reads nothing for a while
            stalled_at = sent[-1] if sent else 0
            buffered = agent.call(lambda: sum(c.transport.get_write_buffer_size() for c in agent.agent.listeners[0].connections))
            # the agent holds at most about its high-water mark; the rest waits in the kernel and the server
            assert buffered <= 2 * 1024 * 1024
            assert stalled_at < total / 2
            received = 0
            sock.settimeout(20)
            while received < total + 30:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                received += len(chunk)
            assert received >= total
    finally:
        agent.stop()
        server.stop()
