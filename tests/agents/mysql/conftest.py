from __future__ import annotations

import pytest

from tests.agents.mysql.support import ProxyRelay, RecordingTelemetry

DATABASE = "meshscope_mysql_agent"


@pytest.fixture(scope="session")
def mysql_db(mariadb):
    """The real MariaDB with a database of this suite's own (``.database`` = its name)."""
    import pymysql

    with pymysql.connect(host=mariadb.host, port=mariadb.port, user=mariadb.user,
                         password=mariadb.password, autocommit=True) as conn:
        cursor = conn.cursor()
        cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        cursor.execute(f"CREATE DATABASE {DATABASE}")
        cursor.execute("SET GLOBAL local_infile = 1")
    yield mariadb


@pytest.fixture
def telemetry():
    return RecordingTelemetry()


@pytest.fixture
def relay(mysql_db, telemetry):
    """The real proxy with MySQLObservers (and a byte tap) in front of MariaDB."""
    relay = ProxyRelay(mysql_db.host, mysql_db.port, telemetry).start()
    yield relay
    relay.stop()
