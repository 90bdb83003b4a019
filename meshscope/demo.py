"""`meshscope demo`: the shop behind meshscope agents, on one machine.

Starts, in order: a tansu broker on a free port, `meshscope serve` on the embedded store under
``MESHSCOPE_DEMO_DIR`` (data survives a restart of the demo), MariaDB (the machine's, or a
private one), every shop service on a private port with its own agent in front of it (inbound)
and in front of each of its dependencies and its database (outbound), then the load generator.
Prints the dashboard URL and what to look at; Ctrl-C (or SIGTERM, or ``--duration``) stops
everything in reverse order and leaves no process behind.

The same ``ShopStack`` runs the end-to-end test with a short load.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from meshscope.devbroker import TansuBroker, free_port, port_open
from meshscope.devmariadb import MariaDB, start_mariadb
from meshscope.settings import DemoSettings, load

logger = logging.getLogger(__name__)

DB_SERVICE_NAME = "shop-db"


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log_path: Path

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=5)


@dataclass
class ShopStack:
    """The shop with agents, wired to a broker and a meshscope server. ``start()``/``stop()``."""

    work_dir: Path
    port: int = 9411
    interval_s: int = 10
    extra_env: dict[str, str] = field(default_factory=dict)
    broker: TansuBroker | None = None
    mariadb: MariaDB | None = None
    processes: list[Process] = field(default_factory=list)
    public_ports: dict[str, int] = field(default_factory=dict)  # service -> its agent's inbound port
    private_ports: dict[str, int] = field(default_factory=dict)  # service -> its own port (admin calls)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def frontend_url(self) -> str:
        return f"http://127.0.0.1:{self.public_ports['front-end']}"

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Process:
        logs = self.work_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{name}.log"
        log = open(log_path, "ab")
        popen = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **self.base_env, **(env or {})},
        )
        process = Process(name, popen, log_path)
        self.processes.append(process)
        return process

    @property
    def base_env(self) -> dict[str, str]:
        return {
            "MESHSCOPE_KAFKA_BOOTSTRAP": self.broker.bootstrap if self.broker else "",
            "MESHSCOPE_INTERVAL_S": str(self.interval_s),
            "MESHSCOPE_SAMPLE_RATE": "1.0",  # the shop's traffic is small: trace every request
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }

    def start_platform(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.broker = TansuBroker(log_path=self.work_dir / "tansu.log").start()
        server = self._spawn("meshscope-serve", [sys.executable, "-m", "meshscope.cli", "serve"], env={
            "MESHSCOPE_CLICKHOUSE_URL": f"chdb://{(self.work_dir / 'clickhouse').resolve()}",
            "MESHSCOPE_PORT": str(self.port),
            "MESHSCOPE_SPOOL_DIR": str(self.work_dir / "spool" / "collector"),
        })
        self.wait_http(f"{self.api}/health", timeout=90, process=server)
        self.mariadb = start_mariadb()

    def start_shop(self) -> None:
        from examples.shop import db, topology

        assert self.mariadb is not None
        db.create(self.mariadb.host, self.mariadb.port, self.mariadb.user, self.mariadb.password, topology.DATABASE)
        private = self.private_ports = {service.name: free_port() for service in topology.SERVICES}
        self.public_ports = {service.name: free_port() for service in topology.SERVICES}
        started: list[tuple[Process, int]] = []  # each process with the port it listens on
        for service in topology.SERVICES:
            agent_args = [
                "--service", service.name,
                "--inbound", f"127.0.0.1:{self.public_ports[service.name]}=127.0.0.1:{private[service.name]}/http",
            ]
            dependency_urls = {}
            for dependency in service.dependencies:
                port = free_port()
                agent_args += ["--outbound", f"{dependency}=127.0.0.1:{port}=127.0.0.1:{self.public_ports[dependency]}/http"]
                dependency_urls[dependency] = f"http://127.0.0.1:{port}"
            db_address = None
            if service.uses_db:
                port = free_port()
                agent_args += ["--outbound", f"{DB_SERVICE_NAME}=127.0.0.1:{port}={self.mariadb.host}:{self.mariadb.port}/mysql"]
                db_address = {"host": "127.0.0.1", "port": port, "user": self.mariadb.user,
                              "password": self.mariadb.password, "database": topology.DATABASE}
            process = self._spawn(service.name, topology.command(service, private[service.name], dependency_urls, db_address))
            agent = self._spawn(f"agent-{service.name}", [
                sys.executable, "-m", "meshscope.cli", "agent", *agent_args,
            ], env={
                "MESHSCOPE_SERVICE_PID": str(process.popen.pid),
                "MESHSCOPE_AGENT_SPOOL_DIR": str(self.work_dir / "spool" / service.name),
            })
            started.append((process, private[service.name]))
            started.append((agent, self.public_ports[service.name]))
        for process, port in started:
            self.wait_until(functools.partial(port_open, port), f"{process.name} on port {port}", timeout=60, process=process)

    def start(self) -> ShopStack:
        try:
            self.start_platform()
            self.start_shop()
        except BaseException:
            self.stop()
            raise
        return self

    def run_load(self, duration_s: float, report: Path, *extra: str) -> subprocess.CompletedProcess:
        """Run the load generator to completion; failure injection goes straight to the services'
        own ports so that it is not counted as shop traffic."""
        admin = [arg for name, port in self.private_ports.items() for arg in ("--admin", f"{name}=http://127.0.0.1:{port}")]
        with open(self.work_dir / "logs" / "load.log", "ab") as log:
            return subprocess.run(
                [sys.executable, "-m", "examples.shop.load", "--base", self.frontend_url, "--duration", str(duration_s),
                 "--report", str(report), *admin, *extra],
                check=True, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    @classmethod
    def wait_http(cls, url: str, timeout: float, process: Process | None = None) -> None:
        def answers() -> bool:
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(url, timeout=2).status_code < 500
            return False

        cls.wait_until(answers, url, timeout, process)

    @staticmethod
    def wait_until(ready, what: str, timeout: float, process: Process | None = None) -> None:
        """Poll ``ready()``; fail with the tail of ``process``'s log as soon as it exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process is not None and process.popen.poll() is not None:
                tail = process.log_path.read_text(errors="replace").strip().splitlines()[-5:]
                raise RuntimeError(f"{process.name} exited ({process.popen.returncode}): " + " | ".join(tail))
            if ready():
                return
            time.sleep(0.3)
        tail = process.log_path.read_text(errors="replace").strip().splitlines()[-5:] if process else []
        raise TimeoutError(f"{what} did not answer within {timeout:.0f}s" + (": " + " | ".join(tail) if tail else ""))

    def stop(self) -> None:
        """Stop everything, newest first (agents flush on SIGTERM). Idempotent."""
        while self.processes:
            self.processes.pop().stop()
        if self.broker is not None:
            self.broker.stop()
        if self.mariadb is not None:
            self.mariadb.stop()
            self.mariadb = None


