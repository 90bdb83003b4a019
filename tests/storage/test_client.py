"""storage.client.connect: the embedded store is shared per path; bad URLs fail clearly."""

from __future__ import annotations

import socket

import pytest

from storage.client import connect
from storage.errors import StorageError


def test_chdb_path_gives_one_shared_client(chdb_url):
    client = connect(chdb_url)
    assert client.command("SELECT 1") == 1
    assert connect(chdb_url + "/") is client  # one engine per process: every spelling of the path shares it


def test_unsupported_url_is_rejected():
    with pytest.raises(StorageError, match="unsupported ClickHouse URL"):
        connect("mysql://127.0.0.1:3306")


def test_unreachable_http_url_raises_storage_error():
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(StorageError, match=f"cannot reach ClickHouse at 127.0.0.1:{port}"):
        connect(f"http://127.0.0.1:{port}")
