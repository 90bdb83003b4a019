"""Schema migrations: idempotent, the command line, and retention reaching existing tables."""

from __future__ import annotations

import re

from storage import migrations

from storage.migrations import _TTL_COLUMNS

TTL_TABLES = tuple(_TTL_COLUMNS)  # every table with a retention TTL


def test_migrations_apply_twice(store):
    # the fixture has applied them once already
    assert migrations.apply(store.client, store.database, retention_days=20000) == []
    assert migrations.apply(store.client, store.database, retention_days=20000) == []
    versions = [row[0] for row in store.client.query(f"SELECT version FROM {store.database}.schema_migrations FINAL ORDER BY version").result_rows]
    assert versions == [m.version for m in migrations.available()]
    tables = {row[0] for row in store.client.query(
        "SELECT name FROM system.tables WHERE database = {db:String}", parameters={"db": store.database}).result_rows}
    assert set(TTL_TABLES) <= tables


def test_migrate_command_line(store, monkeypatch, capsys):
    database = f"{store.database}_cli"
    monkeypatch.setenv("MESHSCOPE_CLICKHOUSE_DATABASE", database)
    assert migrations.run(["--clickhouse-url", store.url]) == 0
    assert capsys.readouterr().out.strip() == f"schema up to date ({len(migrations.available())} migration(s) applied now)"
    assert migrations.run(["--clickhouse-url", store.url]) == 0
    assert capsys.readouterr().out.strip() == "schema up to date (0 migration(s) applied now)"


def test_retention_change_reaches_the_tables(store):
    migrations.apply(store.client, store.database, retention_days=7)
    for table in TTL_TABLES:
        assert _ttl_days(store, table) == 7, table
    migrations.apply(store.client, store.database, retention_days=30)
    for table in TTL_TABLES:
        assert _ttl_days(store, table) == 30, table
        assert "ttl_only_drop_parts = 1" in _create_statement(store, table)


def _create_statement(store, table: str) -> str:
    return store.client.query(f"SHOW CREATE TABLE {store.database}.{table}").result_rows[0][0]


def _ttl_days(store, table: str) -> int:
    match = re.search(r"\bTTL .*\+ toIntervalDay\((\d+)\)", _create_statement(store, table))
    assert match, _create_statement(store, table)
    return int(match[1])