GUIDE = """
meshscope demo is running.

  Dashboard:   {api}/dashboard/
  Zipkin API:  {api}/api/v2/services   (Zipkin's UI can point at {api}/zipkin/)
  Shop:        {shop}/
  Logs:        {logs}

What to look at:
  - Overview: requests/s, error ratio and p50/p95/p99 for every shop service, with health.
  - Topology: front-end -> catalogue/carts/orders/user, orders -> payment/shipping, catalogue -> shop-db.
  - Service 'catalogue': the SQL statements table (the slow search query stands out).
  - Traces: search service 'front-end', min duration 100ms, to see where slow orders spend their time.
  - The load runs in phases: steady, a spike, payment slowed down, payment failing;
    watch anomalies, alerts and scaling recommendations follow.

Ctrl-C stops everything.
"""


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="meshscope demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    parser.add_argument("--port", type=int, help="port of the API and dashboard (default 9411)")
    args = parser.parse_args(argv)
    settings = load(DemoSettings, demo_duration_s=args.duration, demo_port=args.port)
    stack = ShopStack(work_dir=settings.demo_dir.resolve(), port=settings.demo_port)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    print("starting the broker, meshscope serve, MariaDB and the shop with its agents...", flush=True)
    try:
        stack.start()
        print(GUIDE.format(api=stack.api, shop=stack.frontend_url, logs=stack.work_dir / "logs"), flush=True)
        deadline = time.monotonic() + settings.demo_duration_s if settings.demo_duration_s else None
        while deadline is None or time.monotonic() < deadline:
            remaining = 600.0 if deadline is None else max(deadline - time.monotonic(), 1.0)
            stack.run_load(min(remaining, 600.0), stack.work_dir / "load-report.json")
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
    finally:
        stack.stop()
    print("stopped; the data stays in", stack.work_dir / "clickhouse")
    return 0
