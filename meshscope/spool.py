"""A bounded, append-only on-disk spool of records, read back in order from any position.

The agents and the collector both put every Kafka message here before sending it, so that a
process that is killed, or a broker that is away or loses what it acknowledged, loses nothing:
senders read records from a position, and whole segments are deleted only once ``release`` says
every record in them is safe (``meshscope.retention`` decides when). Each subclass says how its
records become bytes (``encode``/``decode``). Records are framed as ``length (4) | crc32 (4) |
payload``; a torn record at the end of a segment (a crash mid-write) is cut off when the spool is
opened. Writes go to the OS page cache (no fsync): they survive a killed process, not a power cut.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

_HEADER = struct.Struct(">II")
SEGMENT_BYTES = 16 * 1024 * 1024
_READ_CHUNK = 8 * 1024 * 1024

R = TypeVar("R")
Position = tuple[int, int]  # (segment, byte offset in it)


class Spool(Generic[R]):
    """Thread-safe: one writer side (``append``) and one reader side (``read``/``release``).
    The lock guards the segment table and the active file; disk reads happen outside it, so a
    sender reading a batch never holds up a request appending."""

    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._sizes: dict[int, int] = {}
        for path in sorted(self.directory.glob("*.seg")):
            if path.stem.isdigit() and path == self._path(int(path.stem)):
                self._sizes[int(path.stem)] = self._recover(path)
            else:
                logger.warning("spool %s: ignoring %s (not a segment of this version)", self.directory, path.name)
        self._active = max(self._sizes, default=0)
        if not self._sizes:
            self._sizes[self._active] = 0
        self._file = open(self._path(self._active), "ab")

    # ------------------------------------------------------------------ the record format

    def encode(self, record: R) -> bytes:
        raise NotImplementedError

    def decode(self, payload: bytes) -> R:
        raise NotImplementedError

    # ------------------------------------------------------------------ files

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
            logger.warning("spool segment %s: cut %d torn bytes", path, len(data) - valid)
            with open(path, "r+b") as file:
                file.truncate(valid)
        return valid

    @property
    def size_bytes(self) -> int:
        return sum(self._sizes.values())

    # ------------------------------------------------------------------ writing

    def append(self, records: list[R], *, whole: bool = True) -> list[int]:
        """Append ``records`` in order; returns the indexes of those refused because the spool
        would pass ``max_bytes``. ``whole``: all or none (every index refused when one is)."""
        frames = []
        for record in records:
            payload = self.encode(record)
            frames.append(_HEADER.pack(len(payload), zlib.crc32(payload)) + payload)
        refused: list[int] = []
        with self._lock:
            size = self.size_bytes
            if whole and size + sum(map(len, frames)) > self.max_bytes:
                return list(range(len(frames)))
            # one write per segment touched: a frame per write call cost as much as framing it
            batch: list[bytes] = []
            batch_bytes = 0
            for index, frame in enumerate(frames):
                if size + len(frame) > self.max_bytes:
                    refused.append(index)
                    continue
                active_bytes = self._sizes[self._active] + batch_bytes
                if active_bytes and active_bytes + len(frame) > self.segment_bytes:
                    self._write(batch, batch_bytes)
                    batch, batch_bytes = [], 0
                    self._roll()
                batch.append(frame)
                batch_bytes += len(frame)
                size += len(frame)
            self._write(batch, batch_bytes)
        return refused

    def _write(self, frames: list[bytes], length: int) -> None:
        """Write ``frames`` (``length`` bytes) to the active segment; the caller holds the lock.
        Flushed before the size grows: a reader reads a segment up to its size, without the lock."""
        if not frames:
            return
        self._file.write(frames[0] if len(frames) == 1 else b"".join(frames))
        self._file.flush()
        self._sizes[self._active] += length

    def _roll(self) -> None:
        self._file.close()
        self._active += 1
        self._sizes[self._active] = 0
        self._file = open(self._path(self._active), "ab")

    def roll(self, segment: int) -> bool:
        """Close ``segment`` and start a new one, so that it can be released, if it is the active
        segment and holds records; records appended to it after the caller looked stay in it."""
        with self._lock:
            if segment != self._active or not self._sizes[segment]:
                return False
            self._roll()
            return True

    # ------------------------------------------------------------------ reading

    def start(self) -> Position:
        """Position of the oldest retained record."""
        with self._lock:
            return (min(self._sizes), 0)

    def read(self, position: Position, max_records: int) -> list[tuple[Position, R]]:
        """Up to ``max_records`` records from ``position``: (position after the record, record)."""
        segment, offset = position
        out: list[tuple[Position, R]] = []
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
            for position_after, payload in self._read_segment(segment, offset, end, max_records - len(out)):
                out.append(((segment, position_after), self.decode(payload)))
                offset = position_after
        return out

    def _read_segment(self, segment: int, offset: int, end: int, limit: int) -> Iterator[tuple[int, bytes]]:
        # Without the lock: bytes below ``end`` are flushed and never change, and a segment is only
        # deleted by ``release`` (one file gone under us is then skipped like a released one).
        try:
            file = open(self._path(segment), "rb")
        except FileNotFoundError:
            with self._lock:
                if segment in self._sizes:
                    raise
            return
        with file:
            file.seek(offset)
            data = file.read(min(end - offset, _READ_CHUNK))
        cursor = 0
        while limit and cursor + _HEADER.size <= len(data):
            (length, _crc) = _HEADER.unpack_from(data, cursor)
            start = cursor + _HEADER.size
            if start + length > len(data):
                if cursor == 0:  # one record larger than a read chunk
                    with open(self._path(segment), "rb") as file:
                        file.seek(offset + start)
                        yield offset + start + length, file.read(length)
                break
            cursor = start + length
            limit -= 1
            yield offset + cursor, data[start:cursor]

    # ------------------------------------------------------------------ releasing

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
        """Idempotent; what is spooled stays on disk for the next start."""
        with self._lock:
            if not self._file.closed:
                self._file.close()
