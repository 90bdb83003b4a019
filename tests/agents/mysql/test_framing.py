from __future__ import annotations

import pytest

from agents.mysql.framing import PacketFramer
from agents.mysql.protocol import MAX_FRAME
from tests.agents.mysql.packets import frames


def feed(framer: PacketFramer, data: bytes, chunk: int | None):
    size = chunk or max(1, len(data))
    packets = []
    for at in range(0, len(data), size):
        packets.extend(framer.feed(data[at:at + size], at))
    return packets


@pytest.mark.parametrize("chunk", [1, 7, None])
def test_packets_split_on_the_header_whatever_the_chunking(chunk):
    stream = frames(0, b"\x03SELECT 1") + frames(1, b"") + frames(2, b"x" * 300) + frames(255, b"\x0e")
    packets = feed(PacketFramer(), stream, chunk)
    assert [(p.seq, p.length, p.payload) for p in packets] == [
        (0, 9, b"\x03SELECT 1"), (1, 0, b""), (2, 300, b"x" * 300), (255, 1, b"\x0e")]


@pytest.mark.parametrize("chunk", [4096, 7 * 1024 * 1024 + 3, None])
@pytest.mark.parametrize("size", [MAX_FRAME, MAX_FRAME + 1, 2 * MAX_FRAME + 5])
def test_payloads_over_16mb_join_frames_and_keep_only_a_prefix(chunk, size):
    payload = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    framer = PacketFramer(keep=1000)
    packets = feed(framer, frames(3, payload) + frames(0, b"\x0e"), chunk)
    big, ping = packets
    frame_count = size // MAX_FRAME + 1
    assert (big.seq, big.last_seq, big.length, big.payload) == (3, 3 + frame_count - 1, size, payload[:1000])
    assert big.truncated and ping.payload == b"\x0e"
    assert framer.buffered == 0


def test_buffering_is_bounded_mid_packet():
    framer = PacketFramer(keep=100)
    data = frames(0, b"q" * 5_000_000)
    for at in range(0, len(data) - 65536, 65536):
        assert framer.feed(data[at:at + 65536], 0) == []
        assert framer.buffered <= 104


def test_bytearray_and_memoryview_input():
    stream = frames(0, b"\x03SELECT 1")
    for data in (bytearray(stream), memoryview(stream)):
        [packet] = PacketFramer().feed(data, 0)
        assert type(packet.payload) is bytes and packet.payload == b"\x03SELECT 1"
