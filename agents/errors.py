"""The agent's errors: one root, translated from library exceptions at the boundary."""

from __future__ import annotations


class AgentError(RuntimeError):
    """Root of the agent's own errors."""


class ConfigError(AgentError, ValueError):
    """A command-line flag or YAML value that cannot work; the message is one line."""


class SpoolError(AgentError):
    """The on-disk spool cannot be opened (directory unwritable or held by another agent)."""
