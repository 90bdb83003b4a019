"""The ClickHouse client factory: one setting (``MESHSCOPE_CLICKHOUSE_URL``) picks the transport.

- ``chdb:///abs/dir``: the embedded engine, in-process. chdb allows one data directory per
  process and one process per directory, so the client is cached per path and shared by every
  thread of the process (the engine serialises access safely).
- ``http(s)://[user:password@]host:port``: a ClickHouse server over HTTP (production, clusters).

Both are clickhouse-connect ``Client`` objects with the same API, so nothing above this module
knows which transport it talks to.
"""

from __future__ import annotations

import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from storage.errors import StorageError

_embedded: dict[str, Client] = {}
_embedded_lock = threading.Lock()


def connect(url: str, database: str | None = None) -> Client:
    """A client for ``url``; ``database`` becomes the default database once it exists."""
    if url.startswith("chdb://"):
        return _embedded_client(url)
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise StorageError(f"unsupported ClickHouse URL {url!r}: use chdb:///path or http(s)://host:port")
    try:
        return clickhouse_connect.get_client(
            host=parsed.hostname,
            port=parsed.port or (8443 if parsed.scheme == "https" else 8123),
            username=unquote(parsed.username or "default"),
            password=unquote(parsed.password or ""),
            secure=parsed.scheme == "https",
            compress="lz4",
            autogenerate_session_id=False,
        )
    except Exception as exc:
        raise StorageError(f"cannot reach ClickHouse at {parsed.hostname}:{parsed.port}: {exc}") from exc


def _embedded_client(url: str) -> Client:
    path = str(Path(url.removeprefix("chdb://")).resolve())
    with _embedded_lock:
        client = _embedded.get(path)
        if client is None:
            Path(path).mkdir(parents=True, exist_ok=True)
            try:
                client = clickhouse_connect.get_client(interface="chdb", path=path)
            except Exception as exc:
                raise StorageError(
                    f"cannot open the embedded ClickHouse store at {path} (another process may own it): {exc}"
                ) from exc
            _embedded[path] = client
        return client
