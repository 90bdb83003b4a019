"""The agent's on-disk spool of Kafka messages: every exported message goes here first.

A ``meshscope.spool.Spool`` of records ``<HHI`` (topic length, key length, item count) + topic +
key + value. The exporter sends from it in order and ``meshscope.retention`` deletes its segments
once the writers have committed them, so a broker that is away, or one that loses what it
acknowledged, costs only spool space; a restarted agent sends what is still spooled again. Beyond
``max_bytes`` appends are refused (the exporter drops and counts them). One agent per directory
(flock).
"""

from __future__ import annotations

import fcntl
import logging
import struct
from dataclasses import dataclass
from pathlib import Path

from agents.errors import SpoolError
from meshscope import spool

logger = logging.getLogger(__name__)

_BODY = struct.Struct("<HHI")
SEGMENT_BYTES = 4 * 1024 * 1024


@dataclass(slots=True)
class Message:
    """One Kafka message and how many telemetry items (spans, records, samples) it carries;
    ``partition``/``offset`` say where the broker put it (set by the publisher on acknowledgement)."""

    topic: str
    key: bytes
    value: bytes
    items: int = 1
    partition: int | None = None
    offset: int | None = None


class Spool(spool.Spool[Message]):
    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int = SEGMENT_BYTES) -> None:
        directory = Path(directory)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._lock_file = open(directory / "lock", "a+")
        except OSError as exc:
            raise SpoolError(f"cannot use spool directory {directory}: {exc}") from exc
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._lock_file.close()
            raise SpoolError(f"spool directory {directory} is in use by another agent") from exc
        try:
            super().__init__(directory, max_bytes, segment_bytes)
        except OSError as exc:
            self._lock_file.close()
            raise SpoolError(f"cannot use spool directory {directory}: {exc}") from exc

    def encode(self, message: Message) -> bytes:
        topic, key = message.topic.encode(), message.key or b""
        return _BODY.pack(len(topic), len(key), message.items) + topic + key + message.value

    def decode(self, payload: bytes) -> Message:
        topic_len, key_len, items = _BODY.unpack_from(payload)
        start = _BODY.size
        topic = payload[start:start + topic_len].decode()
        key = payload[start + topic_len:start + topic_len + key_len]
        return Message(topic, key, payload[start + topic_len + key_len:], items)

    def add(self, messages: list[Message]) -> list[Message]:
        """Append in order; returns the messages refused because the spool is full."""
        return [messages[index] for index in self.append(messages, whole=False)]

    def close(self) -> None:
        super().close()
        if not self._lock_file.closed:
            self._lock_file.close()
