"""Constants of the MySQL client/server protocol (MySQL internals manual, MariaDB KB
"clientserver-protocol"), and the small decoders every packet parser shares."""

from __future__ import annotations

import struct

from agents.mysql.errors import MySQLDecodeError

MAX_FRAME = 0xFFFFFF  # a frame of this length is continued by the next one

# Capability flags (Protocol::CapabilityFlags)
CLIENT_MYSQL = 1  # set by MySQL, unset by MariaDB servers (then extended caps are present)
CLIENT_CONNECT_WITH_DB = 1 << 3
CLIENT_COMPRESS = 1 << 5
CLIENT_PROTOCOL_41 = 1 << 9
CLIENT_SSL = 1 << 11
CLIENT_SECURE_CONNECTION = 1 << 15
CLIENT_MULTI_RESULTS = 1 << 17
CLIENT_PLUGIN_AUTH = 1 << 19
CLIENT_CONNECT_ATTRS = 1 << 20
CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA = 1 << 21
CLIENT_SESSION_TRACK = 1 << 23
CLIENT_DEPRECATE_EOF = 1 << 24
CLIENT_OPTIONAL_RESULTSET_METADATA = 1 << 25
CLIENT_ZSTD_COMPRESSION_ALGORITHM = 1 << 26
CLIENT_QUERY_ATTRIBUTES = 1 << 27
MARIADB_CLIENT_CACHE_METADATA = 1 << 36

# Server status flags (SERVER_STATUS_flags_enum)
SERVER_MORE_RESULTS_EXISTS = 0x0008
SERVER_STATUS_CURSOR_EXISTS = 0x0040
SERVER_STATUS_LAST_ROW_SENT = 0x0080
SERVER_SESSION_STATE_CHANGED = 0x4000

SESSION_TRACK_SCHEMA = 0x01

# Response headers
OK = 0x00  # 0x00 OK_Packet (also the first byte of every binary row)
LOCAL_INFILE = 0xFB  # 0xFB LOCAL INFILE request
EOF = 0xFE  # 0xFE EOF_Packet, or OK_Packet with 0xFE header under CLIENT_DEPRECATE_EOF; auth switch
ERR = 0xFF  # 0xFF ERR_Packet
AUTH_MORE_DATA = 0x01

# Commands (the first byte of a client packet with sequence id 0)
COM_QUIT = 0x01
COM_INIT_DB = 0x02
COM_QUERY = 0x03
COM_FIELD_LIST = 0x04
COM_CREATE_DB = 0x05
COM_DROP_DB = 0x06
COM_REFRESH = 0x07
COM_SHUTDOWN = 0x08
COM_STATISTICS = 0x09
COM_PROCESS_INFO = 0x0A
COM_PROCESS_KILL = 0x0C
COM_DEBUG = 0x0D
COM_PING = 0x0E
COM_CHANGE_USER = 0x11
COM_STMT_PREPARE = 0x16
COM_STMT_EXECUTE = 0x17
COM_STMT_SEND_LONG_DATA = 0x18
COM_STMT_CLOSE = 0x19
COM_STMT_RESET = 0x1A
COM_SET_OPTION = 0x1B
COM_STMT_FETCH = 0x1C
COM_RESET_CONNECTION = 0x1F
COM_STMT_BULK_EXECUTE = 0xFA  # MariaDB

COMMAND_NAMES = {
    COM_QUIT: "QUIT", COM_INIT_DB: "INIT_DB", COM_QUERY: "QUERY", COM_FIELD_LIST: "FIELD_LIST",
    COM_CREATE_DB: "CREATE_DB", COM_DROP_DB: "DROP_DB", COM_REFRESH: "REFRESH",
    COM_SHUTDOWN: "SHUTDOWN", COM_STATISTICS: "STATISTICS", COM_PROCESS_INFO: "PROCESS_INFO",
    COM_PROCESS_KILL: "PROCESS_KILL", COM_DEBUG: "DEBUG", COM_PING: "PING",
    COM_CHANGE_USER: "CHANGE_USER", COM_STMT_PREPARE: "STMT_PREPARE",
    COM_STMT_EXECUTE: "STMT_EXECUTE", COM_STMT_SEND_LONG_DATA: "STMT_SEND_LONG_DATA",
    COM_STMT_CLOSE: "STMT_CLOSE", COM_STMT_RESET: "STMT_RESET", COM_SET_OPTION: "SET_OPTION",
    COM_STMT_FETCH: "STMT_FETCH", COM_RESET_CONNECTION: "RESET_CONNECTION",
    COM_STMT_BULK_EXECUTE: "STMT_BULK_EXECUTE",
}

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


def lenenc_int(buf, pos: int) -> tuple[int | None, int]:
    """Length-encoded integer at ``pos``: (value, next position); value None for 0xFB (NULL)."""
    try:
        first = buf[pos]
        if first < 0xFB:
            return first, pos + 1
        if first == 0xFC:
            return _U16.unpack_from(buf, pos + 1)[0], pos + 3
        if first == 0xFD:
            return buf[pos + 1] | buf[pos + 2] << 8 | buf[pos + 3] << 16, pos + 4
        if first == 0xFE:
            return _U64.unpack_from(buf, pos + 1)[0], pos + 9
        if first == 0xFB:
            return None, pos + 1
    except (IndexError, struct.error) as exc:
        raise MySQLDecodeError(f"truncated length-encoded integer at {pos}") from exc
    raise MySQLDecodeError(f"invalid length-encoded integer prefix 0x{first:02x} at {pos}")


def lenenc_bytes(buf, pos: int) -> tuple[bytes, int]:
    length, pos = lenenc_int(buf, pos)
    length = length or 0
    if pos + length > len(buf):
        raise MySQLDecodeError("truncated length-encoded string")
    return bytes(buf[pos:pos + length]), pos + length


def nul_bytes(buf, pos: int) -> tuple[bytes, int]:
    """A NUL-terminated string (or the rest of the buffer when the NUL is missing)."""
    raw = bytes(buf[pos:])
    end = raw.find(b"\0")
    if end < 0:
        return raw, len(buf)
    return raw[:end], pos + end + 1


def u16(buf, pos: int) -> int:
    try:
        return _U16.unpack_from(buf, pos)[0]
    except struct.error as exc:
        raise MySQLDecodeError(f"truncated 2-byte integer at {pos}") from exc


def u32(buf, pos: int) -> int:
    try:
        return _U32.unpack_from(buf, pos)[0]
    except struct.error as exc:
        raise MySQLDecodeError(f"truncated 4-byte integer at {pos}") from exc


def text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")
