"""PyMySQL (text protocol) through the real proxy against the real MariaDB: every statement counted
exactly once with the right rows and error code; forwarded bytes identical."""

from __future__ import annotations

import pymysql
import pytest
from pymysql.constants import CLIENT

from agents.mysql.decoder import MySQLConnectionDecoder
from tests.agents.mysql.conftest import DATABASE


def connect(server, port: int, **kwargs) -> pymysql.Connection:
    return pymysql.connect(host=server.host, port=port, user=server.user, password=server.password,
                           database=DATABASE, autocommit=True, client_flag=CLIENT.MULTI_STATEMENTS,
                           local_infile=True, **kwargs)


def direct(server) -> pymysql.Connection:
    return connect(server, server.port)


@pytest.fixture(scope="module")
def tables(mysql_db):
    with direct(mysql_db) as conn:
        cursor = conn.cursor()
        cursor.execute("DROP TABLE IF EXISTS items")
        cursor.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40), qty INT)")
        cursor.execute("DROP TABLE IF EXISTS blobs")
        cursor.execute("CREATE TABLE blobs (id INT PRIMARY KEY, data LONGBLOB)")
        cursor.execute("DROP PROCEDURE IF EXISTS two_sets")
        cursor.execute("CREATE PROCEDURE two_sets(IN n INT) BEGIN "
                       "SELECT id FROM items WHERE id <= n; SELECT COUNT(*) FROM items; "
                       "UPDATE items SET qty = qty + 1 WHERE id = 1; END")
    return mysql_db


def summary(telemetry) -> list[tuple]:
    return [(o["method"], o["endpoint"], o["rows"], o["status_class"]) for o in telemetry.observations]


def assert_bytes_identical(relay) -> None:
    relay.check_forwarding()
    for connection in relay.connections:
        assert connection.observer.decoder.stats.resyncs == 0


def test_statements_rows_and_errors_each_counted_once(tables, relay, telemetry):
    conn = connect(tables, relay.port)
    cursor = conn.cursor()
    telemetry.clear()
    cursor.execute("DELETE FROM items")
    cursor.execute("INSERT INTO items VALUES (1, 'apple', 5), (2, 'pear', 7), (3, 'fig', 0)")
    cursor.execute("SELECT id, name FROM items WHERE id IN (1, 2, 3) ORDER BY id")
    assert len(cursor.fetchall()) == 3
    cursor.execute("UPDATE items SET qty = qty + 1 WHERE id > 1")
    errors = {}
    for statement in ("SELEC name FROM items", "INSERT INTO items VALUES (1, 'dup', 1)", "SELECT * FROM no_such_table"):
        with pytest.raises(pymysql.MySQLError) as caught:
            cursor.execute(statement)
        errors[statement] = caught.value.args[0]
    conn.ping()
    conn.close()
    assert errors == {"SELEC name FROM items": 1064, "INSERT INTO items VALUES (1, 'dup', 1)": 1062,
                      "SELECT * FROM no_such_table": 1146}
    assert summary(telemetry) == [
        ("DELETE", "DELETE FROM items", 0, "ok"),
        ("INSERT", "INSERT INTO items VALUES (...)", 3, "ok"),
        ("SELECT", "SELECT id, name FROM items WHERE id IN (...) ORDER BY id", 3, "ok"),
        ("UPDATE", "UPDATE items SET qty = qty + ? WHERE id > ?", 2, "ok"),
        ("SELEC", "SELEC name FROM items", 0, "error"),
        ("INSERT", "INSERT INTO items VALUES (...)", 0, "error"),
        ("SELECT", "SELECT * FROM no_such_table", 0, "error"),
        ("PING", "COM_PING", 0, "ok"),
    ]
    codes = [(s["tags"].get("mysql.error_code"), s["tags"].get("mysql.sqlstate")) for s in telemetry.spans]
    assert codes[4:7] == [("1064", "42000"), ("1062", "23000"), ("1146", "42S02")]
    span = telemetry.spans[2]
    assert span["kind"] == "CLIENT" and span["remoteEndpoint"]["serviceName"] == "catalogue-db"
    assert span["tags"]["sql.query"] == "SELECT id, name FROM items WHERE id IN (?, ?, ?) ORDER BY id"
    assert span["tags"]["db.name"] == DATABASE and span["tags"]["db.user"] == tables.user
    assert all(o["database"] == DATABASE and o["kind"] == "sql.client" for o in telemetry.observations)
    assert_bytes_identical(relay)


