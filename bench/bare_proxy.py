"""The floor for a Python sidecar: a bare uvloop TCP proxy, optionally feeding httptools.

    .venv/bin/python bench/bare_proxy.py LISTEN_PORT UPSTREAM_HOST:PORT [--httptools]

Two ``asyncio.Protocol`` objects per connection, bytes forwarded as they come, no telemetry, no
threads, interpreter defaults. With ``--httptools`` both directions also go through an httptools
parser with no callbacks. ``bench_http.py`` runs it beside the agent to show the floor on this
machine in the same run. Not part of the agent.
"""

from __future__ import annotations

import asyncio
import sys

import uvloop


class Upstream(asyncio.Protocol):
    def __init__(self, client: "Client") -> None:
        self.client = client

    def connection_made(self, transport) -> None:
        self.client.connected(transport)

    def data_received(self, data: bytes) -> None:
        client = self.client
        if client.response_parser is not None:
            client.response_parser.feed_data(data)
        client.transport.write(data)

    def connection_lost(self, exc) -> None:
        self.client.transport.close()


class Client(asyncio.Protocol):
    parse = False

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.upstream = None
        self.early: list[bytes] = []
        self.request_parser = self.response_parser = None
        if self.parse:
            import httptools

            self.request_parser = httptools.HttpRequestParser(self)
            self.response_parser = httptools.HttpResponseParser(self)

    def connection_made(self, transport) -> None:
        self.transport = transport
        asyncio.get_running_loop().create_task(
            asyncio.get_running_loop().create_connection(lambda: Upstream(self), self.host, self.port))

    def connected(self, upstream) -> None:
        self.upstream = upstream
        if self.early:
            upstream.write(b"".join(self.early))

    def data_received(self, data: bytes) -> None:
        if self.request_parser is not None:
            self.request_parser.feed_data(data)
        if self.upstream is None:
            self.early.append(data)
        else:
            self.upstream.write(data)

    def connection_lost(self, exc) -> None:
        if self.upstream is not None:
            self.upstream.close()


async def serve(port: int, upstream: str) -> None:
    host, _, upstream_port = upstream.rpartition(":")
    server = await asyncio.get_running_loop().create_server(lambda: Client(host, int(upstream_port)), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    Client.parse = "--httptools" in sys.argv
    uvloop.run(serve(int(sys.argv[1]), sys.argv[2]))
