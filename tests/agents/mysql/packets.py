"""Builders of MySQL protocol packets for byte-level decoder tests (the wire formats of the MySQL
internals manual), and a helper feeding a conversation to a decoder in chunks."""

from __future__ import annotations

import struct

from agents.mysql.decoder import MySQLConnectionDecoder, StatementEvent
from agents.mysql.protocol import (
    CLIENT_CONNECT_WITH_DB, CLIENT_DEPRECATE_EOF, CLIENT_MULTI_RESULTS, CLIENT_PLUGIN_AUTH,
    CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA, CLIENT_PROTOCOL_41, CLIENT_SECURE_CONNECTION,
    CLIENT_SESSION_TRACK, MAX_FRAME,
)

BASE_CAPS = (CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH | CLIENT_MULTI_RESULTS
             | CLIENT_CONNECT_WITH_DB | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | CLIENT_SESSION_TRACK)


def lenenc(value: int) -> bytes:
    if value < 0xFB:
        return bytes([value])
    if value < 1 << 16:
        return b"\xfc" + struct.pack("<H", value)
    if value < 1 << 24:
        return b"\xfd" + struct.pack("<I", value)[:3]
    return b"\xfe" + struct.pack("<Q", value)


def lenstr(raw: bytes) -> bytes:
    return lenenc(len(raw)) + raw


def frames(seq: int, payload: bytes) -> bytes:
    """A payload as frames (split at 0xFFFFFF as the protocol requires)."""
    out = bytearray()
    while True:
        chunk, payload = payload[:MAX_FRAME], payload[MAX_FRAME:]
        out += struct.pack("<I", len(chunk))[:3] + bytes([seq & 0xFF]) + chunk
        seq += 1
        if len(chunk) < MAX_FRAME:
            return bytes(out)


def greeting(caps: int = BASE_CAPS | CLIENT_DEPRECATE_EOF, version: bytes = b"10.11.19-MariaDB") -> bytes:
    payload = (b"\x0a" + version + b"\0" + struct.pack("<I", 7) + b"12345678\0"
               + struct.pack("<H", caps & 0xFFFF) + b"\x2d" + struct.pack("<H", 2)
               + struct.pack("<H", caps >> 16 & 0xFFFF) + b"\x15" + b"\0" * 6 + struct.pack("<I", caps >> 32)
               + b"123456789012\0" + b"mysql_native_password\0")
    return frames(0, payload)


def handshake_response(user: bytes = b"app", database: bytes | None = b"shop", caps: int = BASE_CAPS,
                       seq: int = 1) -> bytes:
    if database is not None:
        caps |= CLIENT_CONNECT_WITH_DB
    else:
        caps &= ~CLIENT_CONNECT_WITH_DB
    payload = (struct.pack("<IIB", caps & 0xFFFFFFFF, 1 << 24, 45) + b"\0" * 23 + user + b"\0"
               + lenstr(b"x" * 20) + (database + b"\0" if database is not None else b"")
               + b"mysql_native_password\0")
    return frames(seq, payload)


def ok(seq: int, affected: int = 0, status: int = 2, warnings: int = 0, header: int = 0,
       schema: bytes | None = None) -> bytes:
    payload = bytes([header]) + lenenc(affected) + lenenc(0) + struct.pack("<HH", status, warnings)
    if schema is not None:
        change = bytes([1]) + lenstr(lenstr(schema))
        payload = (bytes([header]) + lenenc(affected) + lenenc(0) + struct.pack("<HH", status | 0x4000, warnings)
                   + lenstr(b"") + lenstr(change))
    return frames(seq, payload)


def err(seq: int, code: int = 1064, state: bytes = b"42000", message: bytes = b"syntax error") -> bytes:
    return frames(seq, b"\xff" + struct.pack("<H", code) + b"#" + state + message)


def eof(seq: int, status: int = 2, warnings: int = 0) -> bytes:
    return frames(seq, b"\xfe" + struct.pack("<HH", warnings, status))


def column(seq: int, name: bytes = b"c", kind: int = 0xFD) -> bytes:
    payload = (lenstr(b"def") + lenstr(b"shop") + lenstr(b"t") + lenstr(b"t") + lenstr(name) + lenstr(name)
               + b"\x0c" + struct.pack("<HIBHB", 45, 255, kind, 0, 0) + b"\0\0")
    return frames(seq, payload)


def text_row(seq: int, *values: bytes | None) -> bytes:
    return frames(seq, b"".join(b"\xfb" if v is None else lenstr(v) for v in values))


def binary_row(seq: int, value: int) -> bytes:
    return frames(seq, b"\x00\x00" + struct.pack("<q", value))


def query(sql: bytes, seq: int = 0) -> bytes:
    return frames(seq, b"\x03" + sql)


def result_set(seq: int, rows: list[tuple], deprecate_eof: bool = True, status: int = 2,
               warnings: int = 0) -> tuple[bytes, int]:
    """A text result set starting at ``seq``: (bytes, next seq)."""
    ncols = len(rows[0]) if rows else 1
    out = frames(seq, lenenc(ncols))
    seq += 1
    for index in range(ncols):
        out += column(seq, b"c%d" % index)
        seq += 1
    if not deprecate_eof:
        out += eof(seq)
        seq += 1
    for row in rows:
        out += text_row(seq, *row)
        seq += 1
    out += ok(seq, status=status, warnings=warnings, header=0xFE) if deprecate_eof else eof(seq, status, warnings)
    return out, seq + 1


def connect(caps: int = BASE_CAPS | CLIENT_DEPRECATE_EOF, database: bytes | None = b"shop") -> list[tuple[str, bytes]]:
    return [("s", greeting(caps)), ("c", handshake_response(database=database, caps=caps)), ("s", ok(2))]


def feed(conversation: list[tuple[str, bytes]], chunk: int | None = None,
         decoder: MySQLConnectionDecoder | None = None) -> tuple[MySQLConnectionDecoder, list[StatementEvent]]:
    """Feed (direction, bytes) steps to a decoder in chunks of ``chunk`` bytes (None: whole);
    each step's bytes get a later timestamp."""
    decoder = decoder or MySQLConnectionDecoder(capture_params=True)
    events: list[StatementEvent] = []
    now = 1_000_000
    for direction, data in conversation:
        feed_one = decoder.client_data if direction == "c" else decoder.server_data
        size = chunk or max(1, len(data))
        for at in range(0, len(data), size):
            now += 1000
            events.extend(feed_one(data[at:at + size], now))
    return decoder, events
