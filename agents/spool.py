"""A bounded on-disk spool of Kafka messages for when the broker is away.

Append-only segment files (``00000001.seg``, ...) of framed records, read back in order from the
head. Record: ``<II`` (body length, CRC-32 of body), body = ``<HHI`` (topic length, key length,
item count) + topic + key + value. A torn tail (the agent killed mid-write) fails its CRC and is
discarded with a warning. The read position is kept in ``cursor`` (rewritten atomically on each
commit), so a restarted agent replays only what was not yet published. Beyond ``max_bytes`` on
disk, appends are refused and their items counted as dropped. One agent per directory (flock).
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from agents.errors import SpoolError

logger = logging.getLogger(__name__)

_FRAME = struct.Struct("<II")
_BODY = struct.Struct("<HHI")
SEGMENT_BYTES = 4 * 1024 * 1024


@dataclass(slots=True)
class Message:
    """One Kafka message and how many telemetry items (spans, records, samples) it carries."""

    topic: str
    key: bytes
    value: bytes
    items: int = 1


class Spool:
    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.dropped_items = 0
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.directory / "lock", "a+")
        except OSError as exc:
            raise SpoolError(f"cannot use spool directory {self.directory}: {exc}") from exc
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._lock.close()
            raise SpoolError(f"spool directory {self.directory} is in use by another agent") from exc
        self._segments = sorted(int(p.stem) for p in self.directory.glob("*.seg") if p.stem.isdigit())
        self._read_segment, self._read_offset = self._load_cursor()
        self._segments = [s for s in self._segments if s >= self._read_segment] + []
        for stale in self.directory.glob("*.seg"):
            if stale.stem.isdigit() and int(stale.stem) < self._read_segment:
                stale.unlink(missing_ok=True)
        self._bytes = sum(self._path(s).stat().st_size for s in self._segments)
        self._writer = None
        self._peeked: list[tuple[int, int]] = []  # (segment, end offset) of each peeked record
        self._closed = False

    # ------------------------------------------------------------------ state

    def _path(self, segment: int) -> Path:
        return self.directory / f"{segment:08d}.seg"

    def _load_cursor(self) -> tuple[int, int]:
        try:
            segment, offset = (self.directory / "cursor").read_text().split()
            return int(segment), int(offset)
        except (OSError, ValueError):
            return (self._segments[0] if self._segments else 1), 0

    def _save_cursor(self) -> None:
        tmp = self.directory / "cursor.tmp"
        tmp.write_text(f"{self._read_segment} {self._read_offset}\n")
        os.replace(tmp, self.directory / "cursor")

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def empty(self) -> bool:
        if not self._segments:
            return True
        return len(self._segments) == 1 and self._segments[0] == self._read_segment and self._read_offset >= self._bytes_of(self._segments[0])

    def _bytes_of(self, segment: int) -> int:
        try:
            return self._path(segment).stat().st_size
        except OSError:
            return 0

    # ------------------------------------------------------------------ writing

    def append(self, messages: list[Message]) -> int:
        """Append in order; returns the number of items dropped because the spool is full."""
        dropped = 0
        for message in messages:
            topic, key = message.topic.encode(), message.key or b""
            body = _BODY.pack(len(topic), len(key), message.items) + topic + key + message.value
            record = _FRAME.pack(len(body), zlib.crc32(body)) + body
            if self._bytes + len(record) > self.max_bytes:
                dropped += message.items
                continue
            writer = self._writer_for(len(record))
            writer.write(record)
            self._bytes += len(record)
        if self._writer is not None:
            self._writer.flush()  # to the OS: survives the agent dying, not the machine
        self.dropped_items += dropped
        return dropped

    def _writer_for(self, size: int):
        if self._writer is not None and self._writer.tell() + size > self.segment_bytes and self._writer.tell() > 0:
            self._writer.close()
            self._writer = None
        if self._writer is None:
            if self._segments and self._bytes_of(self._segments[-1]) + size <= self.segment_bytes:
                segment = self._segments[-1]
            else:
                segment = (self._segments[-1] + 1) if self._segments else max(self._read_segment, 1)
                self._segments.append(segment)
            self._writer = open(self._path(segment), "ab")
        return self._writer

    # ------------------------------------------------------------------ reading

    def peek(self, limit: int) -> list[Message]:
        """Up to ``limit`` records from the head, in order (not removed until ``commit``)."""
        if self._writer is not None:
            self._writer.flush()
        messages: list[Message] = []
        self._peeked = []
        segment, offset = self._read_segment, self._read_offset
        for candidate in list(self._segments):
            if candidate < segment:
                continue
            if candidate > segment:
                segment, offset = candidate, 0
            try:
                with open(self._path(segment), "rb") as handle:
                    handle.seek(offset)
                    data = handle.read()  # a segment is about segment_bytes (plus one record)
            except OSError:
                data = b""
            position = 0
            while len(messages) < limit and position + _FRAME.size <= len(data):
                length, crc = _FRAME.unpack_from(data, position)
                body = data[position + _FRAME.size: position + _FRAME.size + length]
                if len(body) < length or zlib.crc32(body) != crc:
                    logger.warning("spool segment %s has a torn record at %d; skipping its tail", segment, offset + position)
                    position = len(data)
                    break
                topic_len, key_len, items = _BODY.unpack_from(body)
                start = _BODY.size
                topic = body[start:start + topic_len].decode()
                key = body[start + topic_len:start + topic_len + key_len]
                value = body[start + topic_len + key_len:]
                messages.append(Message(topic, key, value, items))
                position += _FRAME.size + length
                self._peeked.append((segment, offset + position))
            if len(messages) >= limit:
                break
            if position < len(data):  # torn tail: treat the segment as fully read
                self._peeked.append((segment, offset + len(data)))
        return messages

    def commit(self, count: int) -> None:
        """The first ``count`` peeked records were published: move the head past them."""
        if count <= 0 or not self._peeked:
            return
        segment, offset = self._peeked[min(count, len(self._peeked)) - 1]
        self._read_segment, self._read_offset = segment, offset
        # delete fully-read segments (all but the one being written)
        for old in list(self._segments):
            if old < segment or (old == segment and offset >= self._bytes_of(old) and old != self._segments[-1]):
                self._bytes -= self._bytes_of(old)
                self._path(old).unlink(missing_ok=True)
                self._segments.remove(old)
        if self.empty and self._segments:
            # everything published: start over with a fresh segment
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            for old in self._segments:
                self._path(old).unlink(missing_ok=True)
            self._read_segment, self._read_offset = self._segments[-1] + 1, 0
            self._segments = []
            self._bytes = 0
        self._save_cursor()
        self._peeked = []

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._lock.close()
