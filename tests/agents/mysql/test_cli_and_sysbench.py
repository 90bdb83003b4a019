"""The `mariadb` command-line client and sysbench (libmariadb: MariaDB extended capabilities,
metadata caching, prepared statements) through the real proxy against the real MariaDB."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter

import pytest

from tests.agents.mysql.conftest import DATABASE

pytestmark = pytest.mark.skipif(not shutil.which("mariadb") or not shutil.which("sysbench"),
                                reason="needs the mariadb client and sysbench (apt-get install mariadb-client sysbench)")


def test_mariadb_cli_script(relay, telemetry, mysql_db, tmp_path):
    data = tmp_path / "rows.tsv"
    data.write_text("".join(f"{i}\tv{i}\n" for i in range(10, 60)))
    script = f"""
CREATE TABLE IF NOT EXISTS cli_t (id INT PRIMARY KEY, v TEXT);
DELETE FROM cli_t;
INSERT INTO cli_t VALUES (1,'a'),(2,'b');
SELECT * FROM cli_t;
DROP PROCEDURE IF EXISTS cli_p;
DELIMITER //
CREATE PROCEDURE cli_p() BEGIN SELECT 1; SELECT id FROM cli_t; END//
DELIMITER ;
CALL cli_p();
START TRANSACTION;
UPDATE cli_t SET v = 'c' WHERE id = 2;
COMMIT;
LOAD DATA LOCAL INFILE '{data}' INTO TABLE cli_t;
SELEC 1;
INSERT INTO cli_t VALUES (1, 'dup');
USE mysql;
SELECT COUNT(*) FROM {DATABASE}.cli_t;
"""
    result = subprocess.run(["mariadb", f"-h{mysql_db.host}", f"-P{relay.port}", f"-u{mysql_db.user}", "--force",
                             "--local-infile=1", DATABASE], input=script.encode(), capture_output=True, timeout=60)
    assert b"ERROR 1064" in result.stderr and b"ERROR 1062" in result.stderr
    relay.wait_closed()
    assert [(o["method"], o["rows"], o["status_class"], o["database"]) for o in telemetry.observations] == [
        ("CREATE", 0, "ok", DATABASE), ("DELETE", 0, "ok", DATABASE), ("INSERT", 2, "ok", DATABASE),
        ("SELECT", 2, "ok", DATABASE), ("DROP", 0, "ok", DATABASE), ("CREATE", 0, "ok", DATABASE),
        ("CALL", 3, "ok", DATABASE), ("BEGIN", 0, "ok", DATABASE), ("UPDATE", 1, "ok", DATABASE),
        ("COMMIT", 0, "ok", DATABASE), ("LOAD", 50, "ok", DATABASE), ("SELEC", 0, "error", DATABASE),
        # the client runs USE itself: SELECT DATABASE(), then COM_INIT_DB
        ("INSERT", 0, "error", DATABASE), ("SELECT", 1, "ok", DATABASE), ("INIT_DB", 0, "ok", DATABASE),
        ("SELECT", 1, "ok", "mysql"),
    ]
    relay.check_forwarding()
    assert relay.connections[0].observer.decoder.stats.resyncs == 0


def sysbench(port: int, server, *args: str) -> str:
    command = ["sysbench", "--db-driver=mysql", f"--mysql-host={server.host}", f"--mysql-port={port}",
               f"--mysql-user={server.user}", f"--mysql-db={DATABASE}", "--tables=1", "--table-size=500", *args]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=120).stdout


# Concurrent writers can deadlock (sysbench then retries and counts differently), so exact
# accounting runs the read-write mix on one thread and the read-only mix on two.
@pytest.mark.parametrize("test, threads, ps_mode", [("oltp_read_write", 1, "auto"), ("oltp_read_write", 1, "disable"),
                                                    ("oltp_read_only", 2, "auto")])
def test_sysbench_counts_every_query(relay, telemetry, mysql_db, test, threads, ps_mode):
    sysbench(mysql_db.port, mysql_db, "oltp_read_write", "cleanup")
    sysbench(mysql_db.port, mysql_db, "oltp_read_write", "prepare")
    output = sysbench(relay.port, mysql_db, test, f"--threads={threads}", "--events=60", "--time=0",
                      f"--db-ps-mode={ps_mode}", "run")
    relay.wait_closed()
    performed = {name: int(re.search(rf"{name}:\s+(\d+)", output).group(1)) for name in ("read", "write", "other")}
    counts = Counter(o["method"] for o in telemetry.observations if o["method"] != "PREPARE")
    explain = (output, counts, [o for o in telemetry.observations if o["status_class"] != "ok"][:5],
               [c.observer.decoder.stats for c in relay.connections])
    assert counts["SELECT"] == performed["read"], explain
    assert counts["UPDATE"] + counts["DELETE"] + counts["INSERT"] == performed["write"], explain
    assert counts["BEGIN"] + counts["COMMIT"] == performed["other"], explain
    assert all(o["status_class"] == "ok" for o in telemetry.observations), explain
    commands = Counter(s["tags"]["db.command"] for s in telemetry.spans)
    assert commands["STMT_EXECUTE" if ps_mode == "auto" else "QUERY"] >= performed["read"]
    relay.check_forwarding()
    assert all(connection.observer.decoder.stats.resyncs == 0 for connection in relay.connections)
