"""The collector's spool: every accepted span message, (key, value), on disk before the 202.

A ``meshscope.spool.Spool`` of records ``key length (2) | key | value`` (spans topic, keyed by
trace id). A request is spooled whole or not at all: ``SpoolFullError`` (503) when it would pass
the limit, so a broker that is away costs nothing but spool space.
"""

from __future__ import annotations

import struct

from collector.errors import SpoolFullError
from meshscope import spool

_KEY_LEN = struct.Struct(">H")


class Spool(spool.Spool[tuple[bytes, bytes]]):
    def encode(self, record: tuple[bytes, bytes]) -> bytes:
        key, value = record
        return _KEY_LEN.pack(len(key)) + key + value

    def decode(self, payload: bytes) -> tuple[bytes, bytes]:
        (key_length,) = _KEY_LEN.unpack_from(payload)
        return payload[2:2 + key_length], payload[2 + key_length:]

    def append_all(self, records: list[tuple[bytes, bytes]]) -> None:
        """Append all ``records`` or none: SpoolFullError when they would pass the limit."""
        if self.append(records, whole=True):
            raise SpoolFullError(f"spool full ({self.size_bytes} of {self.max_bytes} bytes)")
