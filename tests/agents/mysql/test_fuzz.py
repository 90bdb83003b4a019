"""Hypothesis fuzzing: truncated, oversized, mutated and random packets fed to the decoder and the
observer never raise, the observer always returns the bytes it was given, and buffering stays
bounded."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.mysql.decoder import MySQLConnectionDecoder
from agents.mysql.observer import MySQLObserver, MySQLOptions
from tests.agents.mysql.packets import (
    column, connect, eof, err, frames, lenenc, ok, query, result_set,
)
from tests.agents.mysql.support import RecordingTelemetry, context

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def valid_conversation() -> list[tuple[str, bytes]]:
    prepare = frames(1, b"\x00" + struct.pack("<IHHBH", 1, 1, 1, 0, 0)) + column(2) + column(3)
    execute = frames(0, b"\x17" + struct.pack("<IBI", 1, 0, 1) + b"\x00\x01\x08\x00" + struct.pack("<q", 9))
    return connect() + [
        ("c", query(b"SELECT a, b FROM t WHERE id IN (1, 2)")), ("s", result_set(1, [(b"1", b"x"), (b"2", None)])[0]),
        ("c", query(b"SELEC")), ("s", err(1)),
        ("c", frames(0, b"\x16SELECT a FROM t WHERE id = ?")), ("s", prepare),
        ("c", execute), ("s", frames(1, lenenc(1)) + column(2, kind=8) + frames(3, b"\x00\x00" + b"\x01" * 8) + ok(4, header=0xFE)),
        ("c", query(b"SELECT 1; SELECT 2")), ("s", result_set(1, [(b"1",)], status=10)[0] + result_set(5, [(b"2",)])[0]),
        ("c", frames(0, b"\x0e")), ("s", ok(1)), ("c", frames(0, b"\x04t\x00")), ("s", column(1) + eof(2)),
    ]


def observer() -> MySQLObserver:
    return MySQLObserver(context("127.0.0.1:3306"), RecordingTelemetry(),
                         MySQLOptions(capture_params=True, mask_literals=True))


def drive(steps: list[tuple[str, bytes]], cuts: list[int]) -> MySQLObserver:
    watcher = observer()
    now = 0
    for index, (direction, data) in enumerate(steps):
        size = cuts[index % len(cuts)] if cuts else len(data) or 1
        for at in range(0, len(data), size):
            now += 10
            chunk = data[at:at + size]
            if direction == "c":
                assert watcher.client_data(chunk, now) is chunk
            else:
                assert watcher.server_data(chunk, now) is None
        assert watcher.decoder._client.buffered <= 70_000 and watcher.decoder._server.buffered <= 70_000
    watcher.closed(now + 1)
    watcher.closed(now + 2)  # idempotent
    return watcher


@FUZZ
@given(st.lists(st.tuples(st.sampled_from("cs"), st.binary(max_size=300)), max_size=30),
       st.lists(st.integers(1, 64), max_size=4))
def test_random_bytes_never_raise(steps, cuts):
    watcher = drive(steps, cuts)
    assert watcher._broken is False


@FUZZ
@given(st.data())
def test_mutated_valid_conversations_never_raise(data):
    steps = valid_conversation()
    mutated = []
    for direction, raw in steps:
        action = data.draw(st.sampled_from(["keep", "keep", "keep", "truncate", "flip", "insert", "drop"]))
        if action == "truncate":
            raw = raw[:data.draw(st.integers(0, len(raw)))]
        elif action == "flip" and raw:
            at = data.draw(st.integers(0, len(raw) - 1))
            raw = raw[:at] + bytes([raw[at] ^ data.draw(st.integers(1, 255))]) + raw[at + 1:]
        elif action == "insert":
            raw = raw + data.draw(st.binary(max_size=40))
        elif action == "drop":
            continue
        mutated.append((direction, raw))
    watcher = drive(mutated, data.draw(st.lists(st.integers(1, 50), max_size=3)))
    assert watcher._broken is False


@FUZZ
@given(st.integers(0, 0xFFFFFF), st.integers(0, 255), st.binary(max_size=200), st.sampled_from("cs"))
def test_oversized_and_truncated_headers(length, seq, body, direction):
    header = struct.pack("<I", length)[:3] + bytes([seq])
    watcher = drive(connect() + [(direction, header + body), ("c", query(b"SELECT 1")), ("s", ok(1))], [])
    assert watcher._broken is False


def test_valid_conversation_decodes_cleanly_at_every_chunk_size():
    for size in (1, 2, 3, 5, 7, 64, None):
        decoder = MySQLConnectionDecoder()
        events = []
        for direction, raw in valid_conversation():
            step = size or len(raw)
            for at in range(0, len(raw), step):
                feed = decoder.client_data if direction == "c" else decoder.server_data
                events.extend(feed(raw[at:at + step], 1))
        assert decoder.stats.resyncs == 0
        assert [e.statement_type for e in events] == ["SELECT", "SELEC", "PREPARE", "SELECT", "SELECT", "SELECT",
                                                      "PING", "FIELD_LIST"]


@FUZZ
@given(st.lists(st.integers(1, 400), min_size=1, max_size=8))
def test_any_chunking_of_a_valid_conversation_gives_the_same_events(cuts):
    def events_of(cut_sizes):
        decoder = MySQLConnectionDecoder()
        events, index = [], 0
        for direction, raw in valid_conversation():
            at = 0
            while at < len(raw):
                size = cut_sizes[index % len(cut_sizes)]
                index += 1
                feed = decoder.client_data if direction == "c" else decoder.server_data
                events.extend(feed(raw[at:at + size], 1))
                at += size
        return [(e.statement_type, e.digest, e.rows, e.error_code) for e in events], decoder.stats.resyncs

    assert events_of(cuts) == events_of([1 << 30])
