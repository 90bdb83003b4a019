"""CPU and memory of the service's process (psutil), found by its pid or the port it listens on.

Finding the pid by port walks every socket of the machine (``psutil.net_connections``), tens of
milliseconds of Python on the exporter thread on a busy host: after a lookup that found nothing it
is tried again only every ``LOOKUP_RETRY_S``.

The memory limit comes from the process's cgroup: v2 ``memory.max`` or v1
``memory.limit_in_bytes`` ("max" or an absurdly large v1 value mean no limit, then not sampled).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import psutil

from agents.telemetry import Recorder

logger = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
LOOKUP_RETRY_S = 60.0
_V1_UNLIMITED = 1 << 60


def find_listener_pid(port: int) -> int | None:
    """The pid of the process listening on TCP ``port`` (any address), if any."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    for connection in connections:
        if connection.status == psutil.CONN_LISTEN and connection.laddr and connection.laddr.port == port and connection.pid:
            return connection.pid
    return None


def cgroup_memory_limit(pid: int, root: Path = CGROUP_ROOT) -> int | None:
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        hierarchy, controllers, path = line.split(":", 2)
        path = path.lstrip("/")
        if hierarchy == "0" and controllers == "":
            candidates = [root / path / "memory.max", root / "memory.max"]
        elif "memory" in controllers.split(","):
            candidates = [root / "memory" / path / "memory.limit_in_bytes", root / "memory" / "memory.limit_in_bytes"]
        else:
            continue
        for candidate in candidates:
            try:
                text = candidate.read_text().strip()
            except OSError:
                continue
            if text == "max":
                return None
            if text.isdigit() and int(text) < _V1_UNLIMITED:
                return int(text)
            return None
    return None


class ResourceSampler:
    """Call it periodically (the exporter does): adds samples to the recorder."""

    def __init__(self, recorder: Recorder, *, pid: int | None = None, port: int | None = None, clock=time.monotonic) -> None:
        self.recorder = recorder
        self.pid = pid
        self.port = port
        self._clock = clock
        self._next_lookup = 0.0  # monotonic time before which a port lookup is not tried again
        self._process: psutil.Process | None = None
        self._last: tuple[float, float] | None = None  # (wall seconds, cpu seconds)

    def _resolve(self) -> psutil.Process | None:
        if self._process is not None and self._process.is_running():
            return self._process
        self._process, self._last = None, None
        pid = self.pid
        if pid is None and self.port:
            now = self._clock()
            if now < self._next_lookup:
                return None
            pid = find_listener_pid(self.port)
            if pid is None:
                self._next_lookup = now + LOOKUP_RETRY_S
        if pid is None:
            return None
        try:
            self._process = psutil.Process(pid)
        except psutil.Error:
            return None
        return self._process

    def __call__(self) -> None:
        process = self._resolve()
        if process is None:
            return
        try:
            with process.oneshot():
                times = process.cpu_times()
                rss = process.memory_info().rss
            cpu = times.user + times.system
        except psutil.Error:
            self._process = None
            return
        now = self._clock()
        if self._last is not None and now > self._last[0]:
            self.recorder.sample("process.cpu.utilization", (cpu - self._last[1]) / (now - self._last[0]))
        self._last = (now, cpu)
        self.recorder.sample("process.memory.rss", rss)
        limit = cgroup_memory_limit(process.pid)
        if limit is not None:
            self.recorder.sample("process.memory.limit", limit)
