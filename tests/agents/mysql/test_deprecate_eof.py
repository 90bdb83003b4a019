"""CLIENT_DEPRECATE_EOF against the real MariaDB (result sets end with an OK packet with a 0xFE
header, no EOF after metadata). None of the ready-made clients here negotiate it, so PyMySQL
connects with the flag and the test speaks the commands itself, reading raw packets."""

from __future__ import annotations

import struct

import pymysql
from pymysql.constants import CLIENT, COMMAND

from tests.agents.mysql.conftest import DATABASE

MORE_RESULTS = 0x0008
CURSOR_EXISTS = 0x0040


def status_of(data: bytes) -> int:
    """Status flags of an OK packet (0x00 or 0xFE header; both lengths here are one byte)."""
    return struct.unpack_from("<H", data, 3)[0]


def read_results(conn) -> list[int]:
    """Rows of each result set of a response (-1 for an OK), following SERVER_MORE_RESULTS_EXISTS."""
    results = []
    while True:
        data = conn._read_packet().get_all_data()
        if data[0] == 0x00:
            results.append(-1)
        else:
            for _ in range(data[0]):  # column count < 251: one byte
                conn._read_packet()
            rows = 0
            while True:
                data = conn._read_packet().get_all_data()
                if data[0] == 0xFE and len(data) < 0xFFFFFF:
                    break
                rows += 1
            results.append(rows)
        if not status_of(data) & MORE_RESULTS:
            return results


def read_fetched(conn) -> int:
    """Rows of a COM_STMT_FETCH response (binary rows, 0x00 header, until the 0xFE OK)."""
    rows = 0
    while conn._read_packet().get_all_data()[0] != 0xFE:
        rows += 1
    return rows


def test_deprecate_eof_text_binary_and_cursor(relay, telemetry, mysql_db):
    conn = pymysql.connect(host=mysql_db.host, port=relay.port, user=mysql_db.user, password=mysql_db.password,
                           database=DATABASE, read_timeout=10,
                           client_flag=CLIENT.DEPRECATE_EOF | CLIENT.MULTI_STATEMENTS | CLIENT.MULTI_RESULTS)
    telemetry.clear()
    conn._execute_command(COMMAND.COM_QUERY, "SELECT seq FROM seq_1_to_5; SELECT 1; DO 1")
    assert read_results(conn) == [5, 1, -1]
    conn._execute_command(COMMAND.COM_STMT_PREPARE, "SELECT seq FROM seq_1_to_10 WHERE seq > ?")
    data = conn._read_packet().get_all_data()
    statement_id, columns, params = struct.unpack_from("<IHH", data, 1)
    for _ in range(columns + params):  # no EOF after either section
        conn._read_packet()
    execute = struct.pack("<IBI", statement_id, 0, 1) + b"\x00\x01" + struct.pack("<BBq", 8, 0, 3)
    conn._execute_command(COMMAND.COM_STMT_EXECUTE, execute)
    assert read_results(conn) == [7]
    cursor_execute = struct.pack("<IBI", statement_id, 1, 1) + b"\x00\x00" + struct.pack("<q", 6)
    conn._execute_command(COMMAND.COM_STMT_EXECUTE, cursor_execute)
    conn._read_packet()  # column count
    conn._read_packet()  # column definition
    opened = conn._read_packet().get_all_data()
    assert opened[0] == 0xFE and status_of(opened) & CURSOR_EXISTS
    conn._execute_command(COMMAND.COM_STMT_FETCH, struct.pack("<II", statement_id, 3))
    assert read_fetched(conn) == 3
    conn._execute_command(COMMAND.COM_STMT_FETCH, struct.pack("<II", statement_id, 3))
    assert read_fetched(conn) == 1
    conn.close()
    digest = "SELECT seq FROM seq_1_to_10 WHERE seq > ?"
    assert [(o["method"], o["endpoint"], o["rows"]) for o in telemetry.observations] == [
        ("SELECT", "SELECT seq FROM seq_1_to_5", 5), ("SELECT", "SELECT ?", 1), ("DO", "DO ?", 0),
        ("PREPARE", digest, 0), ("SELECT", digest, 7), ("SELECT", digest, 0), ("FETCH", digest, 3),
        ("FETCH", digest, 1),
    ]
    relay.check_forwarding()
    [connection] = relay.connections
    assert connection.observer.decoder.stats.resyncs == 0
    assert connection.observer.decoder.caps & CLIENT.DEPRECATE_EOF
