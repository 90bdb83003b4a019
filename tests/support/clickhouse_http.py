"""A TEST DOUBLE of a ClickHouse server: the ClickHouse HTTP interface, with the real engine behind it.

No ClickHouse server binary can be installed on the project's machines, yet production talks to
ClickHouse over HTTP. This module serves enough of ClickHouse's HTTP interface for an unmodified
clickhouse-connect ``HttpClient`` and executes every statement in the real ClickHouse engine
(chdb, in this process, on the data directory the test session already uses). Only the HTTP
framing is imitated here; SQL, data formats, settings and errors all come from the engine.

What it serves: ``GET /ping`` and ``GET|POST /`` with the query in the ``query`` URL parameter
and/or the body (ClickHouse joins them with a newline), ``database``, ``default_format`` and
``query_id`` parameters, settings as URL parameters (transport-only ones are dropped), query
parameters as ``param_<name>=``, ``INSERT ... FORMAT <fmt>`` with the data in the body (ingested
with ``INSERT ... FROM INFILE``, as clickhouse-connect's own chdb backend does), request bodies
with ``Content-Encoding: lz4`` (LZ4 frame), ``gzip`` or ``deflate``, responses compressed when the
client sends ``Accept-Encoding`` and ``enable_http_compression`` is on (the request's parameter,
else the engine's default, as a server's profile would say),
the ``X-ClickHouse-*`` response headers, and errors as ClickHouse sends them: an HTTP status
chosen by error code, a ``Code: N. DB::Exception: ...`` body and ``X-ClickHouse-Exception-Code``.

What it does not do: users and authentication (any credentials are accepted), sessions,
multipart/external data, progress headers, ClickHouse's own ``compress``/``decompress`` block
format, streaming of large results (a result is buffered before it is sent). GET requests run
with ``readonly=2``, like the real server. Where chdb's defaults differ from a server's, the
server's behaviour wins: ``implicit_select=0`` unless the request sets it, and a request that does
not start with a statement is a syntax error (chdb alone answers it with an empty success).

Usage (tests/conftest.py does this once per session)::

    with ClickHouseHttpDouble(data_dir) as server:
        client = storage.client.connect(server.url)
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import socket
import tempfile
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import chdb
import lz4.frame

logger = logging.getLogger(__name__)

DISPLAY_NAME = "meshscope-test-double"

# URL parameters the HTTP layer consumes itself; anything else that is not ``param_*`` is a setting.
_TRANSPORT_PARAMS = frozenset({
    "query", "database", "default_format", "query_id", "user", "password", "quota_key", "role",
    "session_id", "session_timeout", "session_check", "compress", "decompress", "buffer_size",
    "wait_end_of_query", "client_protocol_version", "send_progress_in_http_headers",
    "http_headers_progress_interval_ms", "enable_http_compression", "http_zlib_compression_level",
})
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
# An INSERT whose data follows the statement: the data starts after "FORMAT <name>" and one
# whitespace character (ClickHouse's rule; see "Inserting data" in the HTTP interface docs).
_INSERT_WITH_DATA = re.compile(rb"\A\s*(INSERT\s.*?)\bFORMAT\s+(\w+)[ \t]*(?:\r?\n|\s|\Z)", re.IGNORECASE | re.DOTALL)
# "INSERT ... VALUES (...)" and "INSERT ... SELECT" carry their rows in the statement itself.
_INLINE_DATA = re.compile(rb"\b(VALUES|SELECT)\b", re.IGNORECASE)
_STATEMENT_START = re.compile(rb"\A(?:\s|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*[A-Za-z(]", re.DOTALL)
_SETTINGS_CLAUSE = re.compile(r"\bSETTINGS\b", re.IGNORECASE)
_ERROR_CODE = re.compile(r"Code: (\d+)\.")
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# HTTP status by ClickHouse error code, after ClickHouse's exceptionCodeToHTTPStatus; default 500.
_BAD_REQUEST = {
    6, 25, 26, 27, 32, 33, 38, 41, 43, 44, 53, 62, 69, 72, 117, 130, 131, 158, 159, 160, 161, 174, 190,
    271, 344, 386, 395, 407, 417, 456, 457,
}
_NOT_FOUND = {46, 47, 50, 56, 60, 63, 73, 81, 115, 171, 336}
_STATUS_BY_CODE = {**{code: 400 for code in _BAD_REQUEST}, **{code: 404 for code in _NOT_FOUND}, 48: 501, 516: 401}
_CONTENT_TYPES = {
    "TabSeparated": "text/tab-separated-values; charset=UTF-8",
    "TSV": "text/tab-separated-values; charset=UTF-8",
    "TabSeparatedWithNames": "text/tab-separated-values; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8; header=absent",
    "JSON": "application/json; charset=UTF-8",
    "JSONEachRow": "application/x-ndjson; charset=UTF-8",
}
# ClickHouse's own codes for what the HTTP layer itself rejects.
UNKNOWN_COMPRESSION_METHOD = 1  # UNSUPPORTED_METHOD
CANNOT_DECOMPRESS = 271
CANNOT_READ_ALL_DATA = 33


class ClickHouseError(Exception):
    """An error to answer the way ClickHouse does: ``Code: N. DB::Exception: ...``."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class ClickHouseHttpDouble:
    """Serves the ClickHouse HTTP interface on ``127.0.0.1:<port>`` (a free one by default) over the
    chdb engine at ``data_dir``, from a daemon thread of this process. ``url`` is what to give
    ``storage.client.connect``; ``requests_served`` and ``errors_answered`` count requests."""

    def __init__(self, data_dir: str | os.PathLike, port: int = 0) -> None:
        self.data_dir = os.path.realpath(data_dir)
        Path(self.data_dir).mkdir(parents=True, exist_ok=True)
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._anchor = None  # keeps the engine up between requests
        self.timezone = "UTC"
        self.version = ""
        self.compress_by_default = False
        self.requests_served = 0
        self.errors_answered = 0
        self.compressed_requests = 0
        self.compressed_responses = 0

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ClickHouseHttpDouble:
        if self._server is not None:
            return self
        self._anchor = chdb.connect(self.data_dir)
        version, timezone = self._anchor.query("SELECT version(), timezone()", "TabSeparated").bytes().decode().split()
        self.version, self.timezone = version, timezone
        # What the server's profile says when a request does not set enable_http_compression.
        self.compress_by_default = self._anchor.query(
            "SELECT value FROM system.settings WHERE name = 'enable_http_compression'", "TabSeparated").bytes().strip() == b"1"
        double = self

        class Handler(_Handler):
            server_double = double

        self._server = _Server(("127.0.0.1", self._port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="clickhouse-http-double", daemon=True)
        self._thread.start()
        logger.info("ClickHouse HTTP test double on %s over chdb at %s", self.url, self.data_dir)
        return self

    def stop(self) -> None:
        """Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._anchor is not None:
            self._anchor.close()
            self._anchor = None

    def __enter__(self) -> ClickHouseHttpDouble:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # ------------------------------------------------------------------------------ execution

    def execute(self, text: bytes, params: dict[str, str], read_only: bool) -> tuple[bytes, str | None, dict]:
        """Run one request's statement; returns (body, output format or None, summary)."""
        database = params.get("database") or None
        # chdb enables implicit_select (a bare expression is run as SELECT); a server does not.
        settings = {"implicit_select": "0"}
        settings.update((k, v) for k, v in params.items() if k not in _TRANSPORT_PARAMS and not k.startswith("param_"))
        if read_only:
            settings["readonly"] = "2"
        query_params = {k[len("param_"):]: v for k, v in params.items() if k.startswith("param_")}
        if not _STATEMENT_START.match(text):
            # chdb answers text that starts with an unrecognised token with an empty success; the
            # server's parser rejects it.
            raise ClickHouseError(62, "Syntax error: failed at position 1: the request does not start with a statement. (SYNTAX_ERROR)")
        insert = _INSERT_WITH_DATA.match(text)
        # A fresh handle per request: USE and SET stay private to the request (real HTTP requests
        # without a session share no state), and opening one on the running engine costs ~1 ms.
        connection = chdb.connect(self.data_dir)
        try:
            if database:
                connection.query(f"USE `{database.replace('`', '``')}`", "TabSeparated")
            if settings:
                connection.query("SET " + ", ".join(f"{_setting_name(k)} = {_quote(v)}" for k, v in settings.items()), "TabSeparated")
            if insert and not _INLINE_DATA.search(insert.group(1)):
                return self._insert(connection, insert, text[insert.end():], query_params)
            return self._query(connection, text.decode("utf-8", errors="replace"), params.get("default_format"), query_params)
        except ClickHouseError:
            raise
        except Exception as exc:  # chdb reports engine errors as exceptions carrying ClickHouse's text
            raise _engine_error(exc) from exc
        finally:
            connection.close()

    def _insert(self, connection, insert: re.Match, data: bytes, query_params: dict) -> tuple[bytes, None, dict]:
        statement, fmt = insert.group(1).decode("utf-8", errors="replace"), insert.group(2).decode()
        head, settings = statement, ""
        if match := _SETTINGS_CLAUSE.search(statement):
            head, settings = statement[:match.start()], statement[match.start():]
        with tempfile.NamedTemporaryFile(suffix=".insert", delete=False) as spool:
            spool.write(data)
        try:
            path = spool.name.replace("\\", "\\\\").replace("'", "\\'")
            result = connection.query(f"{head} FROM INFILE '{path}' {settings} FORMAT {fmt}", "TabSeparated", params=query_params)
        finally:
            os.unlink(spool.name)
        # An INFILE insert reads exactly the rows it writes.
        return b"", None, _summary(result, written=True)

    def _query(self, connection, sql: str, default_format: str | None, query_params: dict) -> tuple[bytes, str | None, dict]:
        if match := _TRAILING_FORMAT.search(sql):
            result = connection.query(sql, match.group(1), params=query_params)
            return result.bytes() or b"", match.group(1), _summary(result)
        fmt = default_format or "TabSeparated"
        if fmt not in ("TabSeparated", "TSV"):
            result = connection.query(sql, fmt, params=query_params)
            body = result.bytes() or b""
            return body, fmt if body else None, _summary(result)
        # ClickHouse reports X-ClickHouse-Format only for statements that produce a result set, even
        # an empty one (clickhouse-connect's command() relies on it). A result set always has a names
        # line in TabSeparatedWithNames; a DDL or SET produces nothing at all.
        result = connection.query(sql, "TabSeparatedWithNames", params=query_params)
        body = result.bytes() or b""
        if not body:
            return b"", None, _summary(result)
        return body[body.find(b"\n") + 1:], fmt, _summary(result)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clickhouse-connect's connection pool expects
    server_version = "ClickHouseTestDouble"
    server_double: ClickHouseHttpDouble

    def setup(self) -> None:
        super().setup()
        # Without it, Nagle's algorithm and delayed ACKs cost ~45 ms per request/response pair.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the stdlib's signature)
        logger.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._handle(read_only=True)

    def do_POST(self) -> None:
        self._handle(read_only=False)

    def _handle(self, read_only: bool) -> None:
        double = self.server_double
        double.requests_served += 1
        query_id = str(uuid.uuid4())
        try:
            url = urlsplit(self.path)
            params = dict(parse_qsl(url.query, keep_blank_values=True))
            query_id = params.get("query_id") or query_id
            body = self._read_body()
            if url.path in ("/ping", "/replicas_status") or (url.path == "/" and not params.get("query") and not body):
                self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"}, compress=False)
                return
            if url.path != "/":
                raise _HandlerNotFound(url.path)
            if self.headers.get("Content-Type", "").startswith("multipart/"):
                raise ClickHouseError(48, "multipart requests (external data) are not supported by this test double")
            if self.headers.get("Content-Encoding", "identity") != "identity":
                double.compressed_requests += 1
            body = _decode_body(body, self.headers.get("Content-Encoding", ""))
            query = params.get("query", "")
            text = (query.encode() + b"\n" + body) if query and body else (query.encode() or body)
            if not text.strip():
                raise ClickHouseError(62, "Empty query. (SYNTAX_ERROR)")
            started = time.perf_counter_ns()
            payload, fmt, summary = double.execute(text, params, read_only)
            summary.setdefault("elapsed_ns", str(time.perf_counter_ns() - started))
            headers = {
                "X-ClickHouse-Query-Id": query_id,
                "X-ClickHouse-Summary": json.dumps(_full_summary(summary), separators=(",", ":")),
            }
            if fmt:
                headers["X-ClickHouse-Format"] = fmt
                headers["X-ClickHouse-Timezone"] = double.timezone
                headers["Content-Type"] = _CONTENT_TYPES.get(fmt, "application/octet-stream")
            else:
                headers["Content-Type"] = "text/plain; charset=UTF-8"
            setting = params.get("enable_http_compression")
            wants_compression = double.compress_by_default if setting is None else setting in ("1", "true")
            self._send(200, payload, headers, compress=wants_compression)
        except _HandlerNotFound as exc:
            double.errors_answered += 1
            message = f"There is no handle {exc}\n\nUse / or /ping for health checks.\n"
            self._send(404, message.encode(), {"Content-Type": "text/plain; charset=UTF-8"}, compress=False)
        except ClickHouseError as exc:
            double.errors_answered += 1
            self._send_error(exc, query_id)
        except (ConnectionError, socket.timeout):
            self.close_connection = True
        except Exception as exc:  # the double must keep serving whatever a request does
            logger.exception("ClickHouse HTTP test double: unexpected failure")
            double.errors_answered += 1
            self._send_error(ClickHouseError(1001, f"{type(exc).__name__}: {exc} (STD_EXCEPTION)"), query_id)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size_line = self.rfile.readline(1024)
                if not size_line:
                    raise ConnectionError("connection closed inside a chunked body")
                try:
                    size = int(size_line.split(b";")[0].strip(), 16)
                except ValueError:
                    self.close_connection = True
                    raise ClickHouseError(CANNOT_READ_ALL_DATA, f"invalid chunk size line {size_line[:40]!r}") from None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_error(self, exc: ClickHouseError, query_id: str) -> None:
        message = str(exc)
        if not message.startswith("Code:"):
            message = f"Code: {exc.code}. DB::Exception: {message}"
        body = f"{message} (version {self.server_double.version})\n".encode()
        headers = {
            "Content-Type": "text/plain; charset=UTF-8",
            "X-ClickHouse-Exception-Code": str(exc.code),
            "X-ClickHouse-Query-Id": query_id,
        }
        self._send(_STATUS_BY_CODE.get(exc.code, 500), body, headers, compress=False)

    def _send(self, status: int, body: bytes, headers: dict[str, str], compress: bool) -> None:
        if compress and body:
            accepted = {part.split(";")[0].strip().lower() for part in self.headers.get("Accept-Encoding", "").split(",")}
            if "lz4" in accepted:
                body, headers["Content-Encoding"] = lz4.frame.compress(body), "lz4"
            elif "gzip" in accepted:
                body, headers["Content-Encoding"] = gzip.compress(body, compresslevel=1), "gzip"
            if "Content-Encoding" in headers:
                self.server_double.compressed_responses += 1
        self.send_response(status)
        self.send_header("X-ClickHouse-Server-Display-Name", DISPLAY_NAME)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


class _HandlerNotFound(Exception):
    pass


def _decode_body(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if not body or encoding in ("", "identity"):
        return body
    try:
        if encoding == "lz4":
            return _lz4_frames(body)
        if encoding == "gzip":
            return gzip.decompress(body)
        if encoding == "deflate":
            return zlib.decompress(body)
    except Exception as exc:
        raise ClickHouseError(CANNOT_DECOMPRESS, f"Cannot decompress {encoding} request body: {exc} (CANNOT_DECOMPRESS)") from exc
    raise ClickHouseError(UNKNOWN_COMPRESSION_METHOD, f"Unknown HTTP compression method {encoding!r} (UNSUPPORTED_METHOD)")


def _lz4_frames(data: bytes) -> bytes:
    """Decompress one or more concatenated LZ4 frames; a truncated frame is an error."""
    out = []
    while data:
        decompressor = lz4.frame.LZ4FrameDecompressor()
        out.append(decompressor.decompress(data))
        if not decompressor.eof:
            raise ValueError("truncated LZ4 frame")
        data = decompressor.unused_data
    return b"".join(out)


def _engine_error(exc: Exception) -> ClickHouseError:
    message = str(exc)
    start = message.find("Code: ")
    message = message[start:].strip() if start >= 0 else message.strip()
    match = _ERROR_CODE.match(message)
    return ClickHouseError(int(match[1]) if match else 1001, message)


def _setting_name(name: str) -> str:
    if not _SETTING_NAME.match(name):
        raise ClickHouseError(115, f"Unknown setting {name!r} (UNKNOWN_SETTING)")
    return name


def _quote(value: str) -> str:
    # Quoted even when numeric: ClickHouse converts a string literal to the setting's type.
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _summary(result, written: bool = False) -> dict:
    try:
        rows, size = result.rows_read(), result.bytes_read()
        summary = {"read_rows": str(rows), "read_bytes": str(size), "elapsed_ns": str(int(result.elapsed() * 1e9))}
        if written:
            summary.update(written_rows=str(rows), written_bytes=str(size))
        return summary
    except Exception:
        return {}


def _full_summary(summary: dict) -> dict:
    keys = ("read_rows", "read_bytes", "written_rows", "written_bytes", "total_rows_to_read", "result_rows", "result_bytes", "elapsed_ns")
    return {key: summary.get(key, "0") for key in keys}
