"""A bounded, append-only on-disk spool of Kafka messages (key, value), read back in order.

Every accepted request is appended here before the client hears 202, so a collector that is
killed, or a broker that is away or loses what it acknowledged, loses nothing: the publisher reads
records from a cursor, and segments are deleted only once ``release`` says every record in them is
safe. Records are framed as ``length (4) | crc32 (4) | key length (2) | key | value``; a torn
record at the end of the last segment (a crash mid-write) is cut off when the spool is opened.
The write goes to the OS page cache (no fsync): it survives a killed process, not a power cut.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

from collector.errors import SpoolFullError

logger = logging.getLogger(__name__)

_HEADER = struct.Struct(">II")
_KEY_LEN = struct.Struct(">H")
SEGMENT_BYTES = 16 * 1024 * 1024


class Spool:
    """Thread-safe: one writer side (``append``) and one reader side (``read``/``release``)."""

    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._sizes: dict[int, int] = {}
        for path in sorted(self.directory.glob("*.seg")):
            self._sizes[int(path.stem)] = self._recover(path)
        self._active = max(self._sizes, default=0)
        if not self._sizes:
            self._sizes[self._active] = 0
        self._file = open(self._path(self._active), "ab")

    def _path(self, segment: int) -> Path:
        return self.directory / f"{segment:012d}.seg"

    def _recover(self, path: Path) -> int:
        """Size of the valid prefix of a segment, cutting off a torn last record."""
        valid = 0
        with open(path, "rb") as file:
            data = file.read()
        while valid + _HEADER.size <= len(data):
            length, crc = _HEADER.unpack_from(data, valid)
            end = valid + _HEADER.size + length
            if end > len(data) or zlib.crc32(data[valid + _HEADER.size:end]) != crc:
                break
            valid = end
        if valid != len(data):
            logger.warning("spool segment %s: cut %d torn bytes", path.name, len(data) - valid)
            with open(path, "r+b") as file:
                file.truncate(valid)
        return valid

    @property
    def size_bytes(self) -> int:
        return sum(self._sizes.values())

    def append(self, records: list[tuple[bytes, bytes]]) -> None:
        """Append all ``records`` or none: SpoolFullError when they would pass the limit."""
        chunks = []
        for key, value in records:
            payload = _KEY_LEN.pack(len(key)) + key + value
            chunks.append(_HEADER.pack(len(payload), zlib.crc32(payload)) + payload)
        blob = b"".join(chunks)
        with self._lock:
            if self.size_bytes + len(blob) > self.max_bytes:
                raise SpoolFullError(f"spool full ({self.size_bytes} of {self.max_bytes} bytes)")
            if self._sizes[self._active] and self._sizes[self._active] + len(blob) > self.segment_bytes:
                self._roll()
            self._file.write(blob)
            self._file.flush()
            self._sizes[self._active] += len(blob)

    def _roll(self) -> None:
        self._file.close()
        self._active += 1
        self._sizes[self._active] = 0
        self._file = open(self._path(self._active), "ab")

    def roll(self) -> int:
        """Start a new segment (so that a fully released active one can be deleted); returns
        the number of the segment just closed."""
        with self._lock:
            closed = self._active
            if self._sizes[closed]:
                self._roll()
            return closed

    def start(self) -> tuple[int, int]:
        """Position of the oldest retained record."""
        with self._lock:
            return (min(self._sizes), 0)

    def read(self, position: tuple[int, int], max_records: int) -> list[tuple[tuple[int, int], bytes, bytes]]:
        """Up to ``max_records`` records from ``position``: (position after the record, key, value)."""
        segment, offset = position
        out: list[tuple[tuple[int, int], bytes, bytes]] = []
        while len(out) < max_records:
            with self._lock:
                if segment not in self._sizes:
                    later = [s for s in self._sizes if s > segment]
                    if not later:
                        return out
                    segment, offset = min(later), 0
                end = self._sizes[segment]
                active = segment == self._active
            if offset >= end:
                if active:
                    return out
                segment, offset = segment + 1, 0
                continue
            for position_after, key, value in self._read_segment(segment, offset, end, max_records - len(out)):
                out.append(((segment, position_after), key, value))
                offset = position_after
        return out

    def _read_segment(self, segment: int, offset: int, end: int, limit: int) -> Iterator[tuple[int, bytes, bytes]]:
        with open(self._path(segment), "rb") as file:
            file.seek(offset)
            data = file.read(min(end - offset, 8 * 1024 * 1024))
        cursor = 0
        while limit and cursor + _HEADER.size <= len(data):
            length, _crc = _HEADER.unpack_from(data, cursor)
            start = cursor + _HEADER.size
            if start + length > len(data):
                break
            (key_length,) = _KEY_LEN.unpack_from(data, start)
            key = data[start + 2:start + 2 + key_length]
            value = data[start + 2 + key_length:start + length]
            cursor = start + length
            limit -= 1
            yield offset + cursor, key, value

    def release(self, before_segment: int) -> int:
        """Delete every segment numbered below ``before_segment`` (never the active one);
        returns the bytes freed."""
        freed = 0
        with self._lock:
            for segment in sorted(self._sizes):
                if segment >= before_segment or segment == self._active:
                    break
                freed += self._sizes.pop(segment)
                try:
                    os.unlink(self._path(segment))
                except FileNotFoundError:
                    pass
        return freed

    def segments(self) -> list[int]:
        with self._lock:
            return sorted(self._sizes)

    def segment_size(self, segment: int) -> int:
        with self._lock:
            return self._sizes.get(segment, 0)

    def active_segment(self) -> int:
        with self._lock:
            return self._active

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.close()
