"""Bound parameter values of COM_STMT_EXECUTE (binary protocol value encodings), decoded only when
``capture_sql_params`` is on. Values are rendered as short strings for a span tag."""

from __future__ import annotations

import struct

from agents.mysql.errors import MySQLDecodeError
from agents.mysql.protocol import lenenc_bytes

MAX_VALUE_CHARS = 64

# Protocol::ColumnType values with a fixed-width binary encoding: (signed format, unsigned format)
_FIXED = {
    0x01: ("<b", "<B"),  # TINY
    0x02: ("<h", "<H"),  # SHORT
    0x0D: ("<h", "<H"),  # YEAR
    0x03: ("<i", "<I"),  # LONG
    0x09: ("<i", "<I"),  # INT24 (sent as 4 bytes)
    0x08: ("<q", "<Q"),  # LONGLONG
    0x04: ("<f", "<f"),  # FLOAT
    0x05: ("<d", "<d"),  # DOUBLE
}
_NULL = 0x06
_DATES = (0x07, 0x0A, 0x0C)  # TIMESTAMP, DATE, DATETIME
_TIME = 0x0B
_BINARY_TYPES = (0xF9, 0xFA, 0xFB, 0xFC)  # TINY/MEDIUM/LONG BLOB, BLOB


def _short(value: str) -> str:
    return value if len(value) <= MAX_VALUE_CHARS else value[:MAX_VALUE_CHARS] + "..."


def decode_params(payload: bytes, count: int, types: bytes | None, long_data: set[int]
                  ) -> tuple[list[str], bytes | None]:
    """Values of a COM_STMT_EXECUTE payload for a statement with ``count`` parameters.

    ``types`` are the parameter types bound by an earlier execute (the client sends them only
    when they change). Returns (values, types in effect). Raises MySQLDecodeError when the
    payload is truncated (the capture limit) or malformed."""
    if count == 0:
        return [], types
    pos = 10  # 0x17, stmt_id<4>, flags<1>, iteration_count<4>
    bitmap_len = (count + 7) // 8
    null_bitmap = payload[pos:pos + bitmap_len]
    pos += bitmap_len
    if pos >= len(payload):
        raise MySQLDecodeError("execute packet truncated before new_params_bound_flag")
    bound = payload[pos]
    pos += 1
    if bound:
        types = payload[pos:pos + 2 * count]
        pos += 2 * count
    if types is None or len(types) < 2 * count:
        raise MySQLDecodeError("execute packet without parameter types")
    values: list[str] = []
    for index in range(count):
        if index in long_data:
            values.append("<long data>")
            continue
        if null_bitmap[index >> 3] & (1 << (index & 7)):
            values.append("NULL")
            continue
        kind, flags = types[2 * index], types[2 * index + 1]
        try:
            if kind in _FIXED:
                fmt = struct.Struct(_FIXED[kind][1 if flags & 0x80 else 0])
                values.append(repr(fmt.unpack_from(payload, pos)[0]))
                pos += fmt.size
            elif kind == _NULL:
                values.append("NULL")
            elif kind in _DATES or kind == _TIME:
                length = payload[pos]
                raw = payload[pos + 1:pos + 1 + length]
                pos += 1 + length
                values.append(_temporal(kind, raw))
            else:
                raw, pos = lenenc_bytes(payload, pos)
                if kind in _BINARY_TYPES and not _printable(raw):
                    values.append(f"<{len(raw)} bytes>")
                else:
                    values.append(_short(repr(raw.decode("utf-8", "replace"))))
        except (IndexError, struct.error) as exc:
            raise MySQLDecodeError(f"execute parameter {index} truncated") from exc
    return values, types


def _printable(raw: bytes) -> bool:
    try:
        return raw.decode("utf-8").isprintable()
    except UnicodeDecodeError:
        return False


def _temporal(kind: int, raw: bytes) -> str:
    if kind == _TIME:
        if len(raw) < 8:
            return "'00:00:00'"
        negative, days, hour, minute, second = struct.unpack_from("<BIBBB", raw)
        micro = struct.unpack_from("<I", raw, 8)[0] if len(raw) >= 12 else 0
        text = f"{'-' if negative else ''}{days * 24 + hour:02d}:{minute:02d}:{second:02d}"
        return f"'{text}.{micro:06d}'" if micro else f"'{text}'"
    if len(raw) < 4:
        return "'0000-00-00'"
    year, month, day = struct.unpack_from("<HBB", raw)
    text = f"{year:04d}-{month:02d}-{day:02d}"
    if len(raw) >= 7:
        hour, minute, second = raw[4], raw[5], raw[6]
        text += f" {hour:02d}:{minute:02d}:{second:02d}"
        if len(raw) >= 11:
            text += f".{struct.unpack_from('<I', raw, 7)[0]:06d}"
    return f"'{text}'"
