"""Fixtures for the agent tests: real upstream servers (uvicorn + an ASGI app, Debian nginx)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest

from tests.agents.support import Nginx, start_uvicorn

TRACE_HEADERS = (b"x-b3-traceid", b"x-b3-spanid", b"x-b3-parentspanid", b"x-b3-sampled", b"x-b3-flags", b"b3", b"traceparent")


async def app(scope, receive, send):
    """A small ASGI service: /hello, /echo, /sleep?ms=, /status/N, /stream?n=, /users/ID,
    /call?to=URL[&forward=1] (calls another service, forwarding trace headers when asked), /ws."""
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": "echo:" + (message.get("text") or "")})
    if scope["type"] != "http":
        return
    path = scope["path"]
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    status, body, headers = 200, b"", [(b"content-type", b"text/plain")]
    if path == "/echo":
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
    elif path == "/sleep":
        await asyncio.sleep(float(query.get("ms", "1")) / 1000)
        body = b"slept"
    elif path.startswith("/status/"):
        status = int(path.rsplit("/", 1)[1])
        body = b"status"
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i in range(int(query.get("n", "10"))):
            await send({"type": "http.response.body", "body": b"chunk%d;" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    elif path == "/call":
        forward = {}
        if query.get("forward") == "1":
            forward = {k.decode(): v.decode() for k, v in scope["headers"] if k in TRACE_HEADERS}
        async with httpx.AsyncClient() as client:
            response = await client.get(query["to"], headers=forward)
        body = b"called:%d" % response.status_code
    else:
        body = b"hello " + path.encode()
    await send({"type": "http.response.start", "status": status, "headers": headers + [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="session")
def asgi_upstream():
    """uvicorn serving ``app`` on a free port; yields the port."""
    server, thread, port = start_uvicorn(app)
    yield port
    server.should_exit = True
    thread.join(5)


@pytest.fixture(scope="session")
def nginx():
    if not shutil.which("nginx") and not Path("/usr/sbin/nginx").exists():
        pytest.skip("nginx is not installed (apt-get install nginx)")
    server = Nginx().start()
    yield server
    server.stop()
