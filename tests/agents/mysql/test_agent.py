"""The real agent (agents/proxy.py + Recorder + Exporter, in-memory publisher) with an outbound
"mysql" listener in front of the real MariaDB: statements become per-digest latency records and
Zipkin spans on the wire model, bytes pass intact (a 20 MB row included), and random garbage
through a mysql listener is still forwarded byte for byte."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import mysql.connector
import pymysql
import pytest

from meshscope.devbroker import free_port
from tests.agents.mysql.conftest import DATABASE
from tests.agents.support import AgentThread, MemoryPublisher, wait_until

PARENT = "/*traceparent='00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'*/"


@pytest.fixture(scope="module")
def agent(mysql_db):
    publisher = MemoryPublisher()
    agent = AgentThread({
        "service": "catalogue", "outbound": [f"catalogue-db=127.0.0.1:0={mysql_db.host}:{mysql_db.port}/mysql"],
        "sample_rate": "1", "interval_s": "1",
    }, publisher=publisher).start()
    agent.publisher = publisher
    yield agent
    agent.stop()


def sql_records(publisher) -> dict[tuple, tuple[int, int, int]]:
    """(endpoint, method, status_class) -> (count, errors, rows) summed over intervals."""
    totals: dict[tuple, list[int]] = {}
    for record in publisher.records():
        if record.kind != "sql.client":
            continue
        entry = totals.setdefault((record.endpoint, record.method, record.status_class), [0, 0, 0])
        entry[0] += record.sketch.count
        entry[1] += record.errors
        entry[2] += record.rows
    return {key: tuple(value) for key, value in totals.items()}


def test_statements_become_metrics_and_spans_through_the_agent(agent, mysql_db):
    conn = pymysql.connect(host="127.0.0.1", port=agent.port(), user=mysql_db.user, password=mysql_db.password,
                           database=DATABASE, autocommit=True)
    cursor = conn.cursor()
    cursor.execute("DROP TABLE IF EXISTS agent_items")
    cursor.execute("CREATE TABLE agent_items (id INT PRIMARY KEY, name VARCHAR(20))")
    for index in range(5):
        cursor.execute("INSERT INTO agent_items VALUES (%s, %s)", (index, f"n{index}"))
    cursor.execute("SELECT id, name FROM agent_items WHERE id IN (1, 2, 3) " + PARENT)
    with pytest.raises(pymysql.MySQLError):
        cursor.execute("INSERT INTO agent_items VALUES (1, 'dup')")
    conn.close()
    prepared = mysql.connector.connect(host="127.0.0.1", port=agent.port(), user=mysql_db.user,
                                       password=mysql_db.password, database=DATABASE, use_pure=True)
    statement = prepared.cursor(prepared=True)
    for index in range(3):
        statement.execute("SELECT name FROM agent_items WHERE id = ?", (index,))
        assert len(statement.fetchall()) == 1
    prepared.close()

    select_digest = "SELECT id, name FROM agent_items WHERE id IN (...)"
    wait_until(lambda: sql_records(agent.publisher).get(("SELECT name FROM agent_items WHERE id = ?", "SELECT", "ok"),
                                                        (0,))[0] == 3, timeout=20)
    records = sql_records(agent.publisher)
    assert records[("INSERT INTO agent_items VALUES (...)", "INSERT", "ok")] == (5, 0, 5)
    assert records[("INSERT INTO agent_items VALUES (...)", "INSERT", "error")] == (1, 1, 0)
    assert records[(select_digest, "SELECT", "ok")] == (1, 0, 3)
    assert records[("SELECT name FROM agent_items WHERE id = ?", "SELECT", "ok")] == (3, 0, 3)

    spans = wait_until(lambda: [s for s in agent.publisher.spans() if s.get("tags", {}).get("db.system") == "mysql"
                                and s["name"] == "select" and "agent_items WHERE id IN" in s["tags"].get("sql.query", "")],
                       timeout=20)
    [span] = spans
    assert span["kind"] == "CLIENT" and span["remoteEndpoint"]["serviceName"] == "catalogue-db"
    assert span["traceId"] == "4bf92f3577b34da6a3ce929d0e0e4736" and span["parentId"] == "00f067aa0ba902b7"
    assert span["tags"]["db.name"] == DATABASE and span["tags"]["db.rows_returned"] == "3"
    assert "IN (?, ?, ?)" in span["tags"]["sql.query"]
    errors = [s for s in agent.publisher.spans() if s.get("tags", {}).get("mysql.error_code") == "1062"]
    assert len(errors) == 1 and errors[0]["tags"]["mysql.sqlstate"] == "23000"


def test_twenty_megabyte_row_passes_intact_and_is_counted(agent, mysql_db):
    with pymysql.connect(host=mysql_db.host, port=mysql_db.port, user=mysql_db.user, password=mysql_db.password) as admin:
        admin.cursor().execute("SET GLOBAL max_allowed_packet = 67108864")
    payload = os.urandom(20 * 1024 * 1024)
    conn = pymysql.connect(host="127.0.0.1", port=agent.port(), user=mysql_db.user, password=mysql_db.password,
                           database=DATABASE, autocommit=True)
    cursor = conn.cursor()
    cursor.execute("CREATE TABLE IF NOT EXISTS agent_blobs (id INT PRIMARY KEY, data LONGBLOB)")
    cursor.execute("REPLACE INTO agent_blobs VALUES (%s, %s)", (1, payload))
    cursor.execute("SELECT data FROM agent_blobs WHERE id = 1 /* twenty */")
    assert cursor.fetchone()[0] == payload
    conn.close()
    wait_until(lambda: any(key[0] == "SELECT data FROM agent_blobs WHERE id = ?" for key in sql_records(agent.publisher)),
               timeout=20)
    records = sql_records(agent.publisher)
    assert records[("SELECT data FROM agent_blobs WHERE id = ?", "SELECT", "ok")] == (1, 0, 1)
    # the 20 MB statement's text was cut at the capture limit, inside the literal
    assert records[("REPLACE INTO agent_blobs VALUES (?, ?", "REPLACE", "ok")] == (1, 0, 1)


class EchoServer:
    """A TCP server that sends back whatever it receives (a stand-in "database" for garbage)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        self.ready.wait(5)

    def _run(self) -> None:
        async def echo(reader, writer):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()

        async def main():
            self.server = await asyncio.start_server(echo, "127.0.0.1", self.port)
            self.ready.set()
            await self.server.serve_forever()

        try:
            self.loop.run_until_complete(main())
        except asyncio.CancelledError:
            pass


def test_garbage_through_a_mysql_listener_is_forwarded_byte_for_byte():
    echo = EchoServer()
    agent = AgentThread({"service": "fuzz", "outbound": [f"db=127.0.0.1:0=127.0.0.1:{echo.port}/mysql"]},
                        publisher=MemoryPublisher()).start()
    try:
        rng = __import__("random").Random(5)
        for trial in range(20):
            blob = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 20000)))
            if trial % 4 == 0:  # a plausible MySQL start, then nonsense
                blob = b"\x4a\x00\x00\x00\x0a10.11.19-MariaDB\x00" + blob
            with socket.create_connection(("127.0.0.1", agent.port()), timeout=10) as sock:
                sock.sendall(blob)
                received = bytearray()
                while len(received) < len(blob):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    received += chunk
            assert bytes(received) == blob
    finally:
        agent.stop()
