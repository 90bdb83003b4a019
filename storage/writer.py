"""Batch inserts of the wire model's objects: one INSERT per table per batch (spans as JSON that
ClickHouse maps to columns itself, the others column-oriented)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import orjson

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


def spans_json(spans: Sequence[dict], received_us: int | Sequence[int] | None = None) -> bytes:
    """Zipkin v2 spans as one JSON array for ``{db}.spans_zipkin_input`` (migration 0005).

    ``received_us`` (one time, or one per span) stands in for the time of spans that have no
    timestamp; pass a time that is the same on every delivery of a span (its Kafka message's
    timestamp) so that a re-delivered copy sorts identically and the ReplacingMergeTree collapses it.
    """
    if received_us is None:
        received_us = time.time_ns() // 1000
    if isinstance(received_us, int):
        rows = [span if span.get("timestamp") else {**span, "received_us": received_us} for span in spans]
    else:
        rows = [span if span.get("timestamp") else {**span, "received_us": received}
                for span, received in zip(spans, received_us, strict=True)]
    try:
        return orjson.dumps(rows)
    except TypeError:  # a lone surrogate in a string (not UTF-8 encodable): stored as "?"
        return json.dumps(rows, ensure_ascii=False).encode("utf-8", "replace")


def insert_spans(client: Client, database: str, spans: Sequence[dict], received_us: int | Sequence[int] | None = None) -> None:
    """One INSERT of ``spans`` (see ``spans_json``): ClickHouse parses the JSON and maps it to the
    spans table's columns in the view of migration 0005."""
    if not spans:
        return
    try:
        client.raw_insert(f"{database}.spans_zipkin_input", None, insert_block=spans_json(spans, received_us), fmt="JSONEachRow")
    except Exception as exc:
        raise StorageError(f"insert into {database}.spans failed: {exc}") from exc


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
