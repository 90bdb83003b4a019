"""Analysis errors: one root; storage and YAML errors are translated at the boundary."""

from __future__ import annotations


class AnalysisError(RuntimeError):
    """An analysis request or configuration that cannot be served."""


class BadRequest(AnalysisError):
    """A parameter out of range or unknown (the API answers 400 with the message)."""


class RuleError(AnalysisError):
    """An alert rule file that cannot be loaded; the message names the file, the line and the reason."""


class ServicesFileError(AnalysisError):
    """The services YAML (stateful flags, latency objectives) is invalid; the message names file and line."""
