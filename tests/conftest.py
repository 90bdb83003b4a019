"""Session-wide platform services for the tests, started by the tests themselves."""

from __future__ import annotations

import pytest

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
