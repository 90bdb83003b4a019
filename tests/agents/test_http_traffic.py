"""Real servers (uvicorn, nginx) and real clients (httpx, curl) through the agent: responses,
exact counts with and without sampling, percentiles, WebSocket pass-through, trace propagation."""

from __future__ import annotations

import base64
import hashlib
import math
import os
import random
import shutil
import socket
import subprocess

import httpx
import pytest

from meshscope.sketch import LatencySketch, relative_error
from tests.agents.support import AgentThread, MemoryPublisher


def _agent(upstream_port: int, publisher: MemoryPublisher, **flags) -> AgentThread:
    options = {"service": "web", "inbound": [f"127.0.0.1:0=127.0.0.1:{upstream_port}/http"], "interval_s": "1"}
    options.update({k: str(v) for k, v in flags.items()})
    return AgentThread(options, publisher=publisher).start()


def _count(records, **match) -> int:
    return sum(r.sketch.count for r in records if all(getattr(r, k) == v for k, v in match.items()))


def test_uvicorn_through_agent_counts_every_request_exactly(asgi_upstream):
    publisher = MemoryPublisher()
    agent = _agent(asgi_upstream, publisher, sample_rate=1)
    base = f"http://127.0.0.1:{agent.port()}"
    big = os.urandom(2 * 1024 * 1024)
    try:
        with httpx.Client(base_url=base) as client:  # one keep-alive connection
            for i in range(50):
                assert client.get(f"/users/{i}").text == f"hello /users/{i}"
            assert client.post("/echo", content=big).content == big
            streamed = client.post("/echo", content=(big[i:i + 65536] for i in range(0, len(big), 65536)))  # chunked upload
            assert streamed.content == big
            assert client.get("/stream", params={"n": 100}).text == "".join(f"chunk{i};" for i in range(100))
            assert client.head("/users/1").status_code == 200
            assert client.get("/status/503").status_code == 503
            assert client.post("/echo", content=b"x" * 1000, headers={"Expect": "100-continue"}).content == b"x" * 1000
    finally:
        agent.stop()
    records = publisher.records()
    assert _count(records) == 56
    assert _count(records, endpoint="GET /users/{id}") == 50
    assert _count(records, endpoint="POST /echo") == 3
    assert _count(records, status_class="5xx") == 1 and sum(r.errors for r in records) == 1
    echo = [r for r in records if r.endpoint == "POST /echo"]
    assert sum(r.request_bytes for r in echo) == 2 * len(big) + 1000
    assert sum(r.response_bytes for r in echo) == 2 * len(big) + 1000
    assert all((r.service, r.instance) == ("web", agent.settings.instance) for r in records)
    spans = publisher.spans()
    assert len(spans) == 56
    assert {s["kind"] for s in spans} == {"SERVER"}
    error = [s for s in spans if s["tags"].get("http.status_code") == "503"]
    assert error and error[0]["tags"]["error"] == "503"


def test_sampling_keeps_errors_and_slow_requests_and_counts_everything(asgi_upstream):
    publisher = MemoryPublisher()
    agent = _agent(asgi_upstream, publisher, sample_rate=0, slow_ms=50)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{agent.port()}") as client:
            for _ in range(40):
                client.get("/hello")
            for _ in range(3):
                client.get("/status/500")
            client.get("/sleep", params={"ms": 80})
            client.get("/hello", headers={"X-B3-Sampled": "1"})  # the caller decided: kept
    finally:
        agent.stop()
    assert _count(publisher.records()) == 45
    spans = publisher.spans()
    assert sorted(s["tags"]["http.path"] for s in spans) == ["/hello", "/sleep", "/status/500", "/status/500", "/status/500"]


def test_percentiles_match_the_exact_percentiles_of_recorded_durations(asgi_upstream):
    publisher = MemoryPublisher()
    agent = _agent(asgi_upstream, publisher, sample_rate=1)
    rng = random.Random(7)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{agent.port()}") as client:
            for _ in range(150):
                client.get("/sleep", params={"ms": rng.choice([1, 2, 3, 5, 8, 13, 30])})
    finally:
        agent.stop()
    durations = sorted(s["duration"] / 1000 for s in publisher.spans())  # the same measurements, µs
    merged = LatencySketch()
    for record in publisher.records():
        if record.endpoint == "GET /sleep":
            merged.merge(record.sketch)
    assert merged.count == len(durations) == 150
    for q in (0.5, 0.9, 0.95, 0.99):
        exact = durations[math.floor(q * (len(durations) - 1))]
        # sketch error plus the span's microsecond truncation
        assert abs(merged.quantile(q) - exact) <= exact * relative_error() + 0.002


