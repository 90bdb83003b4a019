from __future__ import annotations

from dataclasses import dataclass

from clickhouse_connect.driver.client import Client


@dataclass
class Store:
    """A ClickHouse store for one test: the URL the product is configured with, the test's own
    database, and a client on it."""

    url: str
    database: str
    client: Client
