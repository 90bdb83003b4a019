"""Observer registry: tcp pass-through, MySQL through the proxy (real MariaDB), the fallback when
the MySQL decoder is absent, and the health probe."""

from __future__ import annotations

import asyncio
import sys

import pytest

from agents import proxy
from agents.health import probe_once
from agents.tcp import PassThroughObserver
from meshscope.devbroker import free_port
from tests.agents.support import AgentThread, MemoryPublisher, RecordingServer, exchange_raw, wait_until


def test_tcp_listener_passes_bytes_and_counts_nothing():
    server = RecordingServer(reply=b"\x00server\xff")
    publisher = MemoryPublisher()
    agent = AgentThread({"service": "raw", "inbound": [f"127.0.0.1:0=127.0.0.1:{server.port}/tcp"]}, publisher=publisher).start()
    try:
        payload = b"GET / HTTP/1.1\r\n\r\n\x00\x01binary"
        assert exchange_raw(agent.port(), payload, 5) == b"\x00server\xff"
        assert wait_until(lambda: server.received) == [payload]
    finally:
        agent.stop()
        server.stop()
    assert publisher.records() == []


def test_mysql_listener_without_decoder_is_plain_pass_through(monkeypatch):
    monkeypatch.setitem(sys.modules, "agents.mysql.observer", None)  # import fails as if absent
    assert proxy.observer_factory("mysql") is PassThroughObserver
    server = RecordingServer(reply=b"\x0a\x00\x00\x00greeting")
    agent = AgentThread({"service": "app", "outbound": [f"db=127.0.0.1:0=127.0.0.1:{server.port}/mysql"]}, publisher=MemoryPublisher()).start()
    try:
        assert exchange_raw(agent.port(), b"\x01\x00\x00\x00\x0e") == b"\x0a\x00\x00\x00greeting"
    finally:
        agent.stop()
        server.stop()


def test_mysql_listener_uses_the_mysql_observer_against_mariadb(mariadb):
    pymysql = pytest.importorskip("pymysql")
    pytest.importorskip("agents.mysql.observer")
    publisher = MemoryPublisher()
    agent = AgentThread({"service": "app", "outbound": [f"db=127.0.0.1:0={mariadb.host}:{mariadb.port}/mysql"], "interval_s": "1"},
                        publisher=publisher).start()
    try:
        with pymysql.connect(host="127.0.0.1", port=agent.port(), user="root", password="") as connection:
            with connection.cursor() as cursor:
                for i in range(5):
                    cursor.execute("SELECT %s + 1", (i,))
                    assert cursor.fetchone()[0] == i + 1
    finally:
        agent.stop()
    records = [r for r in publisher.records() if r.kind == "sql.client"]
    assert sum(r.sketch.count for r in records if r.method.upper() == "SELECT") >= 5
    assert {r.remote_service for r in records} == {"db"}


def test_health_probe_tcp_and_http(asgi_upstream):
    async def probes():
        return (
            await probe_once("127.0.0.1", asgi_upstream, None, 2),
            await probe_once("127.0.0.1", asgi_upstream, "/hello", 2),
            await probe_once("127.0.0.1", asgi_upstream, "/status/503", 2),
            await probe_once("127.0.0.1", free_port(), None, 2),
        )

    tcp, http_ok, http_bad, closed = asyncio.run(probes())
    assert (tcp[0], http_ok[0], http_bad[0], closed[0]) == (True, True, False, False)
    assert all(elapsed >= 0 for _, elapsed in (tcp, http_ok, http_bad, closed))


def test_resource_sampler_finds_the_service_by_port_and_reads_cgroup_limits(asgi_upstream, tmp_path):
    import os
    from pathlib import Path

    from agents.resources import ResourceSampler, cgroup_memory_limit, find_listener_pid
    from agents.telemetry import Recorder

    assert find_listener_pid(asgi_upstream) == os.getpid()  # uvicorn runs in this process
    recorder = Recorder("svc", "i", "v")
    sampler = ResourceSampler(recorder, port=asgi_upstream)
    sampler()
    sampler()
    metrics = {s.metric: s.value for s in recorder.take_samples()}
    assert metrics["process.memory.rss"] > 0 and metrics["process.cpu.utilization"] >= 0
    # this process's cgroup path rebuilt under a fake root, v2 (memory.max) or v1 (memory controller)
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        hierarchy, controllers, path = line.split(":", 2)
        if hierarchy == "0" and controllers == "":
            directory, name, unlimited = tmp_path / path.lstrip("/"), "memory.max", "max"
        elif "memory" in controllers.split(","):
            directory, name, unlimited = tmp_path / "memory" / path.lstrip("/"), "memory.limit_in_bytes", str(1 << 63)
        else:
            continue
        directory.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text("536870912\n")
        assert cgroup_memory_limit(os.getpid(), tmp_path) == 512 * 1024 * 1024
        (directory / name).write_text(unlimited + "\n")
        assert cgroup_memory_limit(os.getpid(), tmp_path) is None
        break
    else:
        pytest.skip("no memory cgroup for this process")