def test_multi_statement_batch_and_stored_procedure(tables, relay, telemetry):
    with direct(tables) as conn:
        conn.cursor().execute("REPLACE INTO items VALUES (1, 'apple', 5), (2, 'pear', 7), (3, 'fig', 0)")
    conn = connect(tables, relay.port)
    cursor = conn.cursor()
    telemetry.clear()
    cursor.execute("SELECT id FROM items ORDER BY id; UPDATE items SET qty = 1 WHERE id = 3; SELECT name FROM items WHERE id = 1")
    while cursor.nextset():
        pass
    cursor.execute("CALL two_sets(2)")
    while cursor.nextset():
        pass
    with pytest.raises(pymysql.MySQLError):
        cursor.execute("SELECT 1; SELECT * FROM missing; SELECT 3")
        while cursor.nextset():
            pass
    conn.close()
    assert summary(telemetry) == [
        ("SELECT", "SELECT id FROM items ORDER BY id", 3, "ok"),
        ("UPDATE", "UPDATE items SET qty = ? WHERE id = ?", 1, "ok"),
        ("SELECT", "SELECT name FROM items WHERE id = ?", 1, "ok"),
        ("CALL", "CALL two_sets(?)", 3, "ok"),
        ("SELECT", "SELECT ?", 1, "ok"),
        ("SELECT", "SELECT * FROM missing", 0, "error"),
    ]
    assert_bytes_identical(relay)


def test_transactions(tables, relay, telemetry):
    conn = connect(tables, relay.port)
    cursor = conn.cursor()
    telemetry.clear()
    conn.begin()
    cursor.execute("INSERT INTO items VALUES (100, 'tx', 1)")
    conn.rollback()
    cursor.execute("START TRANSACTION")
    cursor.execute("INSERT INTO items VALUES (101, 'tx', 1)")
    conn.commit()
    conn.close()
    assert [(o["method"], o["rows"]) for o in telemetry.observations] == [
        ("BEGIN", 0), ("INSERT", 1), ("ROLLBACK", 0), ("BEGIN", 0), ("INSERT", 1), ("COMMIT", 0)]
    assert_bytes_identical(relay)


