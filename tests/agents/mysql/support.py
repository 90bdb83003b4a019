"""Helpers for the MySQL observer tests: a recording Telemetry; ``ProxyRelay``, the real proxy
(agents/proxy.py) with a MySQLObserver per connection, feeding a recording telemetry, in front of
a byte-recording ``Tap`` in front of the real MariaDB, so that tests see what the client sent,
what the proxy forwarded and what the server answered; and ``Relay``, the small asyncio relay the
tests used before the proxy existed (kept as the tap, and for isolating the decoder from it)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from agents.mysql.observer import MySQLObserver, MySQLOptions
from agents.observer import ListenerContext, TraceContext
from agents.tcp import PassThroughObserver


def _stop_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    async def cancel_tasks():
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run_coroutine_threadsafe(cancel_tasks(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


class RecordingTelemetry:
    """Keeps what an observer reports. Fed by a proxy on another thread (``ProxyRelay``), reads
    first let that proxy's loop finish the callback it is in (``settle``): the proxy writes a
    response to the client before observing it, so a client holding its response could otherwise
    read before the observation was made."""

    def __init__(self, sample: bool = True, inbound: TraceContext | None = None) -> None:
        self.sample = sample
        self.inbound = inbound
        self.settle: Callable[[], None] = lambda: None
        self._spans: list[dict] = []
        self._observations: list[dict] = []

    @property
    def spans(self) -> list[dict]:
        self.settle()
        return self._spans

    @property
    def observations(self) -> list[dict]:
        self.settle()
        return self._observations

    def emit_span(self, span: dict) -> None:
        self._spans.append(span)

    def observe(self, **kwargs) -> None:
        self._observations.append(kwargs)

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
    """``Relay(upstream_host, upstream_port, telemetry).start()``; ``.port`` to connect to.
    ``telemetry=None``: a plain byte-recording tap, no observer."""

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
        _stop_loop(self._loop, self._thread)

    def wait_closed(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        for connection in list(self.connections):
            connection.done.wait(max(0.0, deadline - time.monotonic()))

    async def _serve(self, client_reader, client_writer) -> None:
        observer = (MySQLObserver(context(f"{self.upstream[0]}:{self.upstream[1]}", self.direction),
                                  self.telemetry, self.options) if self.telemetry is not None else PassThroughObserver())
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


class _RecordingObserver:
    """Wraps the MySQLObserver the proxy drives, keeping copies of what passes through it."""

    def __init__(self, observer: MySQLObserver, connection: Connection) -> None:
        self.observer = observer
        self.connection = connection

    def client_data(self, data: bytes, now_ns: int) -> bytes:
        out = self.observer.client_data(data, now_ns)
        self.connection.from_client += data
        self.connection.transcript.append(("c", data, now_ns))
        return out

    def server_data(self, data: bytes, now_ns: int) -> None:
        self.observer.server_data(data, now_ns)
        self.connection.to_client += data  # the proxy writes to the client what it showed us
        self.connection.transcript.append(("s", data, now_ns))

    def closed(self, now_ns: int) -> None:
        self.observer.closed(now_ns)
        self.connection.done.set()

    def is_idle(self) -> bool:
        return self.observer.is_idle()

    def connection_made(self, peername) -> None:
        self.observer.connection_made(peername)


class ProxyRelay:
    """The real proxy (a Listener of agents/proxy.py on its own loop thread) with MySQLObservers,
    forwarding to a byte-recording ``Tap`` in front of MariaDB. ``.connections`` as for Relay:
    ``from_client``/``to_client`` are what the proxy got from each side; ``to_server``/``from_server``
    come from the tap (matched in ``check_forwarding``, since the tap cannot tell connections apart)."""

    def __init__(self, host: str, port: int, telemetry, direction: str = "outbound",
                 options: MySQLOptions | None = None) -> None:
        self.tap = Relay(host, port, None)
        self.telemetry = telemetry
        self.direction = direction
        self.options = options or MySQLOptions()
        self.connections: list[Connection] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._listener = None

    def _factory(self, listener_context: ListenerContext, telemetry) -> _RecordingObserver:
        connection = Connection(MySQLObserver(listener_context, telemetry, self.options))
        self.connections.append(connection)
        return _RecordingObserver(connection.observer, connection)

    def start(self) -> ProxyRelay:
        from agents.proxy import Listener

        self.tap.start()
        self._thread.start()
        self._listener = Listener(context(f"127.0.0.1:{self.tap.port}", self.direction), self.telemetry,
                                  factory=self._factory)
        asyncio.run_coroutine_threadsafe(self._listener.start(), self._loop).result(10)
        self.port = self._listener.listen_port
        if isinstance(self.telemetry, RecordingTelemetry):
            self.telemetry.settle = self._settle
        return self

    def _settle(self) -> None:
        # a callback queued now runs after the one in progress (the forwarding and observing of
        # whatever a client has already received)
        if self._loop.is_running() and threading.current_thread() is not self._thread:
            asyncio.run_coroutine_threadsafe(asyncio.sleep(0), self._loop).result(10)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._listener.stop_accepting)
        _stop_loop(self._loop, self._thread)
        self.tap.stop()

    def wait_closed(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        for connection in list(self.connections):
            connection.done.wait(max(0.0, deadline - time.monotonic()))
        self.tap.wait_closed(max(0.1, deadline - time.monotonic()))

    def check_forwarding(self) -> None:
        """Byte for byte: what each client sent reached the server, and what the server sent is
        what the proxy handed to its client."""
        self.wait_closed()
        assert sorted(bytes(c.from_client) for c in self.connections) == sorted(bytes(t.to_server) for t in self.tap.connections)
        assert sorted(bytes(c.to_client) for c in self.connections) == sorted(bytes(t.from_server) for t in self.tap.connections)
