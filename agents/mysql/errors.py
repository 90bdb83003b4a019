"""Errors of the MySQL decoder. They never leave the package: the decoder turns them into a
resynchronising state, and MySQL ERR packets seen in traffic are data, not exceptions."""

from __future__ import annotations


class MySQLDecodeError(Exception):
    """Bytes the decoder cannot follow (truncated, malformed or unexpected packet)."""
