"""Fixtures of the collector tests: the API in-process over the test's ClickHouse database, and a
real `meshscope serve` in a subprocess (its own chdb store) against the session's broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from collector.app import create_app
from collector.metrics import Metrics
from collector.writer import store_batch
from meshscope.devbroker import free_port
from meshscope.settings import ServerSettings

TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "zipkin-testdata"
REPO = Path(__file__).resolve().parents[2]


def load_testdata() -> dict[str, list[dict]]:
    """Zipkin's sample spans by file name (a file holding one span becomes a list of one)."""
    out = {}
    for path in sorted(TESTDATA.glob("*.json")):
        document = json.loads(path.read_text())
        out[path.stem] = document if isinstance(document, list) else [document]
    return out


class DirectSink:
    """A span publisher that stores synchronously, in place of Kafka + writer: the in-process API
    tests check decoding and queries; the Kafka path has its own end-to-end tests."""

    def __init__(self, client, database: str) -> None:
        self.client, self.database = client, database
        self.published: list[dict] = []

    def publish(self, spans: list[dict]) -> None:
        self.published.extend(spans)
        store_batch(self.client, self.database, spans)


@pytest.fixture
def api(clickhouse, tmp_path):
    settings = ServerSettings(clickhouse_url=clickhouse.url, clickhouse_database=clickhouse.database, spool_dir=tmp_path / "spool",
                              max_body_bytes=64 * 1024)
    sink = DirectSink(clickhouse.client, clickhouse.database)
    app = create_app(settings, sink, lambda: clickhouse.client, Metrics())
    with TestClient(app) as client:
        client.sink = sink
        yield client


class ServerProcess:
    """`meshscope serve` (or `writer`) in a subprocess; ``url`` is its base URL."""

    def __init__(self, tmp: Path, bootstrap: str, command: str = "serve", **env: str) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.command = command
        self.env = {
            **os.environ,
            "MESHSCOPE_PORT": str(self.port),
            "MESHSCOPE_KAFKA_BOOTSTRAP": bootstrap,
            "MESHSCOPE_CLICKHOUSE_URL": f"chdb://{tmp / 'chdb'}",
            "MESHSCOPE_SPOOL_DIR": str(tmp / "spool"),
            "MESHSCOPE_DASHBOARD": "false",
            "MESHSCOPE_RETENTION_DAYS": "20000",
            "MESHSCOPE_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "MESHSCOPE_KAFKA_HEARTBEAT_MS": "1000",
            "MESHSCOPE_WRITER_BATCH_MS": "200",
            **env,
        }
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> ServerProcess:
        log = open(self.tmp / f"{self.command}.log", "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "meshscope.cli", self.command], env=self.env, cwd=REPO,
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        if wait and self.command == "serve":
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited: {self.log()[-3000:]}")
                try:
                    if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                        return self
                except httpx.HTTPError:
                    time.sleep(0.1)
            raise RuntimeError(f"server did not start: {self.log()[-3000:]}")
        return self

    def log(self) -> str:
        return (self.tmp / f"{self.command}.log").read_text(errors="replace")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@pytest.fixture(scope="module")
def server(kafka_broker, tmp_path_factory):
    """One real `meshscope serve` (uvicorn on a free port, writer thread) for a test module."""
    process = ServerProcess(tmp_path_factory.mktemp("serve"), kafka_broker.bootstrap).start()
    yield process
    process.stop()


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
