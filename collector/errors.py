"""Collector errors: one root; each carries what an HTTP client should be told."""

from __future__ import annotations


class CollectorError(RuntimeError):
    """Root of the collector's errors."""


class DecodeError(CollectorError, ValueError):
    """A request body that cannot be read at all (malformed JSON, protobuf or Thrift)."""


class SpanError(CollectorError, ValueError):
    """One span that breaks Zipkin's rules (ids, kind, endpoint); the rest of its batch goes on."""


class SpoolFullError(CollectorError):
    """The local spool is full while Kafka is away: the client should retry later (503)."""
