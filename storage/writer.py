"""Batch inserts of the wire model's objects (column-oriented, one INSERT per table per batch)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from clickhouse_connect.driver.client import Client

from meshscope.wire import LatencyRecord, ResourceSample
from storage.errors import StorageError

SPAN_COLUMNS = (
    "trace_id", "id", "parent_id", "kind", "name", "ts_us", "timestamp_us", "duration_us",
    "local_service", "local_ipv4", "local_ipv6", "local_port",
    "remote_service", "remote_ipv4", "remote_ipv6", "remote_port",
    "annotation_ts", "annotation_values", "tags", "debug", "shared",
)
LATENCY_COLUMNS = (
    "interval_start", "interval_s", "service", "instance", "version", "kind", "remote_service", "endpoint",
    "method", "status_class", "database", "count", "errors", "sum", "min", "max", "scale", "zero_count",
    "buckets", "rows", "request_bytes", "response_bytes",
)
RESOURCE_COLUMNS = ("ts", "service", "instance", "version", "metric", "value")
DEAD_LETTER_COLUMNS = ("received_at", "topic", "partition", "offset", "error", "payload")


def span_columns(spans: Sequence[dict], received_us: int | Sequence[int] | None = None) -> list[list]:
    """Zipkin v2 spans as column lists in SPAN_COLUMNS order.

    ``received_us`` (one time, or one per span) stands in for the time of spans that have no
    timestamp; pass a time that is the same on every delivery of a span (its Kafka message's
    timestamp) so that a re-delivered copy sorts identically and the ReplacingMergeTree collapses it.
    """
    if received_us is None:
        received_us = time.time_ns() // 1000
    received = [received_us] * len(spans) if isinstance(received_us, int) else received_us
    columns: list[list] = [[] for _ in SPAN_COLUMNS]
    (trace_id, span_id, parent_id, kind, name, ts_us, timestamp_us, duration_us, local_service, local_ipv4,
     local_ipv6, local_port, remote_service, remote_ipv4, remote_ipv6, remote_port, annotation_ts,
     annotation_values, tags, debug, shared) = columns
    for span, span_received_us in zip(spans, received):
        local = span.get("localEndpoint") or {}
        remote = span.get("remoteEndpoint") or {}
        annotations = span.get("annotations") or ()
        timestamp = span.get("timestamp") or 0
        trace_id.append(span["traceId"])
        span_id.append(span["id"])
        parent_id.append(span.get("parentId") or "")
        kind.append(span.get("kind") or "")
        name.append(span.get("name") or "")
        ts_us.append(timestamp or span_received_us)
        timestamp_us.append(timestamp)
        duration_us.append(span.get("duration") or 0)
        local_service.append(local.get("serviceName") or "")
        local_ipv4.append(local.get("ipv4") or "")
        local_ipv6.append(local.get("ipv6") or "")
        local_port.append(local.get("port") or 0)
        remote_service.append(remote.get("serviceName") or "")
        remote_ipv4.append(remote.get("ipv4") or "")
        remote_ipv6.append(remote.get("ipv6") or "")
        remote_port.append(remote.get("port") or 0)
        annotation_ts.append([a["timestamp"] for a in annotations])
        annotation_values.append([a["value"] for a in annotations])
        tags.append(span.get("tags") or {})
        debug.append(bool(span.get("debug")))
        shared.append(bool(span.get("shared")))
    return columns


def row_to_span(row: dict) -> dict:
    """A spans-table row (as a dict of SPAN_COLUMNS) back to a Zipkin v2 span, empty fields omitted."""
    span: dict = {"traceId": row["trace_id"]}
    if row["parent_id"]:
        span["parentId"] = row["parent_id"]
    span["id"] = row["id"]
    if row["kind"]:
        span["kind"] = row["kind"]
    if row["name"]:
        span["name"] = row["name"]
    if row["timestamp_us"]:
        span["timestamp"] = row["timestamp_us"]
    if row["duration_us"]:
        span["duration"] = row["duration_us"]
    for prefix, key in (("local", "localEndpoint"), ("remote", "remoteEndpoint")):
        endpoint = {}
        for field, column in (("serviceName", "service"), ("ipv4", "ipv4"), ("ipv6", "ipv6"), ("port", "port")):
            value = row[f"{prefix}_{column}"]
            if value:
                endpoint[field] = value
        if endpoint:
            span[key] = endpoint
    if row["annotation_ts"]:
        span["annotations"] = [{"timestamp": ts, "value": value} for ts, value in zip(row["annotation_ts"], row["annotation_values"])]
    if row["tags"]:
        span["tags"] = dict(row["tags"])
    if row["debug"]:
        span["debug"] = True
    if row["shared"]:
        span["shared"] = True
    return span


def _insert(client: Client, table: str, columns: list[list], names: Sequence[str]) -> None:
    if not columns or not columns[0]:
        return
    try:
        client.insert(table, columns, column_names=list(names), column_oriented=True)
    except Exception as exc:
        raise StorageError(f"insert into {table} failed: {exc}") from exc


def insert_spans(client: Client, database: str, spans: Sequence[dict], received_us: int | Sequence[int] | None = None) -> None:
    _insert(client, f"{database}.spans", span_columns(spans, received_us), SPAN_COLUMNS)


def insert_latency(client: Client, database: str, records: Sequence[LatencyRecord]) -> None:
    rows = []
    for r in records:
        s = r.sketch
        rows.append((
            r.interval_start, r.interval_s, r.service, r.instance, r.version, r.kind, r.remote_service, r.endpoint,
            r.method, r.status_class, r.database, s.count, r.errors, s.sum, s.min if s.count else 0.0, s.max,
            s.scale, s.zero_count, s.buckets, r.rows, r.request_bytes, r.response_bytes,
        ))
    _insert(client, f"{database}.latency", [list(column) for column in zip(*rows)], LATENCY_COLUMNS)


def insert_resources(client: Client, database: str, samples: Sequence[ResourceSample]) -> None:
    from datetime import UTC, datetime

    rows = [(datetime.fromtimestamp(s.timestamp_ms / 1000, UTC), s.service, s.instance, s.version, s.metric, s.value) for s in samples]
    _insert(client, f"{database}.resource_samples", [list(column) for column in zip(*rows)], RESOURCE_COLUMNS)


def insert_dead_letters(client: Client, database: str, letters: Sequence[tuple]) -> None:
    """``letters``: (topic, partition, offset, error, payload bytes) per parked message."""
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    rows = [(now, topic, partition, offset, error[:2000], payload.hex()) for topic, partition, offset, error, payload in letters]
    _insert(client, f"{database}.dead_letters", [list(column) for column in zip(*rows)], DEAD_LETTER_COLUMNS)
