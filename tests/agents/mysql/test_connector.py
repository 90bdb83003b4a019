"""mysql-connector-python (pure Python) with server-side prepared statements: the binary protocol,
bound parameters, cursors with COM_STMT_FETCH, SEND_LONG_DATA, RESET, CLOSE, RESET_CONNECTION,
STATISTICS, through the real proxy against the real MariaDB."""

from __future__ import annotations

import io

import mysql.connector
import pytest

from agents.mysql.observer import MySQLOptions
from tests.agents.mysql.conftest import DATABASE
from tests.agents.mysql.support import ProxyRelay


def connect(server, port: int):
    return mysql.connector.connect(host=server.host, port=port, user=server.user, password=server.password,
                                   database=DATABASE, use_pure=True, autocommit=True)


@pytest.fixture(scope="module")
def table(mysql_db):
    conn = connect(mysql_db, mysql_db.port)
    cursor = conn.cursor()
    cursor.execute("DROP TABLE IF EXISTS accounts")
    cursor.execute("CREATE TABLE accounts (id INT PRIMARY KEY, owner VARCHAR(40), balance DECIMAL(10,2), note MEDIUMBLOB)")
    conn.close()
    return mysql_db


@pytest.fixture
def capturing_relay(table, telemetry):
    relay = ProxyRelay(table.host, table.port, telemetry, options=MySQLOptions(capture_params=True)).start()
    yield relay
    relay.stop()


def statements(telemetry, *skip: str) -> list[tuple]:
    return [(o["method"], o["endpoint"], o["rows"], o["status_class"]) for o in telemetry.observations
            if o["method"] not in skip]


def test_prepared_statements_binary_rows_errors_and_params(capturing_relay, telemetry, table):
    conn = connect(table, capturing_relay.port)
    cursor = conn.cursor(prepared=True)
    cursor.execute("DELETE FROM accounts")
    telemetry.clear()
    insert = "INSERT INTO accounts (id, owner, balance) VALUES (?, ?, ?)"
    for index in range(3):
        cursor.execute(insert, (index, f"owner{index}", 10.5 * index))
    with pytest.raises(mysql.connector.IntegrityError) as duplicate:
        cursor.execute(insert, (1, "again", 1))
    cursor.execute("SELECT id, owner, balance FROM accounts WHERE id >= ? ORDER BY id", (1,))
    assert len(cursor.fetchall()) == 2
    cursor.execute("UPDATE accounts SET note = ? WHERE id = ?", (io.BytesIO(b"n" * 300_000), 2))
    with pytest.raises(mysql.connector.ProgrammingError):
        cursor.execute("SELECT nothing FROM no_table WHERE id = ?", (1,))
    cursor.close()
    conn.close()
    assert duplicate.value.errno == 1062
    assert statements(telemetry, "STMT_RESET") == [
        ("PREPARE", "INSERT INTO accounts(id, owner, balance) VALUES (...)", 0, "ok"),
        *[("INSERT", "INSERT INTO accounts(id, owner, balance) VALUES (...)", 1, "ok")] * 3,
        ("INSERT", "INSERT INTO accounts(id, owner, balance) VALUES (...)", 0, "error"),
        ("PREPARE", "SELECT id, owner, balance FROM accounts WHERE id >= ? ORDER BY id", 0, "ok"),
        ("SELECT", "SELECT id, owner, balance FROM accounts WHERE id >= ? ORDER BY id", 2, "ok"),
        ("PREPARE", "UPDATE accounts SET note = ? WHERE id = ?", 0, "ok"),
        ("UPDATE", "UPDATE accounts SET note = ? WHERE id = ?", 1, "ok"),
        ("PREPARE", "SELECT nothing FROM no_table WHERE id = ?", 0, "error"),
    ]
    executes = [s for s in telemetry.spans if s["tags"]["db.command"] == "STMT_EXECUTE"]
    assert executes[1]["tags"]["sql.params"] == "1, 'owner1', 10.5"
    assert executes[3]["tags"]["mysql.error_code"] == "1062"
    assert executes[5]["tags"]["sql.params"] == "<long data>, 2"
    capturing_relay.check_forwarding()
    assert capturing_relay.connections[0].observer.decoder.stats.resyncs == 0


def test_cursor_fetch_reset_close_and_utility_commands(relay, telemetry, table):
    conn = connect(table, relay.port)
    telemetry.clear()
    prepared = conn.cmd_stmt_prepare(b"SELECT seq FROM seq_1_to_10 WHERE seq > ?")
    result = conn.cmd_stmt_execute(prepared["statement_id"], data=(3,), parameters=prepared["parameters"], flags=1)
    conn.cmd_stmt_fetch(prepared["statement_id"], 4)
    first, _ = conn.get_rows(binary=True, columns=result[1])
    conn.cmd_stmt_fetch(prepared["statement_id"], 10)
    rest, _ = conn.get_rows(binary=True, columns=result[1])
    assert len(first) == 4 and len(rest) == 3
    conn.cmd_stmt_reset(prepared["statement_id"])
    conn.cmd_stmt_close(prepared["statement_id"])
    conn.cmd_reset_connection()
    try:
        conn.cmd_statistics()
    except mysql.connector.InterfaceError:
        pass  # the client cannot parse MariaDB's statistics string; the exchange itself is fine
    conn.cmd_ping()
    conn.close()
    digest = "SELECT seq FROM seq_1_to_10 WHERE seq > ?"
    assert statements(telemetry, "SET") == [
        ("PREPARE", digest, 0, "ok"), ("SELECT", digest, 0, "ok"), ("FETCH", digest, 4, "ok"),
        ("FETCH", digest, 3, "ok"), ("STMT_RESET", "COM_STMT_RESET", 0, "ok"),
        ("RESET_CONNECTION", "COM_RESET_CONNECTION", 0, "ok"),
        ("STATISTICS", "COM_STATISTICS", 0, "ok"), ("PING", "COM_PING", 0, "ok"),
    ]
    assert "sql.params" not in str(telemetry.spans)  # off by default
    relay.wait_closed()
    assert relay.connections[0].observer.decoder.stats.resyncs == 0


def test_compressed_connection_passes_through_opaque_and_counted(relay, telemetry, table):
    conn = mysql.connector.connect(host=table.host, port=relay.port, user=table.user, password=table.password,
                                   database=DATABASE, use_pure=True, compress=True)
    cursor = conn.cursor()
    cursor.execute("SELECT seq FROM seq_1_to_1000")
    assert len(cursor.fetchall()) == 1000
    conn.close()
    relay.check_forwarding()
    stats = relay.connections[0].observer.decoder.stats
    assert stats.compressed and stats.resyncs == 0
    assert telemetry.observations == []  # nothing decoded after the handshake
