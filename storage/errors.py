"""Storage errors: one root, library exceptions translated at the boundary."""

from __future__ import annotations


class StorageError(RuntimeError):
    """ClickHouse could not be reached or refused a statement."""


class MigrationError(StorageError):
    """A schema migration failed; the message names the file and the statement."""
