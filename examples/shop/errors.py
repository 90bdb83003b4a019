"""The shop's errors: one root, translated to HTTP responses at the service boundary."""

from __future__ import annotations


class ShopError(Exception):
    """Root of the shop's errors."""


class DependencyError(ShopError):
    """A dependency answered 5xx or could not be reached: the caller answers 502."""

    def __init__(self, dependency: str, detail: str) -> None:
        super().__init__(f"{dependency}: {detail}")
        self.dependency = dependency
        self.detail = detail


class DatabaseError(ShopError):
    """MariaDB refused a statement or went away: the caller answers 503."""
