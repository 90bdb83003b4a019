"""The ClickHouse HTTP test double itself, spoken to over raw HTTP: the parts of ClickHouse's HTTP
interface that clickhouse-connect relies on, and bad requests answered without harm."""

from __future__ import annotations

import gzip
import http.client
import json
import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode, urlsplit

import lz4.frame
import pytest

from storage.client import connect


GARBAGE = random.Random(20261121)  # seeded: the same garbage on every run


def _request(url: str, method: str, params: dict | None = None, body: bytes | None = None, headers: dict | None = None):
    address = urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        connection.request(method, "/?" + urlencode(params or {}), body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


@pytest.fixture
def table(clickhouse_over_http):
    name = f"{clickhouse_over_http.database}.numbers"
    clickhouse_over_http.client.command(f"CREATE TABLE {name} (n UInt32, label String) ENGINE = MergeTree ORDER BY n")
    return clickhouse_over_http.url, name


def test_client_traffic_is_lz4_both_ways(clickhouse_http, clickhouse_over_http):
    requests, responses = clickhouse_http.compressed_requests, clickhouse_http.compressed_responses
    client = clickhouse_over_http.client
    now = datetime.now(UTC)
    client.insert(f"{clickhouse_over_http.database}.resource_samples", [[now, "svc", "i", "1", "m", 1.0]],
                  column_names=["ts", "service", "instance", "version", "metric", "value"])
    assert client.query(f"SELECT value FROM {clickhouse_over_http.database}.resource_samples").result_rows == [(1.0,)]
    assert clickhouse_http.compressed_requests > requests
    assert clickhouse_http.compressed_responses > responses


def test_ping_and_unknown_paths(clickhouse_http):
    address = urlsplit(clickhouse_http.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    connection.request("GET", "/ping")
    response = connection.getresponse()
    assert (response.status, response.read()) == (200, b"Ok.\n")
    connection.request("GET", "/no/such/handler")  # same keep-alive connection
    response = connection.getresponse()
    assert response.status == 404
    response.read()
    connection.close()


def test_query_in_url_with_parameters_database_and_headers(clickhouse_over_http):
    status, headers, body = _request(clickhouse_over_http.url, "GET", {
        "query": "SELECT {x:UInt8} + 1 AS answer, currentDatabase()", "param_x": "41",
        "database": clickhouse_over_http.database, "query_id": "q-123", "session_id": "ignored", "wait_end_of_query": "1",
    })
    assert status == 200, body
    assert body == f"42\t{clickhouse_over_http.database}\n".encode()
    assert headers["x-clickhouse-format"] == "TabSeparated"
    assert headers["x-clickhouse-query-id"] == "q-123"
    assert headers["x-clickhouse-timezone"]
    assert headers["x-clickhouse-server-display-name"]
    assert set(json.loads(headers["x-clickhouse-summary"])) >= {"read_rows", "written_rows", "elapsed_ns"}


def test_default_format_and_ddl_without_format_header(clickhouse_over_http):
    status, headers, body = _request(clickhouse_over_http.url, "POST", {"default_format": "JSONEachRow"}, b"SELECT 1 AS one")
    assert (status, headers["x-clickhouse-format"], body) == (200, "JSONEachRow", b'{"one":1}\n')
    status, headers, body = _request(clickhouse_over_http.url, "POST", None, f"CREATE TABLE {clickhouse_over_http.database}.ddl (a UInt8) ENGINE = Memory".encode())
    assert (status, body) == (200, b"") and "x-clickhouse-format" not in headers  # no result set


def test_settings_pass_through_and_unknown_settings_fail(clickhouse_http):
    status, _, body = _request(clickhouse_http.url, "POST", {"max_threads": "3", "compress": "0"}, b"SELECT getSetting('max_threads')")
    assert (status, body) == (200, b"3\n")
    status, headers, body = _request(clickhouse_http.url, "POST", {"no_such_setting": "1"}, b"SELECT 1")
    assert status == 404 and headers["x-clickhouse-exception-code"] == "115", body


def test_get_is_read_only(clickhouse_over_http):
    status, headers, body = _request(clickhouse_over_http.url, "GET", {"query": f"CREATE TABLE {clickhouse_over_http.database}.x (a UInt8) ENGINE = Memory"})
    assert status >= 400 and headers["x-clickhouse-exception-code"] == "164", body  # READONLY


@pytest.mark.parametrize("encoding", ["identity", "gzip", "lz4"])
def test_insert_with_data_in_a_compressed_body(table, encoding):
    url, name = table
    data = "".join(f"{n},label-{n}\n" for n in range(1000)).encode()
    body = {"identity": data, "gzip": gzip.compress(data), "lz4": lz4.frame.compress(data)}[encoding]
    status, _, answer = _request(url, "POST", {"query": f"INSERT INTO {name} FORMAT CSV"}, body, {"Content-Encoding": encoding})
    assert status == 200, answer
    status, _, answer = _request(url, "POST", None, f"SELECT count(), sum(n) FROM {name}".encode())
    assert answer == b"1000\t499500\n"


def test_query_and_data_both_in_the_body(table):
    url, name = table
    status, _, answer = _request(url, "POST", None, f"INSERT INTO {name} FORMAT TabSeparated\n7\tseven\n".encode())
    assert status == 200, answer
    assert _request(url, "POST", None, f"SELECT label FROM {name} WHERE n = 7".encode())[2] == b"seven\n"


@pytest.mark.parametrize("encoding", ["lz4", "gzip"])
def test_response_compressed_as_accepted(clickhouse_http, encoding):
    query = b"SELECT number FROM system.numbers LIMIT 10000"
    status, headers, body = _request(clickhouse_http.url, "POST", {"enable_http_compression": "1"}, query, {"Accept-Encoding": encoding})
    assert status == 200 and headers["content-encoding"] == encoding
    plain = lz4.frame.decompress(body) if encoding == "lz4" else gzip.decompress(body)
    assert plain == "".join(f"{n}\n" for n in range(10000)).encode()


@pytest.mark.parametrize("body, headers", [
    (GARBAGE.randbytes(4096), {}),
    (b"SELECT 1" + bytes(range(256)), {}),
    (GARBAGE.randbytes(512), {"Content-Encoding": "lz4"}),
    (lz4.frame.compress(b"SELECT 1")[:-6], {"Content-Encoding": "lz4"}),  # truncated frame
    (b"\x1f\x8bnot gzip at all", {"Content-Encoding": "gzip"}),
    (b"SELECT 1", {"Content-Encoding": "snappy-ish"}),
    (b"\xc3\xa9 SELECT 1", {}),
    (b"-- nothing but a comment", {}),
    (b"1 + 1", {}),  # chdb alone would run it as SELECT 1 + 1 (implicit_select)
], ids=["random", "trailing-garbage", "lz4-garbage", "lz4-truncated", "gzip-garbage", "unknown-encoding",
        "leading-garbage", "comment-only", "bare-expression"])
def test_garbage_is_answered_with_an_error_and_the_double_keeps_serving(clickhouse_http, body, headers):
    status, answer_headers, answer = _request(clickhouse_http.url, "POST", None, body, headers)
    assert 400 <= status < 600
    assert answer_headers["x-clickhouse-exception-code"].isdigit()
    assert answer.startswith(b"Code: ")
    assert _request(clickhouse_http.url, "POST", None, b"SELECT 1")[2] == b"1\n"


def test_garbage_native_insert_through_the_client(clickhouse_over_http):
    from clickhouse_connect.driver.exceptions import DatabaseError

    with pytest.raises(DatabaseError):
        clickhouse_over_http.client.raw_insert(f"{clickhouse_over_http.database}.resource_samples", insert_block=GARBAGE.randbytes(2048), fmt="Native")
    assert clickhouse_over_http.client.command("SELECT 1") == 1


def test_bad_chunked_body(clickhouse_http):
    address = urlsplit(clickhouse_http.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    connection.putrequest("POST", "/")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    connection.send(b"zz\r\nSELECT 1\r\n0\r\n\r\n")
    response = connection.getresponse()
    assert response.status == 400
    connection.close()
    assert _request(clickhouse_http.url, "POST", None, b"SELECT 1")[2] == b"1\n"


def test_concurrent_clients(clickhouse_over_http):
    table = f"{clickhouse_over_http.database}.resource_samples"

    def work(worker: int) -> int:
        client = connect(clickhouse_over_http.url)
        try:
            now = datetime.now(UTC)  # inside the retention period: older parts would be dropped by TTL
            rows = [[now + timedelta(milliseconds=i), "svc", f"i{worker}", "1", "m", float(i)] for i in range(500)]
            client.insert(table, rows, column_names=["ts", "service", "instance", "version", "metric", "value"])
            return client.command(f"SELECT count() FROM {table} WHERE instance = {{i:String}}", parameters={"i": f"i{worker}"})
        finally:
            client.close()

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(work, range(8))) == [500] * 8
