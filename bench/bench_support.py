"""Shared by the benchmark scripts (run as ``python bench/NAME.py``, so this folder is on sys.path)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx


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
