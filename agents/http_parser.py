"""An incremental HTTP/1.1 exchange tracker around httptools (llhttp): pure, no socket, no clock.

One ``HttpConversation`` per proxied connection. ``feed_request(data, now_ns)`` returns the bytes
to forward upstream; ``feed_response(data, now_ns)`` only observes. Finished exchanges (request
matched FIFO with its final response, as pipelining requires) accumulate in ``finished`` for the
caller to drain. When a request head completes, ``on_request_head(exchange)`` may return a
replacement head (the trace-context rewrite); that is the only way bytes ever change.

Framing positions: httptools reports no byte offsets, so chunks are fed in pieces split after
each ``\\r\\n\\r\\n``. A request head always ends with the first ``\\r\\n\\r\\n`` after its start
(llhttp is strict about CRLF here), so a head completes exactly at a piece end. The head's start is
the piece start, or, after a Content-Length body that ended in the same piece, the number of body
bytes seen; a chunked body ends with ``\\r\\n\\r\\n`` too, hence at a piece end. Every head is
checked to begin with its method before it is rewritten; if not, it is forwarded as it came.

A partial request head is held back (at most ``MAX_HEAD_BYTES``, then forwarded and left alone)
until it completes, so that it can be rewritten whole; the server cannot act on half a head anyway.

States: HTTP; UPGRADE_PENDING (an Upgrade/CONNECT request awaits its answer: client bytes pass
unparsed); TUNNEL (101 or 2xx to CONNECT: both directions opaque); DESYNCED (a parse error: both
directions pass unparsed for the rest of the connection, counted by the caller).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import httptools

HTTP, UPGRADE_PENDING, TUNNEL, DESYNCED = "http", "upgrade-pending", "tunnel", "desynced"
MAX_HEAD_BYTES = 64 * 1024
# Requests awaiting responses on one connection; a client pipelining more than this (the server
# not answering) is no longer followed, so that memory stays bounded.
MAX_PENDING = 1000
_TERMINATOR = b"\r\n\r\n"
# the usual methods' names, shared instead of decoded on every request
_METHOD_NAMES = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE")}
_PARTIAL_TERMINATORS = (b"\r\n\r", b"\r\n", b"\r")

# Outcomes of an exchange.
COMPLETE = "complete"  # final response fully received
CLOSED = "closed"  # response head received, body ended by the connection closing
ABORTED = "aborted"  # connection ended before a final response head
UNKNOWN = "unknown"  # the parser lost the stream (desync) while the exchange was pending


class Exchange:
    """One request and its response, as seen on the wire (monotonic nanosecond timestamps).

    A plain class, not a dataclass: compiled, it is an extension type (http_parser.pxd), which
    Cython cannot build from ``@dataclass(slots=True)``."""

    __slots__ = (
        "method", "target", "head", "request_start_ns", "request_body_bytes", "status",
        "response_start_ns", "response_end_ns", "response_body_bytes", "upgrade", "outcome", "tag",
    )

    def __init__(self, method: str, target: bytes, head: bytes, request_start_ns: int) -> None:
        self.method = method
        self.target = target
        self.head = head  # the request head as received, set while ``on_request_head`` runs
        self.request_start_ns = request_start_ns
        self.request_body_bytes = 0
        self.status = 0
        self.response_start_ns = 0
        self.response_end_ns = 0
        self.response_body_bytes = 0
        self.upgrade = False
        self.outcome = ""
        self.tag = None  # the observer's state for this exchange (its trace context)


class _RequestCallbacks:
    """httptools request callbacks; kept apart so httptools sees only the callbacks it needs."""

    __slots__ = ("conversation",)

    def __init__(self, conversation: HttpConversation) -> None:
        self.conversation = conversation

    def on_message_begin(self) -> None:
        c = self.conversation
        c._request_begin_ns = c._now
        c._head_begin = c._piece_body
        c._target = b""
        c._in_head = True

    def on_url(self, url: bytes) -> None:
        c = self.conversation
        c._target += url

    def on_headers_complete(self) -> None:
        c = self.conversation
        c._in_head = False
        c._head_done = True
        raw = c._method = c._request_parser.get_method()
        method = _METHOD_NAMES.get(raw) or raw.decode("latin-1")
        exchange = Exchange(method, c._target, b"", c._request_begin_ns)
        c._request = exchange
        c.pending.append(exchange)
        if method == "HEAD" or method == "CONNECT":
            c._special_pending += 1

    def on_body(self, body: bytes) -> None:
        c = self.conversation
        c._piece_body += len(body)
        if c._request is not None:  # the request whose head came last: bodies follow their head
            c._request.request_body_bytes += len(body)

    # no on_message_complete: when a request ends is not needed, and every callback is a Python
    # call on each request's path (with cold caches at low rates, each costs about a microsecond)


class _ResponseCallbacks:
    __slots__ = ("conversation",)

    def __init__(self, conversation: HttpConversation) -> None:
        self.conversation = conversation

    def on_message_begin(self) -> None:
        c = self.conversation
        pending = c.pending
        exchange = pending[0] if pending else None
        c._response = exchange
        c._response_in_head = True
        if exchange is None:
            c.unmatched_responses += 1
        elif not exchange.response_start_ns:
            exchange.response_start_ns = c._now

    def on_headers_complete(self) -> None:
        c = self.conversation
        c._response_in_head = False
        status = c._response_parser.get_status_code()
        exchange = c._response
        if 100 <= status < 200 and status != 101:
            c._interim = True  # 100 Continue, 103 Early Hints: the final response follows
            return
        if exchange is None:
            return
        exchange.status = status
        method = exchange.method
        if method == "HEAD" or (method == "CONNECT" and 200 <= status < 300):
            # llhttp does not know the request method: a HEAD response has no body whatever its
            # Content-Length says, and a 2xx to CONNECT turns the connection into a tunnel.
            c._cut_response_at_head = True

    def on_body(self, body: bytes) -> None:
        exchange = self.conversation._response
        if exchange is not None:
            exchange.response_body_bytes += len(body)

    def on_message_complete(self) -> None:
        c = self.conversation
        if c._interim:
            c._interim = False
            return
        exchange = c._response
        if exchange is not None:
            c._response = None
            c._finish_response(exchange, COMPLETE)


class HttpConversation:
    """Both directions of one HTTP/1.1 connection. Never raises on any input."""

    __slots__ = (
        "on_request_head", "state", "pending", "finished", "unmatched_responses", "desync_reason",
        "_request_parser", "_response_parser", "_request_callbacks", "_response_callbacks",
        "_now", "_held", "_head_buf", "_head_unheld", "_in_head", "_head_done", "_head_begin",
        "_piece_body", "_target", "_request_begin_ns", "_request", "_response", "_interim",
        "_cut_response_at_head", "_special_pending", "_response_held", "_response_in_head", "_method",
    )

    def __init__(self, on_request_head: Callable[[Exchange], bytes | None] | None = None) -> None:
        self.on_request_head = on_request_head
        self.state = HTTP
        self.pending: deque[Exchange] = deque()
        self.finished: list[Exchange] = []
        self.unmatched_responses = 0
        self.desync_reason = ""
        self._request_callbacks = _RequestCallbacks(self)
        self._response_callbacks = _ResponseCallbacks(self)
        self._request_parser = httptools.HttpRequestParser(self._request_callbacks)
        self._response_parser = httptools.HttpResponseParser(self._response_callbacks)
        self._now = 0
        self._held = b""  # up to 3 bytes that may begin the terminator of a head in progress
        self._head_buf = b""  # the part of a head in progress received in earlier pieces
        self._head_unheld = False  # this head outgrew MAX_HEAD_BYTES and went out as it came
        self._in_head = False
        self._head_done = False
        self._head_begin = 0
        self._piece_body = 0
        self._target = b""
        self._request_begin_ns = 0
        self._request: Exchange | None = None
        self._response: Exchange | None = None
        self._interim = False
        self._cut_response_at_head = False
        self._special_pending = 0  # HEAD/CONNECT requests awaiting a response
        self._response_held = b""
        self._response_in_head = False
        self._method = b""  # the method of the last request head, as received

    # ------------------------------------------------------------------ client -> server

    def feed_request(self, data: bytes, now_ns) -> bytes:  # now_ns: int (a C long long in http_parser.pxd)
        if self.state != HTTP:
            return data
        self._now = now_ns
        if len(self.pending) > MAX_PENDING:
            self._desync(f"more than {MAX_PENDING} pipelined requests without a response")
            return self.flush_request() + data
        if self._held:
            data = self._held + data
            self._held = b""
        out: list[bytes] = []
        position, size = 0, len(data)
        while position < size:
            index = data.find(_TERMINATOR, position)
            end = size if index < 0 else index + 4
            piece = data if (position == 0 and end == size) else data[position:end]
            if index < 0 and piece.endswith(_PARTIAL_TERMINATORS):
                # A head's terminator may straddle this chunk and the next: parse up to its first
                # bytes, and keep them back only if a head is then in progress.
                keep = 3 if piece.endswith(b"\r\n\r") else (2 if piece.endswith(b"\r\n") else 1)
                if len(piece) > keep and not self._feed_piece(piece[:-keep], out, data, end - keep):
                    return b"".join(out)
                if self.state != HTTP:
                    out.append(piece[-keep:])
                    return b"".join(out)
                if self._in_head:
                    self._held = piece[-keep:]
                    break
                piece = piece[-keep:]
            if not self._feed_piece(piece, out, data, end):
                return b"".join(out)
            position = end
        if len(out) == 1:
            return out[0]
        return b"".join(out)

    def _feed_piece(self, piece: bytes, out: list[bytes], data: bytes, rest_at):  # rest_at: int; -> bool (C types in the .pxd)
        """Parse one piece and append what to forward; False when the rest of ``data`` (from
        ``rest_at`` for an upgrade, from the piece for a desync) was forwarded raw."""
        self._piece_body = 0
        self._head_done = False
        began_before = self._in_head
        try:
            self._request_parser.feed_data(piece)
        except httptools.HttpParserUpgrade:
            self._forward_piece(piece, began_before, out)
            self.state = UPGRADE_PENDING
            if self.pending:
                self.pending[-1].upgrade = True
            self._request = None
            out.append(data[rest_at:])
            return False
        except httptools.HttpParserError as exc:
            # a parse failure never breaks the connection: forward everything untouched
            self._desync(f"request: {exc}")
            out.append(self._head_buf)
            self._head_buf = b""
            out.append(piece)
            out.append(data[rest_at:])
            return False
        self._forward_piece(piece, began_before, out)
        return True

    def _forward_piece(self, piece: bytes, began_before: bool, out: list[bytes]) -> None:
        if self._head_done:
            begin = 0 if began_before else self._head_begin
            head = self._head_buf + piece[begin:] if began_before else piece[begin:]
            self._head_buf = b""
            if begin:
                out.append(piece[:begin])
            exchange = self.pending[-1] if self.pending else None
            replacement = None
            unheld, self._head_unheld = self._head_unheld, False
            if exchange is not None:
                exchange.head = head
                if (
                    not unheld
                    and self.on_request_head is not None
                    and head.endswith(_TERMINATOR)
                    and (head.startswith(self._method) or head.lstrip(b"\r\n").startswith(self._method))
                ):
                    replacement = self.on_request_head(exchange)
                exchange.head = b""  # only needed by the hook; pending exchanges stay small
            out.append(head if replacement is None else replacement)
            if self._in_head:  # cannot happen (a head ends at a piece end); stay safe anyway
                self._in_head = False
        elif self._in_head:
            # a head in progress: hold it back until it completes (bounded)
            if began_before:
                self._head_buf += piece
            else:
                begin = self._head_begin
                if begin:
                    out.append(piece[:begin])
                self._head_buf = piece[begin:]
            if len(self._head_buf) > MAX_HEAD_BYTES:
                out.append(self._head_buf)
                self._head_buf = b""
                self._head_unheld = True
        else:
            out.append(piece)

    def flush_request(self) -> bytes:
        """Bytes held back (a partial head): to forward when the client half-closes."""
        held = self._head_buf + self._held
        self._head_buf = self._held = b""
        if held:
            self._head_unheld = True
        return held

    # ------------------------------------------------------------------ server -> client

    def feed_response(self, data: bytes, now_ns) -> None:  # now_ns: int (a C long long in http_parser.pxd)
        state = self.state
        if state == TUNNEL or state == DESYNCED:
            return
        self._now = now_ns
        if self._response_held:
            data = self._response_held + data
            self._response_held = b""
        if not self._special_pending:  # the common case, inlined (no HEAD/CONNECT to cut at)
            try:
                self._response_parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                self._tunnel()  # 101 Switching Protocols: what follows is opaque
            except httptools.HttpParserError as exc:
                self._desync(f"response: {exc}")
            return
        # A HEAD or CONNECT is pending: find where its response head ends (see on_headers_complete)
        position, size = 0, len(data)
        while position < size and self.state != TUNNEL and self.state != DESYNCED:
            index = data.find(_TERMINATOR, position)
            end = size if index < 0 else index + 4
            piece = data if (position == 0 and end == size) else data[position:end]
            if index < 0 and piece.endswith(_PARTIAL_TERMINATORS):
                keep = 3 if piece.endswith(b"\r\n\r") else (2 if piece.endswith(b"\r\n") else 1)
                if len(piece) > keep:
                    self._feed_response_piece(piece[:-keep])
                if self._response_in_head:
                    self._response_held = piece[-keep:]
                    return
                piece = piece[-keep:]
            self._feed_response_piece(piece)
            position = end

    def _feed_response_piece(self, piece: bytes) -> None:
        try:
            self._response_parser.feed_data(piece)
        except httptools.HttpParserUpgrade:
            # 101 Switching Protocols: what follows is another protocol, opaque to us
            self._tunnel()
            return
        except httptools.HttpParserError as exc:
            self._desync(f"response: {exc}")
            return
        if self._cut_response_at_head:
            self._cut_response_at_head = False
            exchange = self._response
            self._response = None
            self._response_parser = httptools.HttpResponseParser(self._response_callbacks)
            if exchange is not None:
                self._finish_response(exchange, COMPLETE)
                if exchange.method == "CONNECT":
                    self._tunnel()

    def _finish_response(self, exchange: Exchange, outcome: str) -> None:
        exchange.response_end_ns = self._now
        exchange.outcome = outcome
        pending = self.pending
        if pending and pending[0] is exchange:
            pending.popleft()
        else:  # cannot happen with FIFO matching; keep the queue consistent anyway
            try:
                pending.remove(exchange)
            except ValueError:
                pass
        if exchange.method == "HEAD" or exchange.method == "CONNECT":
            self._special_pending -= 1
        self.finished.append(exchange)
        if exchange.upgrade and self.state == UPGRADE_PENDING and exchange.status != 101:
            # the server declined the upgrade: the client goes on speaking HTTP
            self.state = HTTP
            self._request_parser = httptools.HttpRequestParser(self._request_callbacks)
            self._in_head = False

    # ------------------------------------------------------------------ end states

    def _tunnel(self) -> None:
        self.state = TUNNEL
        self._abandon(UNKNOWN)

    def _desync(self, reason: str) -> None:
        self.state = DESYNCED
        self.desync_reason = reason
        self._abandon(UNKNOWN)

    def _abandon(self, outcome: str) -> None:
        # pending exchanges behind an upgrade or a desync can no longer be matched
        while self.pending:
            exchange = self.pending.popleft()
            exchange.outcome = outcome
            exchange.response_end_ns = self._now
            self.finished.append(exchange)
        self._special_pending = 0

    def close(self, now_ns: int) -> None:
        """The connection ended: a response whose head arrived ends here (a body delimited by
        the close); requests still without a final response head are aborted."""
        self._now = now_ns
        while self.pending:
            exchange = self.pending.popleft()
            exchange.outcome = CLOSED if exchange.status else ABORTED
            exchange.response_end_ns = now_ns
            self.finished.append(exchange)
        self._special_pending = 0

    def take_finished(self) -> list[Exchange]:
        finished = self.finished
        if finished:
            self.finished = []
        return finished
