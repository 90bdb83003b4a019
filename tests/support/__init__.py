"""Test support: platform services started by the tests themselves (broker, MariaDB, the
ClickHouse HTTP test double) and small helpers shared by several test packages."""
