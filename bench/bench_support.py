"""Shared by the benchmark scripts (run as ``python bench/NAME.py``, so this folder is on sys.path)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx

from meshscope.devbroker import free_port, wait_for_port


def wait_healthy(client: httpx.Client, server: subprocess.Popen, log_path: Path, timeout: float) -> None:
    """Wait for ``meshscope serve`` to answer /health; exit with its log's tail if it dies or is late."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if client.get("/health").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit("server did not start: " + log_path.read_text()[-2000:])
        time.sleep(0.1)


HAPROXY_CONFIG = """
global
    nbthread 1
    maxconn 1000
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
listen proxy
    bind 127.0.0.1:{port}
    server upstream {host}:{upstream_port}
"""


def start_haproxy(host: str, upstream_port: int, work: Path) -> tuple[subprocess.Popen, int]:
    """Debian's haproxy in TCP mode on one thread, in front of ``host:upstream_port``: a C proxy
    that does nothing but forward, what any proxy hop costs on this machine."""
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(binary).exists():
        raise SystemExit("haproxy not found (apt-get install haproxy, or make system-deps)")
    port = free_port()
    config = work / "haproxy.cfg"
    config.write_text(HAPROXY_CONFIG.format(port=port, host=host, upstream_port=upstream_port))
    process = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port("127.0.0.1", port)
    return process, port
