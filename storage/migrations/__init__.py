"""Versioned schema migrations, applied at start-up and idempotent.

Files ``NNNN_name.sql`` in this folder run in order, once each, recorded in
``{db}.schema_migrations``; every statement is written to be re-runnable (``IF NOT EXISTS``), so
two processes starting together, or a crash between a statement and its record, are harmless.
The retention TTL is re-applied at every start so that changing ``MESHSCOPE_RETENTION_DAYS``
reaches existing tables (a metadata change; old parts are dropped whole by the next merge).

``meshscope migrate`` applies them and exits.
"""

from __future__ import annotations

import argparse
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from clickhouse_connect.driver.client import Client

from storage.errors import MigrationError

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent
# table -> TTL expression (retention is applied in days)
_TTL_COLUMNS = {
    "spans": "toDateTime(ts)",
    "latency": "interval_start",
    "resource_samples": "toDateTime(ts)",
    "dead_letters": "toDateTime(received_at)",
    "trace_link_spans": "toDateTime(fromUnixTimestamp64Micro(ts_us))",
    "dependency_links": "toDateTime(fromUnixTimestamp64Micro(ts_us))",
    "dependency_links_hourly": "hour",
    "span_names": "last_seen",
    "remote_service_names": "last_seen",
    "tag_values": "last_seen",
    "span_minutes": "minute",
    "span_latency": "minute",
}


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Path

    def statements(self, database: str, retention_days: int) -> list[str]:
        text = self.path.read_text()
        text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
        text = text.replace("{db}", database).replace("{retention_days}", str(retention_days))
        return [statement.strip() for statement in text.split(";") if statement.strip()]


def available() -> list[Migration]:
    migrations = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", path.name)
        if match:
            migrations.append(Migration(int(match[1]), match[2], path))
    return migrations


def apply(client: Client, database: str, retention_days: int) -> list[int]:
    """Apply pending migrations; returns the versions applied now."""
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {database}.schema_migrations "
        "(version UInt32, name String, applied_at DateTime DEFAULT now()) "
        "ENGINE = ReplacingMergeTree ORDER BY version"
    )
    done = {row[0] for row in client.query(f"SELECT version FROM {database}.schema_migrations").result_rows}
    applied = []
    for migration in available():
        if migration.version in done:
            continue
        for statement in migration.statements(database, retention_days):
            try:
                client.command(statement)
            except Exception as exc:
                raise MigrationError(f"{migration.path.name}: {exc}\n{statement[:200]}") from exc
        client.insert(f"{database}.schema_migrations", [[migration.version, migration.name]], column_names=["version", "name"])
        logger.info("applied migration %04d_%s", migration.version, migration.name)
        applied.append(migration.version)
    _apply_retention(client, database, retention_days)
    return applied


def _apply_retention(client: Client, database: str, retention_days: int) -> None:
    existing = {row[0] for row in client.query(
        "SELECT name FROM system.tables WHERE database = {db:String}", parameters={"db": database}).result_rows}
    for table, expression in _TTL_COLUMNS.items():
        if table in existing:
            client.command(
                f"ALTER TABLE {database}.{table} MODIFY TTL {expression} + INTERVAL {int(retention_days)} DAY",
                settings={"materialize_ttl_after_modify": 0},
            )


def run(argv: list[str]) -> int:
    from meshscope.settings import WriterSettings, load
    from storage.client import connect

    parser = argparse.ArgumentParser(prog="meshscope migrate", description="Apply the storage schema migrations and exit.")
    parser.add_argument("--clickhouse-url", help="overrides MESHSCOPE_CLICKHOUSE_URL")
    args = parser.parse_args(argv)
    settings = load(WriterSettings, clickhouse_url=args.clickhouse_url)
    applied = apply(connect(settings.clickhouse_url), settings.clickhouse_database, settings.retention_days)
    print(f"schema up to date ({len(applied)} migration(s) applied now)")
    return 0
