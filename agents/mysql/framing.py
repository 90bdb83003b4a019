"""Frame first: split one direction of a MySQL stream into logical packets.

Each frame is a 4-byte header (3-byte little-endian payload length, 1-byte sequence id) and its
payload. A payload of 16 MB or more is split across frames of exactly 0xFFFFFF bytes followed by a
shorter (possibly empty) one; the framer joins them into one logical ``Packet``. Only the first
``keep`` payload bytes of a packet are kept: the rest are skipped as they pass, so a 20 MB packet
costs ``keep`` bytes of memory, never 20 MB.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from agents.mysql.protocol import MAX_FRAME

DEFAULT_KEEP = 64 * 1024
_HEADER = struct.Struct("<I")


@dataclass(slots=True)
class Packet:
    seq: int  # sequence id of the first frame
    last_seq: int  # sequence id of the last frame (later than ``seq`` when split)
    length: int  # whole payload length, across frames
    payload: bytes  # the first ``keep`` bytes of the payload at most
    start_ns: int  # when its header started arriving
    end_ns: int  # when its last byte arrived

    @property
    def truncated(self) -> bool:
        return len(self.payload) < self.length

    @property
    def first(self) -> int:
        """The first payload byte (the packet type of most packets), -1 when empty."""
        return self.payload[0] if self.payload else -1


class PacketFramer:
    """Incremental framer for one direction.

    ``feed(data, now_ns)`` returns the packets ``data`` completes. The decoder instead walks a chunk
    packet by packet (``begin``, ``next``..., ``end``) so that it can ``skim_rows`` between
    packets: count whole result-set rows straight from the bytes, without building packets."""

    __slots__ = ("keep", "_header", "_frame_left", "_more_frames", "_in_packet", "_payload",
                 "_length", "_seq", "_last_seq", "_start_ns", "_view", "_pos", "_end")

    def __init__(self, keep: int = DEFAULT_KEEP) -> None:
        self.keep = keep
        self._header = bytearray()
        self._frame_left = 0  # payload bytes of the current frame still to come
        self._more_frames = False  # the current frame is 0xFFFFFF long: another frame follows
        self._in_packet = False
        self._payload = bytearray()
        self._length = 0
        self._seq = 0
        self._last_seq = 0
        self._start_ns = 0
        self._view: bytes | None = None
        self._pos = 0
        self._end = 0

    @property
    def buffered(self) -> int:
        """Bytes held for incomplete packets (bounded by ``keep`` + 4)."""
        return len(self._header) + len(self._payload)

    def feed(self, data: bytes, now_ns: int) -> list[Packet]:
        packets: list[Packet] = []
        self.begin(data)
        try:
            while (packet := self.next(now_ns)) is not None:
                packets.append(packet)
        finally:
            self.end()
        return packets

    def begin(self, data: bytes) -> None:
        # Indexing bytes is cheaper than a memoryview; slices copy only what is kept.
        self._view = data if type(data) is bytes else bytes(data)
        self._pos, self._end = 0, len(data)

    def end(self) -> None:
        self._view = None  # never hold on to the caller's buffer

    def next(self, now_ns: int) -> Packet | None:
        """The next packet completed by the current chunk, or None when the chunk is used up
        (its tail kept, bounded, for the next one)."""
        pos, end = self._pos, self._end
        if pos >= end:
            return None
        if not self._in_packet and not self._header and end - pos >= 4:
            # Fast path: a whole single-frame packet inside this chunk.
            view = self._view
            header = _HEADER.unpack_from(view, pos)[0]  # 3-byte length | sequence id << 24
            length = header & 0xFFFFFF
            body = pos + 4
            if length < MAX_FRAME and body + length <= end:
                self._pos = body + length
                seq = header >> 24
                kept = view[body:body + length] if length <= self.keep else view[body:body + self.keep]
                return Packet(seq, seq, length, kept, now_ns, now_ns)
        return self._next_slow(now_ns)

    def _next_slow(self, now_ns: int) -> Packet | None:
        """Packets split across chunks or frames: accumulate (a bounded prefix) and skip."""
        view, pos, end, keep = self._view, self._pos, self._end, self.keep
        while pos < end:
            if self._frame_left:
                take = min(self._frame_left, end - pos)
                room = keep - len(self._payload)
                if room > 0:
                    self._payload += view[pos:pos + min(take, room)]
                pos += take
                self._frame_left -= take
                self._length += take
                if not self._frame_left and not self._more_frames:
                    self._pos = pos
                    return self._finish(now_ns)
                continue
            if not self._in_packet and not self._header:
                self._start_ns = now_ns
            need = 4 - len(self._header)
            self._header += view[pos:pos + need]
            pos += min(need, end - pos)
            if len(self._header) < 4:
                break
            header = self._header
            length = header[0] | header[1] << 8 | header[2] << 16
            seq = header[3]
            header.clear()
            if not self._in_packet:
                self._in_packet = True
                self._seq = seq
                self._length = 0
                self._payload = bytearray()
            self._last_seq = seq
            self._frame_left = length
            self._more_frames = length == MAX_FRAME
            if not length:
                self._pos = pos
                return self._finish(now_ns)
        self._pos = pos
        return None

    def skim_rows(self, seq: int) -> tuple[int, int, int]:
        """Consume whole result-set row packets at the current position while their sequence
        ids run on from ``seq``; stop before a terminator (0xFE), an ERR (0xFF), a packet split
        across frames or chunks, or a sequence gap. Returns (rows, next seq, bytes consumed)."""
        if self._in_packet or self._header:
            return 0, seq, 0
        view, pos, end = self._view, self._pos, self._end
        start, rows, limit = pos, 0, end - 4
        header_at = _HEADER.unpack_from
        while pos < limit:
            header = header_at(view, pos)[0]  # 3-byte length | sequence id << 24
            length = header & 0xFFFFFF
            following = pos + 4 + length
            if (header >> 24 != seq or following > end or not length or length == MAX_FRAME
                    or view[pos + 4] >= 0xFE):
                break
            rows += 1
            seq = (seq + 1) & 0xFF
            pos = following
        self._pos = pos
        return rows, seq, pos - start

    def _finish(self, now_ns: int) -> Packet:
        packet = Packet(self._seq, self._last_seq, self._length, bytes(self._payload),
                        self._start_ns, now_ns)
        self._in_packet = False
        self._payload = bytearray()
        self._length = 0
        return packet
