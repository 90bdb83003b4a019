"""Helpers for the agent tests: an agent on its own uvloop thread, an in-memory publisher,
real upstream servers (uvicorn ASGI app, Debian nginx) and raw socket clients."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import uvloop

from agents.config import build
from agents.runtime import Agent
from agents.spool import Message
from meshscope.devbroker import free_port, wait_for_port
from meshscope.wire import decode_latency, decode_resources, decode_spans


class MemoryPublisher:
    """Collects what the exporter publishes (decoded with meshscope.wire); a fast double of
    KafkaPublisher for tests about the proxy. The Kafka path has its own tests."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.lock = threading.Lock()
        self.down = False

    def publish(self, messages):
        if self.down:
            return list(messages)
        with self.lock:
            self.messages.extend(messages)
        return []

    def partitions(self, topic):
        return None  # unknown: one message per trace, as before a real producer learns the count

    def close(self) -> None:
        pass

    def spans(self, topic: str = "meshscope.spans") -> list[dict]:
        with self.lock:
            return [s for m in self.messages if m.topic == topic for s in decode_spans(m.value)]

    def records(self, topic: str = "meshscope.metrics"):
        with self.lock:
            return [r for m in self.messages if m.topic == topic for r in decode_latency(m.value)]

    def samples(self, topic: str = "meshscope.resources"):
        with self.lock:
            return [s for m in self.messages if m.topic == topic for s in decode_resources(m.value)]


class AgentThread:
    """A real Agent (proxy + recorder + exporter) on a uvloop loop in a background thread."""

    def __init__(self, flags: dict, publisher=None, spool_dir: Path | None = None) -> None:
        flags = dict(flags)
        self._own_spool = None if spool_dir or "agent_spool_dir" in flags else tempfile.mkdtemp(prefix="agent-spool-")
        flags.setdefault("agent_spool_dir", str(spool_dir or self._own_spool))
        flags.setdefault("export_interval_s", "0.2")
        flags.setdefault("drain_timeout_s", "2")
        self.settings, self.specs = build(flags)
        self.publisher = publisher
        self.agent: Agent | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.loop = uvloop.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            self.agent = Agent(self.settings, self.specs, publisher=self.publisher)
            self.loop.run_until_complete(self.agent.start())
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.close()

    def start(self) -> AgentThread:
        self._thread.start()
        self._ready.wait(10)
        if self._error:
            raise self._error
        return self

    def port(self, index: int = 0) -> int:
        return self.agent.listeners[index].listen_port

    def stop(self) -> None:
        if self.loop is None or not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.agent.shutdown(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if self._own_spool:
            shutil.rmtree(self._own_spool, ignore_errors=True)

    def call(self, fn):
        """Run ``fn()`` on the agent's loop thread and return its result."""
        async def wrapper():
            return fn()
        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(10)


def start_uvicorn(app, host: str = "127.0.0.1"):
    """uvicorn on a free port in a thread; returns (server, port)."""
    import uvicorn

    port = free_port(host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for_port(host, port)
    return server, thread, port


NGINX_CONF = """
worker_processes 1;
daemon off;
error_log {root}/error.log warn;
pid {root}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    server {{
        listen 127.0.0.1:{port};
        root {root}/www;
        location = /status/500 {{ return 500 "boom\\n"; }}
        location = /status/404 {{ return 404; }}
        location = /hello {{ default_type text/plain; return 200 "hello\\n"; }}
        location = /upload {{ client_max_body_size 50m; client_body_buffer_size 1m; proxy_pass http://127.0.0.1:{port}/hello; }}
    }}
}}
"""


class Nginx:
    """Debian's nginx on a free port with a private prefix (static files + a few locations)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="nginx-"))
        self.root.chmod(0o755)  # nginx workers run as nobody
        self.port = free_port()
        (self.root / "www").mkdir()
        (self.root / "www" / "small.txt").write_bytes(b"x" * 100)
        (self.root / "www" / "1k.bin").write_bytes(os.urandom(1024))
        (self.root / "www" / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
        (self.root / "nginx.conf").write_text(NGINX_CONF.format(root=self.root, port=self.port))
        self.process: subprocess.Popen | None = None

    def start(self) -> Nginx:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.process = subprocess.Popen([binary, "-c", str(self.root / "nginx.conf"), "-p", str(self.root)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_for_port("127.0.0.1", self.port)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def recv_until_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def wait_until(predicate, timeout: float = 15.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


class RecordingServer:
    """A raw TCP upstream: per connection, ``handler(sock) -> bytes received`` (default: read
    until EOF, then send ``reply`` and close). ``received`` lists what each connection got."""

    def __init__(self, reply: bytes = b"", handler=None) -> None:
        import socketserver

        self.reply = reply
        self.received: list[bytes] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                data = (handler or outer._default)(self.request)
                if data:  # the agent's health probe connects and sends nothing
                    with outer.lock:
                        outer.received.append(data)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _default(self, sock: socket.socket) -> bytes:
        data = recv_until_closed(sock)
        try:
            sock.sendall(self.reply)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        return data

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def exchange_raw(port: int, payload: bytes, chunk: int = 0) -> bytes:
    """Send ``payload`` (in chunks of ``chunk`` bytes when given), half-close, read to the end."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if chunk:
                for i in range(0, len(payload), chunk):
                    sock.sendall(payload[i:i + chunk])
            else:
                sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # the agent closed: its upstream is unreachable
            return b""
        return recv_until_closed(sock)