def test_websocket_upgrade_passes_through(asgi_upstream):
    publisher = MemoryPublisher()
    agent = _agent(asgi_upstream, publisher)
    key = base64.b64encode(os.urandom(16)).decode()
    try:
        with socket.create_connection(("127.0.0.1", agent.port())) as sock:
            sock.sendall((f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
            sock.settimeout(5)
            response = b""
            while b"\r\n\r\n" not in response:
                response += sock.recv(4096)
            accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
            assert response.startswith(b"HTTP/1.1 101") and accept in response
            mask = os.urandom(4)
            payload = b"GET / HTTP/1.1\r\n\r\n"  # looks like HTTP, must stay opaque
            masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
            frame = sock.recv(4096)
            assert frame[2:] == b"echo:" + payload
    finally:
        agent.stop()
    records = publisher.records()
    assert [(r.endpoint, r.status_class) for r in records] == [("GET /ws", "1xx")]


def test_nginx_with_curl_and_keepalive(nginx):
    if not shutil.which("curl"):
        pytest.skip("curl is not installed")
    publisher = MemoryPublisher()
    agent = _agent(nginx.port, publisher)
    try:
        direct = f"http://127.0.0.1:{nginx.port}"
        proxied = f"http://127.0.0.1:{agent.port()}"
        urls = ["/big.bin", "/1k.bin", "/small.txt", "/hello", "/status/404"]

        def curl(base: str, *extra: str) -> bytes:
            args = ["curl", "-s", "--http1.1", *extra]
            for url in urls:
                args.append(base + url)
            return subprocess.run(args, capture_output=True, check=True, timeout=30).stdout

        assert curl(proxied) == curl(direct)  # one curl, one keep-alive connection, five requests
        head = subprocess.run(["curl", "-sI", proxied + "/big.bin"], capture_output=True, check=True, timeout=10).stdout
        assert b"200 OK" in head and b"Content-Length: 3145728" in head
        upload = os.urandom(300_000)
        with httpx.Client() as client:
            assert client.post(proxied + "/upload", content=upload).text == "hello\n"
    finally:
        agent.stop()
    records = publisher.records()
    assert sum(r.sketch.count for r in records) == 7
    assert sum(r.response_bytes for r in records if r.endpoint == "GET /big.bin") == 3 * 1024 * 1024
    assert {(r.endpoint, r.status_class) for r in records} >= {("HEAD /big.bin", "2xx"), ("GET /status/{id}", "4xx"), ("POST /upload", "2xx")}


def test_trace_propagates_across_two_services_each_behind_its_agent(asgi_upstream):
    """front (agent A: inbound + outbound 'back') -> back (agent B: inbound)."""
    publisher_a, publisher_b = MemoryPublisher(), MemoryPublisher()
    agent_b = AgentThread({"service": "back", "inbound": [f"127.0.0.1:0=127.0.0.1:{asgi_upstream}/http"], "sample_rate": "1"},
                          publisher=publisher_b).start()
    agent_a = AgentThread({
        "service": "front", "sample_rate": "1",
        "inbound": [f"127.0.0.1:0=127.0.0.1:{asgi_upstream}/http"],
        "outbound": [f"back=127.0.0.1:0=127.0.0.1:{agent_b.port()}/http"],
    }, publisher=publisher_a).start()
    outbound = f"http://127.0.0.1:{agent_a.port(1)}/users/7"
    try:
        with httpx.Client() as client:
            # the service forwards trace headers
            assert client.get(f"http://127.0.0.1:{agent_a.port(0)}/call", params={"to": outbound, "forward": "1"}).text == "called:200"
            # the service forwards nothing: the outbound call is linked to the one inbound request in flight
            assert client.get(f"http://127.0.0.1:{agent_a.port(0)}/call", params={"to": outbound}).text == "called:200"
            # the caller brings its own W3C context
            parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            client.get(f"http://127.0.0.1:{agent_a.port(0)}/call", params={"to": outbound, "forward": "1"}, headers={"traceparent": parent})
    finally:
        agent_a.stop()
        agent_b.stop()
    spans_a, spans_b = publisher_a.spans(), publisher_b.spans()
    assert len(spans_a) == 6 and len(spans_b) == 3
    for server in sorted((s for s in spans_a if s["kind"] == "SERVER"), key=lambda s: s["timestamp"]):
        (client_span,) = [s for s in spans_a if s["kind"] == "CLIENT" and s["traceId"] == server["traceId"]]
        (back,) = [s for s in spans_b if s["traceId"] == server["traceId"]]
        assert client_span["parentId"] == server["id"]
        assert client_span["remoteEndpoint"]["serviceName"] == "back"
        assert back["id"] == client_span["id"] and back["shared"] is True and back["kind"] == "SERVER"
        assert back["localEndpoint"]["serviceName"] == "back"
    w3c = [s for s in spans_a if s["traceId"] == "0af7651916cd43dd8448eb211c80319c"]
    assert {s["kind"] for s in w3c} == {"SERVER", "CLIENT"}
    assert [s["id"] for s in w3c if s["kind"] == "SERVER"] == ["b7ad6b7169203331"]


def test_shutdown_drains_requests_in_flight_and_flushes(asgi_upstream):
    import threading

    publisher = MemoryPublisher()
    agent = _agent(asgi_upstream, publisher, interval_s=60)  # the interval is still open at shutdown
    results = []

    def slow_request():
        with httpx.Client(timeout=10) as client:
            results.append(client.get(f"http://127.0.0.1:{agent.port()}/sleep", params={"ms": 600}).text)

    with httpx.Client() as client:
        client.get(f"http://127.0.0.1:{agent.port()}/hello")  # an idle keep-alive connection stays open
        thread = threading.Thread(target=slow_request)
        thread.start()
        import time

        time.sleep(0.2)
        agent.stop()  # what SIGTERM does
        thread.join(10)
    assert results == ["slept"]
    assert sorted((r.endpoint, r.sketch.count) for r in publisher.records()) == [("GET /hello", 1), ("GET /sleep", 1)]


def test_shutdown_past_the_drain_timeout_reports_what_was_cut(asgi_upstream):
    import threading
    import time

    publisher = MemoryPublisher()
    agent = _agent(asgi_upstream, publisher, interval_s=60, drain_timeout_s=0.3)
    errors = []

    def too_slow():
        try:
            with httpx.Client(timeout=10) as client:
                client.get(f"http://127.0.0.1:{agent.port()}/sleep", params={"ms": 3000})
        except httpx.HTTPError as exc:
            errors.append(exc)

    thread = threading.Thread(target=too_slow)
    thread.start()
    time.sleep(0.3)
    agent.stop()
    thread.join(10)
    assert errors  # the client saw its connection closed
    assert [(r.endpoint, r.status_class, r.errors) for r in publisher.records()] == [("GET /sleep", "aborted", 1)]
