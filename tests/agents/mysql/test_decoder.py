"""Byte-level tests of the MySQL connection decoder, each conversation fed in chunks of 1, 7 and
whole sizes."""

from __future__ import annotations

import struct

import pytest

from agents.mysql.decoder import COMMANDS, OPAQUE, RESYNC
from agents.mysql.protocol import (
    CLIENT_COMPRESS, CLIENT_DEPRECATE_EOF, CLIENT_SSL, SERVER_MORE_RESULTS_EXISTS,
    SERVER_STATUS_CURSOR_EXISTS, SERVER_STATUS_LAST_ROW_SENT,
)
from tests.agents.mysql.packets import (
    BASE_CAPS, binary_row, column, connect, eof, err, feed, frames, greeting, handshake_response,
    lenenc, ok, query, result_set, text_row,
)

CHUNKS = pytest.mark.parametrize("chunk", [1, 7, None])
LEGACY = BASE_CAPS  # EOF packets (no CLIENT_DEPRECATE_EOF)
MODERN = BASE_CAPS | CLIENT_DEPRECATE_EOF


@CHUNKS
def test_handshake_records_user_and_schema_then_query_ok(chunk):
    conversation = connect() + [("c", query(b"INSERT INTO t VALUES (1, 'a'), (2, 'b')")), ("s", ok(1, affected=2, warnings=1))]
    decoder, events = feed(conversation, chunk)
    assert decoder.phase == COMMANDS and decoder.user == "app" and decoder.database == "shop"
    [event] = events
    assert (event.command, event.statement_type, event.digest) == ("QUERY", "INSERT", "INSERT INTO t VALUES (...)")
    assert (event.rows_affected, event.warnings, event.error_code, event.database, event.user) == (2, 1, None, "shop", "app")
    assert event.end_ns > event.start_ns


@CHUNKS
@pytest.mark.parametrize("caps", [LEGACY, MODERN])
def test_text_result_set_counts_rows_with_eof_or_ok_terminator(chunk, caps):
    rows = [(b"1", b"x"), (b"2", None), (b"3", b"")]
    response, _ = result_set(1, rows, deprecate_eof=bool(caps & CLIENT_DEPRECATE_EOF), warnings=2)
    decoder, events = feed(connect(caps) + [("c", query(b"SELECT id, v FROM t WHERE id < 10")), ("s", response)], chunk)
    [event] = events
    assert (event.rows_returned, event.result_sets, event.warnings) == (3, 1, 2)
    assert event.digest == "SELECT id, v FROM t WHERE id < ?"
    assert decoder.stats.resyncs == 0


@CHUNKS
def test_error_packet_gives_code_sqlstate_and_message(chunk):
    conversation = connect() + [("c", query(b"SELEC 1")), ("s", err(1)),
                                ("c", query(b"SELECT 1")), ("s", result_set(1, [(b"1",)])[0])]
    _, events = feed(conversation, chunk)
    assert [(e.error_code, e.sqlstate, e.error_message) for e in events] == [(1064, "42000", "syntax error"), (None, "", "")]
    assert events[0].error and not events[1].error


@CHUNKS
@pytest.mark.parametrize("caps", [LEGACY, MODERN])
def test_multi_statement_batch_reports_each_statement(chunk, caps):
    deprecate = bool(caps & CLIENT_DEPRECATE_EOF)
    first, seq = result_set(1, [(b"1",)], deprecate, status=2 | SERVER_MORE_RESULTS_EXISTS)
    conversation = connect(caps) + [
        ("c", query(b"SELECT 1; UPDATE t SET a = 2 WHERE b = 3; SELECT 'x;y' FROM t; DELETE FROM nothere")),
        ("s", first + ok(seq, affected=4, status=2 | SERVER_MORE_RESULTS_EXISTS)
         + result_set(seq + 1, [(b"a",), (b"b",)], deprecate, status=2 | SERVER_MORE_RESULTS_EXISTS)[0]
         + err(result_set(seq + 1, [(b"a",), (b"b",)], deprecate)[1], 1146, b"42S02", b"Table 'shop.nothere' doesn't exist")),
    ]
    _, events = feed(conversation, chunk)
    assert [(e.statement_type, e.rows_returned, e.rows_affected, e.error_code) for e in events] == [
        ("SELECT", 1, 0, None), ("UPDATE", 0, 4, None), ("SELECT", 2, 0, None), ("DELETE", 0, 0, 1146)]
    assert events[2].digest == "SELECT ? FROM t"
    assert all(a.end_ns <= b.start_ns for a, b in zip(events, events[1:]))


