"""Decode second: the per-connection MySQL state machine.

``MySQLConnectionDecoder`` is fed the bytes of each direction with a timestamp and returns the
``StatementEvent``s they complete. It owns no socket and no clock. It follows the connection phase
(greeting, handshake response, auth switch / more data, OK/ERR), then commands: requests are
client packets with sequence id 0; responses are matched to the oldest pending request while their
sequence ids run on (Pixie's approach), through OK / ERR / text or binary result sets (EOF or
DEPRECATE_EOF terminators, SERVER_MORE_RESULTS_EXISTS), LOCAL INFILE uploads, prepared statements
(stmt_id -> text per connection) and cursor fetches.

A connection that upgrades to TLS or turns on compression is opaque from then on (counted). Bytes
it cannot follow put it into a resynchronising state (counted) until the client's next command;
nothing raises out of ``client_data``/``server_data``/``closed``.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache

from agents.mysql import sql
from agents.mysql.errors import MySQLDecodeError
from agents.mysql.framing import DEFAULT_KEEP, Packet, PacketFramer
from agents.mysql.protocol import (
    CLIENT_COMPRESS, CLIENT_CONNECT_WITH_DB, CLIENT_DEPRECATE_EOF, CLIENT_MYSQL,
    CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA, CLIENT_PROTOCOL_41, CLIENT_QUERY_ATTRIBUTES,
    CLIENT_SECURE_CONNECTION, CLIENT_SESSION_TRACK, CLIENT_SSL, CLIENT_ZSTD_COMPRESSION_ALGORITHM,
    COM_CHANGE_USER, COM_FIELD_LIST, COM_INIT_DB, COM_PROCESS_INFO, COM_QUERY, COM_QUIT,
    COM_RESET_CONNECTION, COM_STATISTICS, COM_STMT_BULK_EXECUTE, COM_STMT_CLOSE, COM_STMT_EXECUTE,
    COM_STMT_FETCH, COM_STMT_PREPARE, COM_STMT_RESET, COM_STMT_SEND_LONG_DATA, COMMAND_NAMES, EOF, ERR,
    LOCAL_INFILE, MAX_FRAME, OK, SERVER_MORE_RESULTS_EXISTS, SERVER_SESSION_STATE_CHANGED,
    SERVER_STATUS_CURSOR_EXISTS, SESSION_TRACK_SCHEMA, lenenc_bytes, lenenc_int, nul_bytes, text, u16,
    u32,
)
from agents.mysql.values import decode_params

logger = logging.getLogger(__name__)

MAX_PENDING = 256  # requests awaiting a response; more means we lost track of the responses
# Statement text kept per statement (and per prepared statement): enough for the span's sql.query
# and a digest, bounded whatever the clients send.
MAX_TEXT_BYTES = 4096
UNKNOWN_STATEMENT = 0xFFFFFFFF  # MariaDB: "the statement prepared just before" (pipelined)

# Connection phases
GREETING, HANDSHAKE_RESPONSE, AUTH, COMMANDS, RESYNC, OPAQUE, CLOSED = range(7)

# Response states of a pending command
(FIRST, COLUMNS, COLUMNS_EOF, ROWS, PREPARE_FIRST, PREPARE_PARAMS, PREPARE_PARAMS_EOF,
 PREPARE_COLUMNS, PREPARE_COLUMNS_EOF, FIELDS, SINGLE, CHANGE_USER_AUTH) = range(12)

# Answered by OK / ERR / result sets (state FIRST)
_RESULT_COMMANDS = (COM_QUERY, COM_STMT_EXECUTE, COM_STMT_BULK_EXECUTE, COM_PROCESS_INFO)
_NO_RESPONSE = (COM_QUIT, COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA)
# Replication and other streams the decoder does not follow: the connection becomes opaque.
_STREAMING = (0x12, 0x13, 0x14, 0x15, 0x1D, 0x1E)


@dataclass(slots=True)
class StatementEvent:
    """One finished statement (or utility command) with what its response said."""

    command: str  # "QUERY", "STMT_EXECUTE", "STMT_FETCH", "PING", ...
    statement_type: str  # SELECT / INSERT / ... for SQL; the command name otherwise
    text: str  # statement text as sent (a prefix when ``text_truncated``), not masked
    digest: str  # normalized text grouping statements for metrics
    start_ns: int
    end_ns: int
    database: str
    user: str
    rows_returned: int = 0
    rows_affected: int = 0
    warnings: int = 0
    error_code: int | None = None
    sqlstate: str = ""
    error_message: str = ""
    text_truncated: bool = False
    params: list[str] | None = None
    result_sets: int = 0
    request_bytes: int = 0
    response_bytes: int = 0
    aborted: bool = False  # the connection closed before the response was complete

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_ns - self.start_ns)

    @property
    def error(self) -> bool:
        return self.error_code is not None or self.aborted

    @property
    def rows(self) -> int:
        return self.rows_returned or self.rows_affected


@dataclass(slots=True)
class DecoderStats:
    packets: int = 0
    statements: int = 0
    resyncs: int = 0  # times the decoder lost track and waited for the next command
    abandoned: int = 0  # requests dropped when it did
    tls: bool = False
    compressed: bool = False
    opaque_streams: int = 0  # replication and other commands turned into pass-through
    last_problem: str = ""


@dataclass(slots=True)
class _Prepared:
    text: str
    truncated: bool
    statement: sql.Statement
    param_count: int = 0
    column_count: int = 0
    types: bytes | None = None
    long_data: set[int] = field(default_factory=set)


@dataclass(slots=True)
class _Result:
    end_ns: int
    response_bytes: int
    rows: int = 0
    affected: int = 0
    warnings: int = 0
    result_set: bool = False
    error_code: int | None = None
    sqlstate: str = ""
    message: str = ""


class _Command:
    __slots__ = ("code", "name", "start_ns", "expected_seq", "state", "text", "truncated",
                 "prepared", "prepare_of", "params", "database", "request_bytes", "response_bytes",
                 "results", "rows", "columns_left", "params_left", "uploading", "new_user",
                 "new_database")

    def __init__(self, code: int, packet: Packet, database: str) -> None:
        self.code = code
        self.name = COMMAND_NAMES.get(code, f"0x{code:02X}")
        self.start_ns = packet.start_ns
        self.expected_seq = (packet.last_seq + 1) & 0xFF
        self.state = FIRST
        self.text = ""
        self.truncated = False
        self.prepared: _Prepared | None = None
        self.prepare_of: _Command | None = None  # a pipelined execute of this pending prepare
        self.params: list[str] | None = None
        self.database = database
        self.request_bytes = _wire_bytes(packet)
        self.response_bytes = 0
        self.results: list[_Result] = []
        self.rows = 0
        self.columns_left = 0
        self.params_left = 0
        self.uploading = False  # LOCAL INFILE: the client is sending the file
        self.new_user: str | None = None
        self.new_database: str | None = None


def _wire_bytes(packet: Packet) -> int:
    frames = ((packet.last_seq - packet.seq) & 0xFF) + 1
    return packet.length + 4 * frames


@lru_cache(maxsize=2048)  # keys are at most MAX_TEXT_BYTES long
def analyze(text_: str) -> sql.Statement:
    return sql.analyze(text_)


class MySQLConnectionDecoder:
    """One proxied connection. ``client_data``/``server_data``/``closed`` return finished events.

    ``capture_params``: decode bound prepared-statement values into ``StatementEvent.params``.
    ``keep``: payload bytes kept per packet (statement text beyond it is truncated)."""

    def __init__(self, *, capture_params: bool = False, keep: int = DEFAULT_KEEP) -> None:
        self.capture_params = capture_params
        self._client = PacketFramer(keep)
        self._server = PacketFramer(keep)
        self.phase = GREETING
        self.server_caps = 0
        self.caps = 0
        self.server_version = ""
        self.user = ""
        self.database = ""
        self.stats = DecoderStats()
        self._pending: deque[_Command] = deque()
        self._statements: dict[int, _Prepared] = {}
        self._last_prepare: _Command | None = None

    # -- entry points -------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """Between statements: closing the connection now cuts no response short."""
        return (self.phase == COMMANDS and not self._pending) or self.phase == CLOSED

    def client_data(self, data: bytes, now_ns: int) -> list[StatementEvent]:
        return self._feed(self._client, self._on_client, data, now_ns)

    def server_data(self, data: bytes, now_ns: int) -> list[StatementEvent]:
        return self._feed(self._server, self._on_server, data, now_ns)

    def closed(self, now_ns: int) -> list[StatementEvent]:
        events: list[StatementEvent] = []
        if self.phase in (COMMANDS, RESYNC):
            try:
                for command in self._pending:
                    command.results.append(_Result(now_ns, command.response_bytes, rows=command.rows,
                                                   message="connection closed before the response completed"))
                    self._emit(command, events, aborted=True)
            except Exception as exc:  # never raise into the proxy
                self._problem(f"close: {exc!r}")
        self._pending.clear()
        self.phase = CLOSED
        return events

    def _feed(self, framer: PacketFramer, handle, data: bytes, now_ns: int) -> list[StatementEvent]:
        events: list[StatementEvent] = []
        if self.phase >= OPAQUE:
            return events
        server = framer is self._server
        pending = self._pending
        framer.begin(data)
        try:
            while True:
                if server and pending and pending[0].state == ROWS and self.phase == COMMANDS:
                    self._skim(pending[0], framer)
                packet = framer.next(now_ns)
                if packet is None:
                    break
                self.stats.packets += 1
                try:
                    handle(packet, events)
                except Exception as exc:  # MySQLDecodeError, or a bug: resynchronise, keep framing
                    self._resync(repr(exc))
                if self.phase >= OPAQUE:
                    break
        except Exception as exc:  # a bug in framing itself: stop decoding this connection
            self._go_opaque(f"framing failed: {exc!r}")
        finally:
            framer.end()
        return events

    def _skim(self, command: _Command, framer: PacketFramer) -> None:
        """Rows in bulk: most of a result set's packets are rows, counted without decoding."""
        rows, seq, consumed = framer.skim_rows(command.expected_seq)
        if rows:
            command.rows += rows
            command.expected_seq = seq
            command.response_bytes += consumed
            self.stats.packets += rows

    # -- client side --------------------------------------------------------------------------

    def _on_client(self, packet: Packet, events: list[StatementEvent]) -> None:
        phase = self.phase
        if phase == COMMANDS:
            head = self._pending[0] if self._pending else None
            if head is not None and (head.uploading or (head.code == COM_CHANGE_USER and packet.seq != 0)):
                # LOCAL INFILE file contents (ended by an empty packet) or auth data of CHANGE_USER.
                self._check_seq(head, packet)
                if head.uploading and packet.length == 0:
                    head.uploading = False
                return
            if packet.seq != 0:
                raise MySQLDecodeError(f"client packet with sequence id {packet.seq} outside a request")
            self._command(packet, events)
        elif phase == RESYNC:
            if packet.seq == 0 and packet.first in COMMAND_NAMES:
                self._pending.clear()
                self.phase = COMMANDS
                self._command(packet, events)
        elif phase == HANDSHAKE_RESPONSE:
            self._handshake_response(packet)
        elif phase == GREETING:
            self._go_opaque("client spoke before the server greeting (not MySQL)")
        # AUTH: auth-switch responses and more-data exchanges carry nothing to report

    def _handshake_response(self, packet: Packet) -> None:
        payload = packet.payload
        caps = u32(payload, 0) if len(payload) >= 4 else 0
        if caps & CLIENT_PROTOCOL_41:
            if caps & CLIENT_SSL and packet.length == 32:
                # SSLRequest: a TLS handshake follows, the rest of the connection is opaque.
                self.stats.tls = True
                self._go_opaque("")
                return
            if not caps & CLIENT_MYSQL:
                caps |= u32(payload, 28) << 32  # MariaDB extended capabilities in the filler
            user, pos = nul_bytes(payload, 32)
            if caps & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
                _, pos = lenenc_bytes(payload, pos)
            elif caps & CLIENT_SECURE_CONNECTION:
                pos += 1 + (payload[pos] if pos < len(payload) else 0)
            else:
                _, pos = nul_bytes(payload, pos)
            if caps & CLIENT_CONNECT_WITH_DB and pos < len(payload):
                database, pos = nul_bytes(payload, pos)
                self.database = text(database)
        else:  # HandshakeResponse320: 2-byte capabilities, 3-byte max packet size
            caps = u16(payload, 0)
            if caps & CLIENT_SSL and packet.length == 5:
                self.stats.tls = True
                self._go_opaque("")
                return
            user, pos = nul_bytes(payload, 5)
        self.user = text(user)
        self.caps = caps & (self.server_caps or caps)
        self.phase = AUTH

    def _command(self, packet: Packet, events: list[StatementEvent]) -> None:
        code = packet.first
        if code in _STREAMING:
            self.stats.opaque_streams += 1
            self._go_opaque("")
            return
        if code not in COMMAND_NAMES:
            raise MySQLDecodeError(f"unknown command 0x{code & 0xFF:02x}")
        payload = packet.payload
        command = _Command(code, packet, self.database)
        command.truncated = packet.truncated
        if code == COM_QUERY:
            start = 1
            if self.caps & CLIENT_QUERY_ATTRIBUTES:
                count, start = lenenc_int(payload, 1)
                _, start = lenenc_int(payload, start)
                if count:  # MySQL 8 query attributes before the text: not decoded
                    start = len(payload)
            command.text = text(payload[start:start + MAX_TEXT_BYTES])
            command.truncated = packet.length - start > MAX_TEXT_BYTES
        elif code in (COM_INIT_DB, COM_FIELD_LIST, COM_STMT_PREPARE):
            raw = payload[1:1 + MAX_TEXT_BYTES]
            command.text = text(raw.split(b"\0", 1)[0] if code == COM_FIELD_LIST else raw)
            command.truncated = packet.length - 1 > MAX_TEXT_BYTES
            if code == COM_FIELD_LIST:
                command.state = FIELDS
            elif code == COM_STMT_PREPARE:
                command.state = PREPARE_FIRST
                self._last_prepare = command
            else:
                command.new_database = command.text
                command.state = SINGLE
        elif code in (COM_STMT_EXECUTE, COM_STMT_BULK_EXECUTE, COM_STMT_FETCH, COM_STMT_CLOSE,
                      COM_STMT_RESET, COM_STMT_SEND_LONG_DATA):
            self._statement_command(command, packet)
            if code == COM_STMT_FETCH:
                command.state = ROWS
            elif code == COM_STMT_RESET:
                command.state = SINGLE
        elif code == COM_CHANGE_USER:
            self._change_user(command, payload)
            command.state = CHANGE_USER_AUTH
        elif code not in _NO_RESPONSE and code not in _RESULT_COMMANDS:
            command.state = SINGLE  # PING, STATISTICS, SET_OPTION, RESET_CONNECTION, PROCESS_KILL...
        if code in _NO_RESPONSE:
            return
        if len(self._pending) >= MAX_PENDING:
            raise MySQLDecodeError("too many requests without a response")
        self._pending.append(command)

    def _statement_command(self, command: _Command, packet: Packet) -> None:
        payload = packet.payload
        statement_id = u32(payload, 1)
        prepared = self._statements.get(statement_id)
        if statement_id == UNKNOWN_STATEMENT and self._last_prepare is not None:
            if self._last_prepare.prepared is not None:
                prepared = self._last_prepare.prepared
            else:
                command.prepare_of = self._last_prepare
        code = command.code
        if code == COM_STMT_CLOSE:
            self._statements.pop(statement_id, None)
            return
        if prepared is None:
            return
        command.prepared = prepared
        if code == COM_STMT_SEND_LONG_DATA:
            prepared.long_data.add(u16(payload, 5))
        elif code == COM_STMT_RESET:
            prepared.long_data.clear()
        elif code == COM_STMT_EXECUTE:
            if self.capture_params:
                try:
                    command.params, prepared.types = decode_params(
                        payload, prepared.param_count, prepared.types, prepared.long_data)
                except MySQLDecodeError:
                    pass  # values cut by the capture limit: the statement is still reported
            prepared.long_data.clear()

    def _change_user(self, command: _Command, payload: bytes) -> None:
        user, pos = nul_bytes(payload, 1)
        command.new_user = text(user)
        if self.caps & CLIENT_SECURE_CONNECTION:
            pos += 1 + (payload[pos] if pos < len(payload) else 0)
        else:
            _, pos = nul_bytes(payload, pos)
        database, _ = nul_bytes(payload, pos)
        command.new_database = text(database)

    # -- server side --------------------------------------------------------------------------

    def _on_server(self, packet: Packet, events: list[StatementEvent]) -> None:
        phase = self.phase
        if phase == COMMANDS:
            if not self._pending:
                if packet.first == ERR:
                    return  # e.g. the server announcing it closes an idle connection
                raise MySQLDecodeError("server packet with no request pending")
            command = self._pending[0]
            if packet.seq != command.expected_seq:
                if packet.first == ERR and packet.seq == 0:
                    # The server ends the statement out of turn (connection killed, shutdown).
                    command.expected_seq = 0
                else:
                    raise MySQLDecodeError(f"sequence id {packet.seq}, expected {command.expected_seq}")
            last_seq = packet.last_seq
            command.expected_seq = (last_seq + 1) & 0xFF
            command.response_bytes += packet.length + 4 * (((last_seq - packet.seq) & 0xFF) + 1)
            if self._response(command, packet):
                self._pending.popleft()
                self._emit(command, events)
        elif phase == GREETING:
            self._greeting(packet)
        elif phase == AUTH:
            first = packet.first
            if first == OK:
                if self.caps & (CLIENT_COMPRESS | CLIENT_ZSTD_COMPRESSION_ALGORITHM):
                    self.stats.compressed = True
                    self._go_opaque("")
                else:
                    self.phase = COMMANDS
            elif first == ERR:
                self.phase = CLOSED  # access denied: the server closes the connection
            # 0xFE auth switch, 0x01 more data: the exchange goes on
        # RESYNC: wait for the client's next command; HANDSHAKE_RESPONSE: nothing to learn

    def _greeting(self, packet: Packet) -> None:
        payload = packet.payload
        if packet.first != 10:  # Protocol::HandshakeV10 (an ERR here: too many connections...)
            self._go_opaque("no HandshakeV10 greeting" if packet.first != ERR else "")
            return
        version, pos = nul_bytes(payload, 1)
        self.server_version = text(version)
        caps = u16(payload, pos + 13)
        if len(payload) >= pos + 20:
            caps |= u16(payload, pos + 18) << 16
        if not caps & CLIENT_MYSQL and len(payload) >= pos + 31:
            caps |= u32(payload, pos + 27) << 32  # MariaDB extended capabilities
        self.server_caps = caps
        self.phase = HANDSHAKE_RESPONSE

    def _response(self, command: _Command, packet: Packet) -> bool:
        """Advance ``command`` by one response packet; True when its response is complete."""
        state = command.state
        first = packet.first
        if state == ROWS:
            if first == EOF and packet.length < MAX_FRAME:
                return self._end_of_rows(command, packet)
            if first == ERR:
                return self._error(command, packet)
            command.rows += 1
            return False
        if state == FIRST:
            if first == OK:
                result = self._ok(command, packet)
                return not result
            if first == ERR:
                return self._error(command, packet)
            if first == LOCAL_INFILE and command.code == COM_QUERY:
                command.uploading = True
                return False
            if first == EOF and packet.length < 9:
                return not self._eof_status(command, packet) & SERVER_MORE_RESULTS_EXISTS
            count, pos = lenenc_int(packet.payload, 0)
            if not count:
                raise MySQLDecodeError("result set with no columns")
            metadata_follows = packet.payload[pos] if len(packet.payload) > pos else 1
            command.rows = 0
            command.columns_left = count if metadata_follows else 0
            command.state = COLUMNS if command.columns_left else self._after_metadata()
            return False
        if state == COLUMNS:
            self._column_definition(packet)
            command.columns_left -= 1
            if not command.columns_left:
                command.state = self._after_metadata()
            return False
        if state == COLUMNS_EOF:
            if first == ERR:
                return self._error(command, packet)
            if first != EOF or packet.length >= 9:
                raise MySQLDecodeError("expected EOF after column definitions")
            status = u16(packet.payload, 3) if packet.length >= 5 else 0
            if status & SERVER_STATUS_CURSOR_EXISTS and command.code == COM_STMT_EXECUTE:
                # Cursor opened: rows come with COM_STMT_FETCH.
                command.results.append(self._result(command, packet, result_set=True,
                                                    warnings=u16(packet.payload, 1)))
                return True
            command.state = ROWS
            return False
        if state == SINGLE:
            if first == ERR:
                return self._error(command, packet)
            if first == OK and command.code != COM_STATISTICS:
                return not self._ok(command, packet)
            command.results.append(self._result(command, packet))
            return True
        if state in (PREPARE_FIRST, PREPARE_PARAMS, PREPARE_PARAMS_EOF, PREPARE_COLUMNS,
                     PREPARE_COLUMNS_EOF):
            return self._prepare_response(command, packet)
        if state == FIELDS:
            if first == ERR:
                return self._error(command, packet)
            if first == EOF and packet.length < MAX_FRAME:
                command.results.append(self._result(command, packet, rows=command.rows))
                return True
            command.rows += 1
            return False
        if state == CHANGE_USER_AUTH:
            if first == OK:
                self._ok(command, packet)
                return True
            if first == ERR:
                return self._error(command, packet)
            return False  # 0xFE auth switch, 0x01 more data: the client answers
        raise MySQLDecodeError(f"no response expected in state {state}")

    def _after_metadata(self) -> int:
        return ROWS if self.caps & CLIENT_DEPRECATE_EOF else COLUMNS_EOF

    @staticmethod
    def _column_definition(packet: Packet) -> None:
        # Protocol::ColumnDefinition41 starts with the catalog, always "def": a cheap check that
        # we are still in step with the stream.
        if not packet.payload.startswith(b"\x03def"):
            raise MySQLDecodeError("expected a column definition")

    def _prepare_response(self, command: _Command, packet: Packet) -> bool:
        state, first = command.state, packet.first
        if first == ERR:
            return self._error(command, packet)
        if state == PREPARE_FIRST:
            if first != OK or packet.length < 9:
                raise MySQLDecodeError("expected COM_STMT_PREPARE_OK")
            payload = packet.payload
            statement_id = u32(payload, 1)
            columns, params = u16(payload, 5), u16(payload, 7)
            warnings = u16(payload, 10) if packet.length >= 12 else 0
            statement = analyze(command.text)
            prepared = _Prepared(command.text, command.truncated, statement, params, columns)
            self._statements[statement_id] = prepared
            command.prepared = prepared
            command.results.append(self._result(command, packet, warnings=warnings))
            command.params_left, command.columns_left = params, columns
            command.state = PREPARE_PARAMS
            return self._prepare_next(command)
        if state in (PREPARE_PARAMS_EOF, PREPARE_COLUMNS_EOF):
            if first != EOF or packet.length >= 9:
                raise MySQLDecodeError("expected EOF after prepared statement metadata")
            if state == PREPARE_COLUMNS_EOF:
                return True
            command.state = PREPARE_COLUMNS
            return self._prepare_next(command)
        self._column_definition(packet)
        if state == PREPARE_PARAMS:
            command.params_left -= 1
        else:
            command.columns_left -= 1
        return self._prepare_next(command)

    def _prepare_next(self, command: _Command) -> bool:
        """Move past finished metadata sections; True when the prepare response is complete.
        Each non-empty section (parameters, then columns) ends with an EOF unless DEPRECATE_EOF."""
        prepared = command.prepared
        eof_follows = not self.caps & CLIENT_DEPRECATE_EOF
        if command.state == PREPARE_PARAMS:
            if command.params_left:
                return False
            if prepared.param_count and eof_follows:
                command.state = PREPARE_PARAMS_EOF
                return False
            command.state = PREPARE_COLUMNS
        if command.state == PREPARE_COLUMNS:
            if command.columns_left:
                return False
            if prepared.column_count and eof_follows:
                command.state = PREPARE_COLUMNS_EOF
                return False
            return True
        return False

    # -- result packets -----------------------------------------------------------------------

    def _result(self, command: _Command, packet: Packet, **fields) -> _Result:
        return _Result(packet.end_ns, command.response_bytes, **fields)

    def _ok(self, command: _Command, packet: Packet) -> bool:
        """Record an OK packet; True when more results follow."""
        payload = packet.payload
        affected, pos = lenenc_int(payload, 1)
        _, pos = lenenc_int(payload, pos)
        status = warnings = 0
        if self.caps & CLIENT_PROTOCOL_41 and pos + 4 <= len(payload):
            status, warnings = u16(payload, pos), u16(payload, pos + 2)
            pos += 4
            if self.caps & CLIENT_SESSION_TRACK and status & SERVER_SESSION_STATE_CHANGED:
                command.new_database = self._tracked_schema(payload, pos) or command.new_database
        command.results.append(self._result(command, packet, affected=affected or 0, warnings=warnings))
        if status & SERVER_MORE_RESULTS_EXISTS:
            command.state = FIRST
            return True
        return False

    @staticmethod
    def _tracked_schema(payload: bytes, pos: int) -> str | None:
        try:
            _, pos = lenenc_bytes(payload, pos)  # info
            changes, _ = lenenc_bytes(payload, pos)
            at = 0
            while at < len(changes):
                kind = changes[at]
                data, at = lenenc_bytes(changes, at + 1)
                if kind == SESSION_TRACK_SCHEMA:
                    name, _ = lenenc_bytes(data, 0)
                    return text(name)
        except MySQLDecodeError:
            pass
        return None

    def _eof_status(self, command: _Command, packet: Packet) -> int:
        payload = packet.payload
        warnings = u16(payload, 1) if packet.length >= 5 else 0
        status = u16(payload, 3) if packet.length >= 5 else 0
        command.results.append(self._result(command, packet, warnings=warnings))
        return status

    def _end_of_rows(self, command: _Command, packet: Packet) -> bool:
        payload = packet.payload
        if self.caps & CLIENT_DEPRECATE_EOF:
            _, pos = lenenc_int(payload, 1)
            _, pos = lenenc_int(payload, pos)
            status = u16(payload, pos) if pos + 2 <= len(payload) else 0
            warnings = u16(payload, pos + 2) if pos + 4 <= len(payload) else 0
        else:
            warnings = u16(payload, 1) if packet.length >= 5 else 0
            status = u16(payload, 3) if packet.length >= 5 else 0
        command.results.append(self._result(command, packet, rows=command.rows, warnings=warnings,
                                            result_set=True))
        command.rows = 0
        if status & SERVER_MORE_RESULTS_EXISTS and command.code != COM_STMT_FETCH:
            command.state = FIRST
            return False
        return True

    def _error(self, command: _Command, packet: Packet) -> bool:
        payload = packet.payload
        code = u16(payload, 1)
        if code == 0xFFFF:
            return False  # MariaDB progress report (MARIADB_CLIENT_PROGRESS), not an error
        sqlstate, message = "", payload[3:]
        if self.caps & CLIENT_PROTOCOL_41 and payload[3:4] == b"#":
            sqlstate, message = text(payload[4:9]), payload[9:]
        command.results.append(self._result(command, packet, rows=command.rows, error_code=code,
                                            sqlstate=sqlstate, message=text(message)))
        return True

    # -- events -------------------------------------------------------------------------------

    def _emit(self, command: _Command, events: list[StatementEvent], aborted: bool = False) -> None:
        code = command.code
        results = command.results
        failed = bool(results) and results[-1].error_code is not None
        if not failed and not aborted:
            self._apply_session_changes(command)
        if command.prepare_of is not None and command.prepared is None:
            command.prepared = command.prepare_of.prepared
        if code == COM_QUERY and len(results) > 1:
            pieces = sql.split(command.text)
            if len(pieces) > 1:
                self._emit_batch(command, pieces, events, aborted)
                return
        if code == COM_QUERY:
            statement = analyze(command.text)
            statement_type, digest, text_ = statement.statement_type, statement.digest, command.text
        elif command.prepared is not None and code != COM_STMT_RESET:
            prepared = command.prepared
            statement_type = "PREPARE" if code == COM_STMT_PREPARE else (
                "FETCH" if code == COM_STMT_FETCH else prepared.statement.statement_type)
            digest, text_ = prepared.statement.digest, prepared.text
            command.truncated = prepared.truncated
        elif code == COM_STMT_PREPARE:
            statement_type, digest, text_ = "PREPARE", analyze(command.text).digest, command.text
        else:
            statement_type, digest, text_ = command.name, "COM_" + command.name, command.text
        self._append(events, command, results, command.start_ns, statement_type, digest, text_,
                     command.request_bytes, command.response_bytes, aborted)

    def _emit_batch(self, command: _Command, pieces: list[str], events: list[StatementEvent],
                    aborted: bool) -> None:
        """A multi-statement COM_QUERY: one event per statement. Each statement ends with one
        result, but CALL ends with its procedure's OK (after any result sets it returned).
        Statements after an ERR were never run and are not reported."""
        results = command.results
        start_ns, sent_bytes, at = command.start_ns, 0, 0
        for index, piece in enumerate(pieces):
            if at >= len(results):
                break
            statement = analyze(piece)
            last = index == len(pieces) - 1
            end = at
            if last:
                end = len(results) - 1
            elif statement.statement_type == "CALL":
                while end < len(results) - 1 and results[end].result_set and results[end].error_code is None:
                    end += 1
            group = results[at:end + 1]
            self._append(events, command, group, start_ns, statement.statement_type, statement.digest,
                         piece, command.request_bytes if index == 0 else 0,
                         group[-1].response_bytes - sent_bytes, aborted and last)
            start_ns, sent_bytes, at = group[-1].end_ns, group[-1].response_bytes, end + 1

    def _append(self, events: list[StatementEvent], command: _Command, results: list[_Result],
                start_ns: int, statement_type: str, digest: str, text_: str, request_bytes: int,
                response_bytes: int, aborted: bool) -> None:
        event = StatementEvent(
            command=command.name, statement_type=statement_type, text=text_, digest=digest,
            start_ns=start_ns, end_ns=results[-1].end_ns if results else start_ns,
            database=command.database, user=self.user, text_truncated=command.truncated,
            params=command.params, request_bytes=request_bytes, response_bytes=response_bytes,
            aborted=aborted,
        )
        for result in results:
            event.rows_returned += result.rows
            event.rows_affected += result.affected
            event.warnings += result.warnings
            event.result_sets += result.result_set
            if result.error_code is not None:
                event.error_code, event.sqlstate = result.error_code, result.sqlstate
                event.error_message = result.message
            elif aborted and result.message:
                event.error_message = result.message
        if statement_type == "USE" and event.error_code is None and not aborted:
            self.database = _use_target(text_) or self.database
        self.stats.statements += 1
        events.append(event)

    def _apply_session_changes(self, command: _Command) -> None:
        if command.code == COM_CHANGE_USER:
            self.user = command.new_user or self.user
            self.database = command.new_database or ""
            self._statements.clear()
        elif command.code == COM_RESET_CONNECTION:
            self._statements.clear()
        elif command.new_database:
            self.database = command.new_database

    # -- failures -----------------------------------------------------------------------------

    def _check_seq(self, command: _Command, packet: Packet) -> None:
        if packet.seq != command.expected_seq:
            raise MySQLDecodeError(f"sequence id {packet.seq}, expected {command.expected_seq}")
        command.expected_seq = (packet.last_seq + 1) & 0xFF

    def _resync(self, reason: str) -> None:
        self.stats.resyncs += 1
        self.stats.abandoned += len(self._pending)
        self._problem(reason)
        self._pending.clear()
        if self.phase in (COMMANDS, RESYNC):
            self.phase = RESYNC
        else:
            # Lost during the connection phase: nothing reliable to follow afterwards.
            self._go_opaque("")

    def _go_opaque(self, reason: str) -> None:
        if reason:
            self._problem(reason)
        self._pending.clear()
        self.phase = OPAQUE

    def _problem(self, reason: str) -> None:
        self.stats.last_problem = reason
        logger.debug("mysql decoder: %s", reason)


def _use_target(statement: str) -> str | None:
    parts = statement.split(None, 1)
    if len(parts) != 2:
        return None
    name = parts[1].strip().rstrip(";").strip()
    if name.startswith("`") and name.endswith("`"):
        name = name[1:-1].replace("``", "`")
    return name or None
