"""Session-wide platform services for the tests, started by the tests themselves."""

from __future__ import annotations

from tests.support import pure_python

if pure_python.ENABLED:  # before any compiled module is imported
    pure_python.install()

import pytest  # noqa: E402

from meshscope.devbroker import TansuBroker


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory):
    """A tansu Kafka-protocol broker on a free loopback port for the whole session; yields it
    (``.bootstrap`` is host:port). Tests that stop/restart a broker use ``fresh_broker``."""
    broker = TansuBroker(log_path=tmp_path_factory.mktemp("tansu") / "tansu.log").start()
    yield broker
    broker.stop()


@pytest.fixture
def fresh_broker(tmp_path):
    """A broker of this test's own, free to stop (``stop(kill=True)``) and ``start()`` again."""
    broker = TansuBroker(log_path=tmp_path / "tansu.log").start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def mariadb():
    from tests.support.mariadb import start_mariadb

    server = start_mariadb()
    yield server
    server.stop()


# ClickHouse: chdb allows one data directory per process, so every test in a run shares one
# embedded store and isolates itself with a database of its own.
@pytest.fixture(scope="session")
def chdb_url(tmp_path_factory):
    return f"chdb://{tmp_path_factory.mktemp('chdb')}"


@pytest.fixture
def clickhouse(chdb_url, request):
    """A migrated database of this test's own in the session's embedded store:
    yields a ``Store(url, database, client)``."""
    return _migrated_store(chdb_url, request)


def _migrated_store(url, request):
    import re
    import uuid

    from storage import migrations
    from storage.client import connect
    from tests.support.store import Store

    name = re.sub(r"\W", "_", request.node.name)[:40]
    database = f"t_{name}_{uuid.uuid4().hex[:6]}"
    client = connect(url)
    migrations.apply(client, database, retention_days=20000)  # testdata spans date from 2016
    return Store(url, database, client)


# ClickHouse over HTTP: no server binary can be installed here, so the HTTP transport is exercised
# against a test double of the ClickHouse HTTP interface (tests/support/clickhouse_http.py) that
# runs in this process over the real engine and the session's data directory.
@pytest.fixture(scope="session")
def clickhouse_http(chdb_url):
    """The ClickHouse HTTP test double on a free loopback port for the whole session (``.url``)."""
    from storage.client import connect
    from tests.support.clickhouse_http import ClickHouseHttpDouble

    connect(chdb_url)  # the engine belongs to the session's embedded store; the double shares it
    double = ClickHouseHttpDouble(chdb_url.removeprefix("chdb://")).start()
    yield double
    double.stop()


@pytest.fixture
def clickhouse_over_http(clickhouse_http, request):
    """Like ``clickhouse``, reached over HTTP: yields a ``Store(url, database, client)``."""
    store = _migrated_store(clickhouse_http.url, request)
    yield store
    store.client.close()


@pytest.fixture(params=["chdb", "http"])
def store(request):
    """A migrated database of this test's own, on each storage transport in turn."""
    return request.getfixturevalue("clickhouse" if request.param == "chdb" else "clickhouse_over_http")