@CHUNKS
def test_error_stops_batch_and_unrun_statements_are_not_reported(chunk):
    conversation = connect() + [("c", query(b"SELECT 1; SELEC 2; SELECT 3")),
                                ("s", result_set(1, [(b"1",)], status=2 | SERVER_MORE_RESULTS_EXISTS)[0] + err(5))]
    _, events = feed(conversation, chunk)
    assert [(e.digest, e.error_code) for e in events] == [("SELECT ?", None), ("SELEC ?", 1064)]


@CHUNKS
def test_call_with_several_result_sets_is_one_statement(chunk):
    more = 2 | SERVER_MORE_RESULTS_EXISTS
    first, seq = result_set(1, [(b"1",), (b"2",)], status=more)
    second, seq = result_set(seq, [(b"3",)], status=more)
    conversation = connect() + [("c", query(b"CALL two_sets(5)")), ("s", first + second + ok(seq, affected=0))]
    _, events = feed(conversation, chunk)
    [event] = events
    assert (event.statement_type, event.rows_returned, event.result_sets) == ("CALL", 3, 2)


@CHUNKS
def test_call_inside_batch_takes_its_result_sets_and_ok(chunk):
    more = 2 | SERVER_MORE_RESULTS_EXISTS
    first, seq = result_set(1, [(b"1",)], status=more)
    second, seq = result_set(seq, [(b"2",), (b"3",)], status=more)
    conversation = connect() + [("c", query(b"CALL p(); SELECT 9")),
                                ("s", first + second + ok(seq, status=more) + result_set(seq + 1, [(b"9",)])[0])]
    _, events = feed(conversation, chunk)
    assert [(e.statement_type, e.rows_returned) for e in events] == [("CALL", 3), ("SELECT", 1)]


@CHUNKS
def test_local_infile_upload_then_ok(chunk):
    upload = b"".join(frames(seq, b"%d,row\n" % seq) for seq in range(2, 300))  # sequence ids wrap past 255
    conversation = connect() + [
        ("c", query(b"LOAD DATA LOCAL INFILE '/tmp/x.csv' INTO TABLE t")),
        ("s", frames(1, b"\xfb/tmp/x.csv")),
        ("c", upload + frames(300, b"")),
        ("s", ok(301, affected=298)),
        ("c", query(b"SELECT 1")), ("s", result_set(1, [(b"1",)])[0]),
    ]
    decoder, events = feed(conversation, chunk if chunk != 1 else 13)
    assert [(e.statement_type, e.rows_affected) for e in events] == [("LOAD", 298), ("SELECT", 0)]
    assert decoder.stats.resyncs == 0


def prepare_ok(seq: int, statement_id: int, columns: int, params: int, deprecate: bool) -> tuple[bytes, int]:
    out = frames(seq, b"\x00" + struct.pack("<IHHBH", statement_id, columns, params, 0, 0))
    seq += 1
    for count in (params, columns):
        for _ in range(count):
            out += column(seq)
            seq += 1
        if count and not deprecate:
            out += eof(seq)
            seq += 1
    return out, seq


