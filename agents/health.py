"""Health probe of the service: a TCP connect, or ``GET path`` answered 2xx/3xx when configured.

Runs as an asyncio task beside the proxy; each probe records ``health.up`` (0/1) and
``health.probe_ms`` samples.
"""

from __future__ import annotations

import asyncio
import logging
import time

from agents.telemetry import Recorder

logger = logging.getLogger(__name__)


async def probe_once(host: str, port: int, path: str | None, timeout: float) -> tuple[bool, float]:
    started = time.perf_counter()
    up = False
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        if path is None:
            up = True
        else:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: meshscope-agent\r\nConnection: close\r\n\r\n".encode())
            status_line = await asyncio.wait_for(reader.readline(), timeout)
            parts = status_line.split()
            up = len(parts) >= 2 and parts[1][:1] in (b"2", b"3")
    except (OSError, asyncio.TimeoutError):
        up = False
    finally:
        if writer is not None:
            writer.close()
    return up, (time.perf_counter() - started) * 1000.0


async def probe_forever(recorder: Recorder, host: str, port: int, path: str | None, interval_s: float) -> None:
    while True:
        try:
            up, elapsed_ms = await probe_once(host, port, path, timeout=min(interval_s, 5.0))
            recorder.sample("health.up", 1.0 if up else 0.0)
            recorder.sample("health.probe_ms", elapsed_ms)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("health probe failed")
        await asyncio.sleep(interval_s)
