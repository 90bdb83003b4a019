"""Test doubles for the MySQL observer tests: a recording Telemetry, and a tiny asyncio TCP relay
(in a background thread) that forwards bytes between a real client and the real MariaDB through
a ConnectionObserver, keeping copies to check that forwarding is byte-exact. The relay stands in
for agents/proxy.py where a test needs to see raw bytes."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

from agents.mysql.observer import MySQLObserver, MySQLOptions
from agents.observer import ListenerContext, TraceContext


@dataclass
class RecordingTelemetry:
    sample: bool = True
    inbound: TraceContext | None = None
    spans: list[dict] = field(default_factory=list)
    observations: list[dict] = field(default_factory=list)

    def emit_span(self, span: dict) -> None:
        self.spans.append(span)

    def observe(self, **kwargs) -> None:
        self.observations.append(kwargs)

    def should_sample(self, trace_id: str, sampled: bool | None) -> bool:
        return self.sample if sampled is None else sampled

    def current_inbound_context(self) -> TraceContext | None:
        return self.inbound

    def clear(self) -> None:
        self.spans.clear()
        self.observations.clear()

    def statements(self, **match) -> list[dict]:
        return [o for o in self.observations if all(o.get(k) == v for k, v in match.items())]


def context(upstream: str, direction: str = "outbound") -> ListenerContext:
    return ListenerContext(service="shop", instance="shop-1", version="1", direction=direction,
                           remote_service="catalogue-db" if direction == "outbound" else "",
                           listen_address="127.0.0.1:0", upstream_address=upstream, protocol="mysql")


@dataclass
class Connection:
    observer: MySQLObserver
    from_client: bytearray = field(default_factory=bytearray)
    to_server: bytearray = field(default_factory=bytearray)
    from_server: bytearray = field(default_factory=bytearray)
    to_client: bytearray = field(default_factory=bytearray)
    done: threading.Event = field(default_factory=threading.Event)
    transcript: list[tuple[str, bytes, int]] = field(default_factory=list)  # ("c"|"s", data, now_ns)


class Relay:
    """``Relay(upstream_host, upstream_port, telemetry).start()``; ``.port`` to connect to."""

    def __init__(self, host: str, port: int, telemetry, direction: str = "outbound",
                 options: MySQLOptions | None = None, keep_bytes: bool = True) -> None:
        self.upstream = (host, port)
        self.telemetry = telemetry
        self.direction = direction
        self.options = options or MySQLOptions()
        self.keep_bytes = keep_bytes
        self.connections: list[Connection] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None

    def start(self) -> Relay:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def close():
            self._server.close()
        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def wait_closed(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        for connection in list(self.connections):
            connection.done.wait(max(0.0, deadline - time.monotonic()))

    async def _serve(self, client_reader, client_writer) -> None:
        observer = MySQLObserver(context(f"{self.upstream[0]}:{self.upstream[1]}", self.direction),
                                 self.telemetry, self.options)
        connection = Connection(observer)
        self.connections.append(connection)
        server_reader, server_writer = await asyncio.open_connection(*self.upstream)

        async def pump(reader, writer, from_buf, to_buf, upstream: bool):
            try:
                while data := await reader.read(65536):
                    now = time.monotonic_ns()
                    if upstream:
                        out = observer.client_data(data, now)
                    else:
                        observer.server_data(data, now)
                        out = data
                    if self.keep_bytes:
                        connection.transcript.append(("c" if upstream else "s", data, now))
                        from_buf += data
                        to_buf += out
                    writer.write(out)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                try:
                    writer.close()
                except Exception:
                    pass

        await asyncio.gather(
            pump(client_reader, server_writer, connection.from_client, connection.to_server, True),
            pump(server_reader, client_writer, connection.from_server, connection.to_client, False),
        )
        observer.closed(time.monotonic_ns())
        connection.done.set()