def execute(statement_id: int, params: list[tuple[int, bytes]] | None = None, flags: int = 0, bound: bool = True) -> bytes:
    payload = b"\x17" + struct.pack("<IBI", statement_id, flags, 1)
    if params:
        payload += b"\x00" * ((len(params) + 7) // 8)
        if bound:
            payload += b"\x01" + b"".join(struct.pack("<BB", kind, 0) for kind, _ in params)
        else:
            payload += b"\x00"
        payload += b"".join(value for _, value in params)
    return frames(0, payload)


def binary_result(seq: int, values: list[int], deprecate: bool, status: int = 2) -> bytes:
    out = frames(seq, lenenc(1)) + column(seq + 1, kind=8)
    seq += 2
    if not deprecate:
        out += eof(seq)
        seq += 1
    for value in values:
        out += binary_row(seq, value)
        seq += 1
    return out + (ok(seq, header=0xFE, status=status) if deprecate else eof(seq, status))


@CHUNKS
@pytest.mark.parametrize("caps", [LEGACY, MODERN])
def test_prepared_statement_lifecycle(chunk, caps):
    deprecate = bool(caps & CLIENT_DEPRECATE_EOF)
    prepared, _ = prepare_ok(1, 7, 1, 2, deprecate)
    params = [(0x08, struct.pack("<q", 42)), (0xFD, b"\x03abc")]
    conversation = connect(caps) + [
        ("c", frames(0, b"\x16SELECT k FROM t WHERE id = ? AND name = ?")), ("s", prepared),
        ("c", frames(0, b"\x18" + struct.pack("<IH", 7, 1) + b"long value")),  # SEND_LONG_DATA: no response
        ("c", execute(7, params)), ("s", binary_result(1, [1, 2, 3], deprecate)),
        ("c", execute(7, [(0x08, struct.pack("<q", -1)), (0xFD, b"\x01z")], bound=False)),
        ("s", binary_result(1, [], deprecate)),
        ("c", frames(0, b"\x1a" + struct.pack("<I", 7))), ("s", ok(1)),  # RESET
        ("c", frames(0, b"\x19" + struct.pack("<I", 7))),  # CLOSE: no response
        ("c", execute(7)), ("s", err(1, 1243, b"HY000", b"Unknown prepared statement handler")),
    ]
    decoder, events = feed(conversation, chunk)
    assert [(e.command, e.statement_type, e.rows_returned, e.error_code) for e in events] == [
        ("STMT_PREPARE", "PREPARE", 0, None), ("STMT_EXECUTE", "SELECT", 3, None),
        ("STMT_EXECUTE", "SELECT", 0, None), ("STMT_RESET", "STMT_RESET", 0, None),
        ("STMT_EXECUTE", "STMT_EXECUTE", 0, 1243)]
    assert events[1].digest == "SELECT k FROM t WHERE id = ? AND name = ?"
    assert events[1].params == ["42", "<long data>"]
    assert events[2].params == ["-1", "'z'"]
    assert decoder.stats.resyncs == 0


@CHUNKS
@pytest.mark.parametrize("caps", [LEGACY, MODERN])
def test_cursor_execute_then_fetches(chunk, caps):
    deprecate = bool(caps & CLIENT_DEPRECATE_EOF)
    prepared, _ = prepare_ok(1, 1, 1, 0, deprecate)
    metadata = frames(1, lenenc(1)) + column(2, kind=8) + eof(3, status=2 | SERVER_STATUS_CURSOR_EXISTS)
    fetch = frames(0, b"\x1c" + struct.pack("<II", 1, 2))
    conversation = connect(caps) + [
        ("c", frames(0, b"\x16SELECT id FROM big")), ("s", prepared),
        ("c", execute(1, flags=1)), ("s", metadata),
        ("c", fetch), ("s", binary_row(1, 1) + binary_row(2, 2) + eof(3, 2 | SERVER_STATUS_CURSOR_EXISTS)),
        ("c", fetch), ("s", binary_row(1, 3) + eof(2, 2 | SERVER_STATUS_LAST_ROW_SENT)),
    ]
    decoder, events = feed(conversation, chunk)
    assert [(e.statement_type, e.rows_returned) for e in events] == [
        ("PREPARE", 0), ("SELECT", 0), ("FETCH", 2), ("FETCH", 1)]
    assert events[3].digest == "SELECT id FROM big"
    assert decoder.stats.resyncs == 0


@CHUNKS
def test_utility_commands(chunk):
    conversation = connect() + [
        ("c", frames(0, b"\x02inventory")), ("s", ok(1)),
        ("c", frames(0, b"\x0e")), ("s", ok(1)),
        ("c", frames(0, b"\x09")), ("s", frames(1, b"Uptime: 5  Threads: 1")),
        ("c", frames(0, b"\x1b\x00\x00")), ("s", eof(1)),
        ("c", frames(0, b"\x04t\x00")), ("s", column(1) + column(2) + eof(3)),
        ("c", frames(0, b"\x1f")), ("s", ok(1)),
        ("c", query(b"USE `other`")), ("s", ok(1)),
        ("c", query(b"SELECT 1")), ("s", ok(1, schema=b"tracked")),
        ("c", query(b"SELECT 2")), ("s", ok(1)),
        ("c", frames(0, b"\x01")),
    ]
    decoder, events = feed(conversation, chunk)
    assert [(e.statement_type, e.database) for e in events] == [
        ("INIT_DB", "shop"), ("PING", "inventory"), ("STATISTICS", "inventory"), ("SET_OPTION", "inventory"),
        ("FIELD_LIST", "inventory"), ("RESET_CONNECTION", "inventory"), ("USE", "inventory"),
        ("SELECT", "other"), ("SELECT", "tracked")]
    assert events[4].rows_returned == 2
    assert decoder.closed(10**12) == []


@CHUNKS
def test_change_user_with_auth_switch(chunk):
    change = frames(0, b"\x11admin\x00" + b"\x14" + b"p" * 20 + b"reports\x00" + b"\x2d\x00mysql_native_password\x00")
    conversation = connect() + [
        ("c", change), ("s", frames(1, b"\xfemysql_native_password\x00" + b"s" * 20 + b"\x00")),
        ("c", frames(2, b"r" * 20)), ("s", ok(3)),
        ("c", query(b"SELECT 1")), ("s", ok(1)),
    ]
    decoder, events = feed(conversation, chunk)
    assert [e.statement_type for e in events] == ["CHANGE_USER", "SELECT"]
    assert (events[1].user, events[1].database) == ("admin", "reports")


@CHUNKS
def test_auth_switch_and_more_data_during_handshake(chunk):
    conversation = [
        ("s", greeting()), ("c", handshake_response(caps=MODERN)),
        ("s", frames(2, b"\xfecaching_sha2_password\x00" + b"n" * 20 + b"\x00")), ("c", frames(3, b"h" * 32)),
        ("s", frames(4, b"\x01\x03")), ("s", ok(5)),
        ("c", query(b"SELECT 1")), ("s", ok(1)),
    ]
    decoder, events = feed(conversation, chunk)
    assert decoder.phase == COMMANDS and [e.statement_type for e in events] == ["SELECT"]


def test_access_denied_closes_quietly():
    decoder, events = feed([("s", greeting()), ("c", handshake_response()), ("s", err(2, 1045, b"28000", b"denied"))])
    assert events == [] and decoder.closed(5) == []


@pytest.mark.parametrize("flag, attribute", [(CLIENT_SSL, "tls"), (CLIENT_COMPRESS, "compressed")])
def test_tls_and_compression_become_opaque_and_counted(flag, attribute):
    caps = MODERN | flag
    if flag == CLIENT_SSL:
        ssl_request = frames(1, struct.pack("<IIB", caps, 1 << 24, 45) + b"\0" * 23)
        conversation = [("s", greeting(caps)), ("c", ssl_request), ("c", b"\x16\x03\x01" + b"\x99" * 500)]
    else:
        conversation = connect(caps) + [("c", b"\x10\x00\x00\x00\x00\x00\x00" + b"\x99" * 50)]
    decoder, events = feed(conversation)
    assert decoder.phase == OPAQUE and getattr(decoder.stats, attribute) and events == []
    assert decoder.server_data(b"\xff" * 100, 1) == []


@CHUNKS
def test_multi_frame_packets_over_16mb(chunk):
    big = b"SELECT '" + b"x" * (0xFFFFFF + 100) + b"'"
    # The request takes frames 0 and 1; the row is a text row starting with 0xFE (frames 4 and 5).
    blob_row = frames(4, lenenc(0xFFFFFF + 10) + b"b" * (0xFFFFFF + 10))
    response = frames(2, lenenc(1)) + column(3) + blob_row + ok(6, header=0xFE)
    conversation = connect() + [("c", query(big)), ("s", response)]
    # 33 MB in 1- or 7-byte chunks takes too long: odd sizes that still split headers do.
    decoder, events = feed(conversation, {1: 1 << 20, 7: 7 * 1024 + 7}.get(chunk))
    [event] = events
    assert event.text_truncated and event.rows_returned == 1 and event.digest == "SELECT ?"
    assert event.request_bytes == len(query(big))
    assert decoder._client.buffered <= 70_000 and decoder.stats.resyncs == 0


@CHUNKS
def test_garbage_resyncs_at_next_command(chunk):
    conversation = connect() + [
        ("c", query(b"SELECT 1")), ("s", frames(1, b"\x01") + frames(5, b"junk")),  # sequence jump
        ("c", query(b"SELECT 2")), ("s", ok(1)),
    ]
    decoder, events = feed(conversation, chunk)
    assert decoder.stats.resyncs == 1 and decoder.phase == COMMANDS
    assert [e.digest for e in events] == ["SELECT ?"] and events[0].text == "SELECT 2"


def test_unknown_command_resyncs_and_unsolicited_server_data_too():
    decoder, events = feed(connect() + [("c", frames(0, b"\x77abc"))])
    assert decoder.phase == RESYNC and decoder.stats.resyncs == 1
    decoder, events = feed(connect() + [("s", ok(1))])
    assert decoder.phase == RESYNC


def test_progress_reports_are_not_errors():
    progress = frames(1, b"\xff\xff\xff\x01\x01\x01" + b"\x00" * 6)
    _, events = feed(connect() + [("c", query(b"ALTER TABLE t ADD c INT")), ("s", progress + ok(2))])
    assert [e.error_code for e in events] == [None]


def test_connection_closed_mid_result_is_an_aborted_statement():
    decoder, events = feed(connect() + [("c", query(b"SELECT * FROM t")), ("s", frames(1, lenenc(1)) + column(2) + text_row(3, b"a"))])
    assert events == []
    [event] = decoder.closed(10**10)
    assert event.aborted and event.error and event.rows_returned == 1


def test_pipelined_prepare_and_execute_with_unknown_statement_id():
    prepared, _ = prepare_ok(1, 3, 0, 1, True)
    conversation = connect() + [
        ("c", frames(0, b"\x16DELETE FROM t WHERE id = ?") + execute(0xFFFFFFFF, [(0x03, struct.pack("<i", 5))])),
        ("s", prepared + ok(1, affected=1)),
    ]
    _, events = feed(conversation)
    assert [(e.statement_type, e.digest, e.rows_affected) for e in events] == [
        ("PREPARE", "DELETE FROM t WHERE id = ?", 0), ("DELETE", "DELETE FROM t WHERE id = ?", 1)]


def test_err_out_of_turn_ends_the_statement():
    # A killed connection: the server sends ERR with sequence id 0 in the middle of a response.
    conversation = connect() + [("c", query(b"SELECT SLEEP(10)")),
                                ("s", frames(1, lenenc(1)) + column(2) + err(0, 1927, b"70100", b"Connection was killed"))]
    decoder, events = feed(conversation)
    assert [(e.statement_type, e.error_code) for e in events] == [("SELECT", 1927)]
    assert decoder.stats.resyncs == 0


def test_statement_text_kept_is_bounded():
    long_query = b"SELECT " + b", ".join(b"c%d" % i for i in range(3000)) + b" FROM t"
    _, [event] = feed(connect() + [("c", query(long_query)), ("s", ok(1))])
    assert event.text_truncated and len(event.text) == 4096 and len(event.digest) <= 1027


@CHUNKS
@pytest.mark.parametrize("caps", [LEGACY, MODERN])
def test_mariadb_metadata_skipped_by_cache_metadata(chunk, caps):
    # MARIADB_CLIENT_CACHE_METADATA: the column count carries "metadata follows" = 0 and no
    # column definitions come (the EOF after metadata still does without DEPRECATE_EOF).
    deprecate = bool(caps & CLIENT_DEPRECATE_EOF)
    response = frames(1, lenenc(1) + b"\x00") + (b"" if deprecate else eof(2))
    seq = 2 if deprecate else 3
    response += binary_row(seq, 7) + (ok(seq + 1, header=0xFE) if deprecate else eof(seq + 1))
    prepared, _ = prepare_ok(1, 4, 1, 0, deprecate)
    conversation = connect(caps | (1 << 36)) + [("c", frames(0, b"\x16SELECT k FROM t")), ("s", prepared),
                                                ("c", execute(4)), ("s", response)]
    decoder, events = feed(conversation, chunk)
    assert [(e.statement_type, e.rows_returned) for e in events] == [("PREPARE", 0), ("SELECT", 1)]
    assert decoder.stats.resyncs == 0


def test_process_info_answers_with_a_result_set():
    response, _ = result_set(1, [(b"1", b"root"), (b"2", b"app")], deprecate_eof=False)
    _, events = feed(connect(LEGACY) + [("c", frames(0, b"\x0a")), ("s", response)])
    assert [(e.statement_type, e.rows_returned) for e in events] == [("PROCESS_INFO", 2)]
