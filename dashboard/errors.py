"""The dashboard's errors: what can go wrong when asking the API for data.

Pages catch ``DataSourceError`` and show its message in place of the figure or table; nothing
else reaches the browser (no tracebacks).
"""

from __future__ import annotations


class DashboardError(Exception):
    """Root of the dashboard's errors."""


class DataSourceError(DashboardError):
    """The API could not answer: unreachable, an error status (``status``), or an unreadable body."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class DataSourceTimeout(DataSourceError):
    """The API did not answer within the dashboard's query timeout."""
