"""The shop's services as real subprocesses on free loopback ports (no agents), against the real
MariaDB in a database of this session's own."""

from __future__ import annotations

import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pymysql
import pytest

from examples.shop import db, topology
from meshscope.devbroker import free_port

REPOSITORY = Path(__file__).resolve().parents[2]


@dataclass
class RunningShop:
    ports: dict[str, int]
    database: str
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def stats(self, service: str) -> dict:
        return httpx.get(f"{self.url(service)}/admin/stats", trust_env=False).raise_for_status().json()

    def admin(self, service: str, action: str, **params) -> dict:
        response = httpx.post(f"{self.url(service)}/admin/{action}", params=params, trust_env=False, timeout=30)
        return response.raise_for_status().json()

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_healthy(shop: RunningShop, log_dir: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    waiting = set(shop.ports)
    while waiting and time.monotonic() < deadline:
        for name in sorted(waiting):
            if shop.processes[name].poll() is not None:
                raise RuntimeError(f"{name} exited: {(log_dir / f'{name}.log').read_text()[-2000:]}")
            try:
                httpx.get(f"{shop.url(name)}/health", trust_env=False, timeout=1).raise_for_status()
                waiting.discard(name)
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    if waiting:
        raise RuntimeError(f"not healthy after {timeout:.0f} s: {sorted(waiting)}")


@pytest.fixture(scope="session")
def shop_database(mariadb):
    name = f"shop_test_{uuid.uuid4().hex[:8]}"
    db.create(mariadb.host, mariadb.port, mariadb.user, mariadb.password, name)
    yield {"host": mariadb.host, "port": mariadb.port, "user": mariadb.user, "password": mariadb.password,
           "database": name}
    with pymysql.connect(host=mariadb.host, port=mariadb.port, user=mariadb.user, password=mariadb.password) as conn:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(scope="session")
def shop(shop_database, tmp_path_factory):
    """Every shop service started from ``topology.command``; yields a ``RunningShop``."""
    log_dir = tmp_path_factory.mktemp("shop-logs")
    ports = {service.name: free_port() for service in topology.SERVICES}
    running = RunningShop(ports, shop_database["database"])
    try:
        for service in topology.SERVICES:
            urls = {dependency: f"http://127.0.0.1:{ports[dependency]}" for dependency in service.dependencies}
            argv = topology.command(service, ports[service.name], urls, shop_database)
            log = open(log_dir / f"{service.name}.log", "wb")
            running.processes[service.name] = subprocess.Popen(argv, cwd=REPOSITORY, stdout=log,
                                                               stderr=subprocess.STDOUT)
        _wait_healthy(running, log_dir)
        yield running
    finally:
        running.stop()
