"""The transparent TCP proxy: one asyncio server per listener, two protocols per connection.

Bytes from the client go through the listener's ``ConnectionObserver`` (which returns what to
forward: the same bytes, or a request head with trace context set) and bytes from the upstream go
to the client untouched, then to the observer (its work stays off the client's wait). Half-close
is forwarded (``write_eof``), a reset on one side aborts the other, and backpressure is end to end:
when one side's write buffer passes its high-water mark the other side stops being read, so memory
per connection stays bounded by the buffer limits, whatever the speeds of the two ends.

Observer factories are picked by protocol from ``OBSERVERS``; ``mysql`` is imported lazily and
falls back to plain pass-through when ``agents.mysql.observer`` is not there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from agents.http_observer import HttpObserver
from agents.observer import ConnectionObserver, ListenerContext, Telemetry
from agents.tcp import PassThroughObserver

logger = logging.getLogger(__name__)

ObserverFactory = Callable[[ListenerContext, Telemetry], ConnectionObserver]
WRITE_HIGH_WATER = 256 * 1024
EARLY_LIMIT = 256 * 1024  # client bytes buffered while the upstream connection is being made
_monotonic_ns = time.monotonic_ns


def _mysql_factory() -> ObserverFactory:
    try:
        from agents.mysql.observer import MySQLObserver
    except ImportError:
        logger.warning("agents.mysql.observer is not available: MySQL listeners pass traffic through unobserved")
        return PassThroughObserver
    return MySQLObserver


OBSERVERS: dict[str, Callable[[], ObserverFactory]] = {
    "http": lambda: HttpObserver,
    "tcp": lambda: PassThroughObserver,
    "mysql": _mysql_factory,
}


def observer_factory(protocol: str) -> ObserverFactory:
    return OBSERVERS.get(protocol, OBSERVERS["tcp"])()


def _split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class Listener:
    """One listening address, the upstream it forwards to and its observer factory."""

    def __init__(self, context: ListenerContext, telemetry: Telemetry, factory: ObserverFactory | None = None) -> None:
        self.context = context
        self.telemetry = telemetry
        self.factory = factory or observer_factory(context.protocol)
        self.listen_host, self.listen_port = _split_address(context.listen_address)
        self.upstream_host, self.upstream_port = _split_address(context.upstream_address)
        self.connections: set[ClientSide] = set()
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: ClientSide(self), self.listen_host, self.listen_port, reuse_address=True, backlog=1024
        )
        if self.listen_port == 0:  # tests listen on port 0: report the real port
            self.listen_port = self.server.sockets[0].getsockname()[1]
        logger.info(
            "%s %s listener on %s:%d -> %s:%d", self.context.direction, self.context.protocol,
            self.listen_host, self.listen_port, self.upstream_host, self.upstream_port,
        )

    def stop_accepting(self) -> None:
        if self.server is not None:
            self.server.close()

    def make_observer(self) -> ConnectionObserver:
        try:
            return self.factory(self.context, self.telemetry)
        except Exception:
            logger.exception("observer factory failed; passing the connection through")
            return PassThroughObserver()


class ClientSide(asyncio.Protocol):
    """The accepted connection; owns the pairing with its ``UpstreamSide``."""

    __slots__ = (
        "listener", "transport", "observer", "upstream", "early", "early_size",
        "client_eof", "upstream_eof", "finished", "_client_eof_hook",
    )

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.transport: asyncio.Transport | None = None
        self.upstream: asyncio.Transport | None = None
        self.early: list[bytes] = []
        self.early_size = 0
        self.client_eof = False
        self.upstream_eof = False
        self.finished = False

    # ------------------------------------------------------------------ client events

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        listener = self.listener
        listener.connections.add(self)
        observer = self.observer = listener.make_observer()
        hook = getattr(observer, "connection_made", None)
        if hook is not None:
            try:
                hook(transport.get_extra_info("peername"))
            except Exception:
                logger.exception("observer connection_made failed")
        self._client_eof_hook = getattr(observer, "client_eof", None)
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        listener = self.listener
        try:
            await asyncio.get_running_loop().create_connection(
                lambda: UpstreamSide(self), listener.upstream_host, listener.upstream_port
            )
        except OSError as exc:
            logger.info("upstream %s:%d unreachable: %s", listener.upstream_host, listener.upstream_port, exc)
            if self.transport is not None:
                self.transport.abort()
            self._finish()

    def upstream_connected(self, upstream: asyncio.Transport) -> None:
        if self.finished:
            upstream.abort()
            return
        self.upstream = upstream
        upstream.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        if self.early:
            upstream.write(b"".join(self.early))
            self.early, self.early_size = [], 0
            self.transport.resume_reading()
        if self.client_eof and upstream.can_write_eof():
            upstream.write_eof()

    def data_received(self, data: bytes) -> None:
        try:
            out = self.observer.client_data(data, _monotonic_ns())
        except Exception:  # observers must not raise; if one does, the traffic still flows
            logger.exception("observer failed on client bytes; passing the connection through")
            self.observer, out = PassThroughObserver(), data
        upstream = self.upstream
        if upstream is not None:
            upstream.write(out)
        else:
            self.early.append(out)
            self.early_size += len(out)
            if self.early_size > EARLY_LIMIT:
                self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.client_eof = True
        held = b""
        if self._client_eof_hook is not None:
            try:
                held = self._client_eof_hook(_monotonic_ns())
            except Exception:
                logger.exception("observer client_eof failed")
        upstream = self.upstream
        if upstream is None:
            if held:
                self.early.append(held)
            return True
        if held:
            upstream.write(held)
        if self.upstream_eof:
            self._close_both()
        elif upstream.can_write_eof():
            upstream.write_eof()
        return True  # keep the transport open: the response may still be coming (half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        upstream = self.upstream
        if upstream is not None:
            if exc is not None:
                upstream.abort()  # a reset by the client is passed on as a reset
            else:
                upstream.close()
        self._finish()

    def pause_writing(self) -> None:
        # the client reads slower than the upstream sends: stop reading the upstream
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None and not self.upstream.is_closing():
            self.upstream.resume_reading()

    # ------------------------------------------------------------------ shared

    def _close_both(self) -> None:
        if self.upstream is not None:
            self.upstream.close()
        if self.transport is not None:
            self.transport.close()

    def _finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        self.listener.connections.discard(self)
        try:
            self.observer.closed(_monotonic_ns())
        except Exception:
            logger.exception("observer closed() failed")

    def is_idle(self) -> bool:
        idle = getattr(self.observer, "is_idle", None)
        return bool(idle and idle())

    def close(self) -> None:
        self._close_both()


class UpstreamSide(asyncio.Protocol):
    __slots__ = ("client", "transport", "observer")

    def __init__(self, client: ClientSide) -> None:
        self.client = client
        self.observer = client.observer

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.client.upstream_connected(transport)

    def data_received(self, data: bytes) -> None:
        client = self.client
        now_ns = _monotonic_ns()
        # forwarded before it is observed: the response's parsing and accounting (half of the
        # agent's work per request, and most of it with cold caches at low rates) stay off the
        # client's wait; nothing the observer does can change these bytes
        client.transport.write(data)
        try:
            client.observer.server_data(data, now_ns)
        except Exception:
            logger.exception("observer failed on server bytes; passing the connection through")
            client.observer = PassThroughObserver()

    def eof_received(self) -> bool:
        client = self.client
        client.upstream_eof = True
        if client.client_eof:
            client._close_both()
        elif client.transport.can_write_eof():
            client.transport.write_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        client = self.client
        transport = client.transport
        if transport is not None:
            if exc is not None:
                transport.abort()
            else:
                transport.close()
        client._finish()

    def pause_writing(self) -> None:
        # the upstream reads slower than the client sends: stop reading the client
        self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        transport = self.client.transport
        if not transport.is_closing():
            transport.resume_reading()


class Proxy:
    """All listeners of one agent."""

    def __init__(self, listeners: list[Listener]) -> None:
        self.listeners = listeners

    async def start(self) -> None:
        for listener in self.listeners:
            await listener.start()

    async def drain(self, timeout_s: float) -> None:
        """Stop accepting; let connections finish (idle keep-alive ones are closed), then close
        whatever is left after ``timeout_s``."""
        for listener in self.listeners:
            listener.stop_accepting()
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            remaining = [c for listener in self.listeners for c in list(listener.connections)]
            if not remaining:
                break
            for connection in remaining:
                if connection.is_idle():
                    connection.close()
            await asyncio.sleep(0.05)
        for listener in self.listeners:
            for connection in list(listener.connections):
                connection.close()
        # connection_lost (which reports what was pending) comes a loop iteration or two later
        settle = asyncio.get_running_loop().time() + 1.0
        while any(listener.connections for listener in self.listeners) and asyncio.get_running_loop().time() < settle:
            await asyncio.sleep(0.01)