def test_large_blob_rows_and_a_20mb_packet(tables, relay, telemetry):
    with direct(tables) as conn:
        conn.cursor().execute("SET GLOBAL max_allowed_packet = 67108864")
    conn = connect(tables, relay.port)
    cursor = conn.cursor()
    cursor.execute("DELETE FROM blobs")
    telemetry.clear()
    for index in range(4):
        cursor.execute("INSERT INTO blobs VALUES (%s, %s)", (index, bytes([index]) * 1_000_000))
    huge = b"\x01\xfe\xff" * (20 * 1024 * 1024 // 3)
    cursor.execute("INSERT INTO blobs VALUES (%s, %s)", (99, huge))
    cursor.execute("SELECT id, data FROM blobs WHERE id < 4")
    assert len(cursor.fetchall()) == 4
    cursor.execute("SELECT data FROM blobs WHERE id = 99")
    assert cursor.fetchone()[0] == huge
    conn.close()
    assert [(o["method"], o["rows"], o["status_class"]) for o in telemetry.observations] == [
        ("INSERT", 1, "ok")] * 5 + [("SELECT", 4, "ok"), ("SELECT", 1, "ok")]
    assert telemetry.observations[4]["request_bytes"] > 20 * 1024 * 1024
    assert telemetry.spans[4]["tags"]["sql.query"].endswith("...")
    relay.wait_closed()
    decoder = relay.connections[0].observer.decoder
    assert decoder._client.buffered == 0 and decoder._server.buffered == 0
    assert_bytes_identical(relay)


def test_load_data_local_infile(tables, relay, telemetry, tmp_path):
    path = tmp_path / "items.csv"
    path.write_text("".join(f"{1000 + i},bulk{i},{i}\n" for i in range(5000)))
    conn = connect(tables, relay.port)
    cursor = conn.cursor()
    telemetry.clear()
    cursor.execute(f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE items FIELDS TERMINATED BY ','")
    cursor.execute("DELETE FROM items WHERE id >= 1000")
    conn.close()
    assert [(o["method"], o["rows"], o["status_class"]) for o in telemetry.observations] == [
        ("LOAD", 5000, "ok"), ("DELETE", 5000, "ok")]
    assert_bytes_identical(relay)


def test_utility_commands_and_schema_tracking(tables, relay, telemetry):
    conn = connect(tables, relay.port)
    telemetry.clear()
    conn.select_db("mysql")
    cursor = conn.cursor()
    cursor.execute("SELECT 1")
    cursor.execute(f"USE {DATABASE}")
    cursor.execute("SELECT 2")
    conn.ping()
    conn.close()
    assert [(o["method"], o["database"]) for o in telemetry.observations] == [
        ("INIT_DB", DATABASE), ("SELECT", "mysql"), ("USE", "mysql"), ("SELECT", DATABASE), ("PING", DATABASE)]
    assert_bytes_identical(relay)


def test_recorded_traffic_decodes_identically_in_any_chunking(tables, relay, telemetry):
    conn = connect(tables, relay.port)
    cursor = conn.cursor()
    cursor.execute("SELECT id, name FROM items ORDER BY id; SELECT 1")
    while cursor.nextset():
        pass
    with pytest.raises(pymysql.MySQLError):
        cursor.execute("SELECT * FROM nope")
    conn.close()
    relay.wait_closed()
    transcript = relay.connections[0].transcript
    reference = [(o["method"], o["endpoint"], o["rows"]) for o in telemetry.observations]
    for size in (1, 7, None):
        decoder = MySQLConnectionDecoder()
        events = []
        for direction, data, now in transcript:
            step = size or len(data)
            feed = decoder.client_data if direction == "c" else decoder.server_data
            for at in range(0, len(data), step):
                events.extend(feed(data[at:at + step], now))
        assert [(e.statement_type, e.digest, e.rows) for e in events] == reference


def test_connection_killed_mid_statement_is_an_error(tables, relay, telemetry):
    import threading

    conn = connect(tables, relay.port)
    thread_id = conn.thread_id()
    telemetry.clear()

    def kill_soon():
        with direct(tables) as admin:
            admin.cursor().execute("DO SLEEP(0.5)")
            admin.cursor().execute(f"KILL {thread_id}")

    killer = threading.Thread(target=kill_soon)
    killer.start()
    with pytest.raises(pymysql.MySQLError):
        conn.cursor().execute("SELECT SLEEP(20)")
    killer.join()
    relay.wait_closed()
    [observation] = telemetry.observations
    assert (observation["method"], observation["status_class"]) == ("SELECT", "error")


def test_inbound_agent_in_front_of_the_database(tables, telemetry):
    from tests.agents.mysql.support import ProxyRelay

    relay = ProxyRelay(tables.host, tables.port, telemetry, direction="inbound").start()
    try:
        conn = connect(tables, relay.port)
        telemetry.clear()
        conn.cursor().execute("SELECT COUNT(*) FROM items")
        conn.close()
        relay.check_forwarding()
    finally:
        relay.stop()
    [observation], [span] = telemetry.observations, telemetry.spans
    assert (observation["kind"], observation["remote_service"], observation["rows"]) == ("sql.server", "", 1)
    assert span["kind"] == "SERVER" and span["remoteEndpoint"]["ipv4"] == "127.0.0.1"
