"""Errors surface as clickhouse-connect's DatabaseError (or StorageError from the writers) on both
transports, and the client keeps working afterwards."""

from __future__ import annotations

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from storage.errors import StorageError
from storage.writer import insert_spans


def test_bad_sql_raises_database_error(store):
    with pytest.raises(DatabaseError, match="SYNTAX_ERROR"):
        store.client.query("SELEC count() FROM spans")
    with pytest.raises(DatabaseError, match="UNKNOWN_TABLE"):
        store.client.command(f"SELECT count() FROM {store.database}.no_such_table")
    assert store.client.command(f"SELECT count() FROM {store.database}.spans") == 0


def test_insert_into_a_missing_table_raises_storage_error(store):
    span = {"traceId": "a" * 16, "id": "b" * 16, "name": "get", "timestamp": 1_700_000_000_000_000, "duration": 10}
    with pytest.raises(StorageError, match="insert into"):
        insert_spans(store.client, f"{store.database}_missing", [span])
    insert_spans(store.client, store.database, [span])
    assert store.client.command(f"SELECT count() FROM {store.database}.spans") == 1
