"""The Zipkin v2 read queries (and the dependency-links table the writer maintains).

Spans are read de-duplicated (``LIMIT 1 BY fingerprint``): at-least-once delivery may have
inserted a span report more than once, and ReplacingMergeTree merges are not immediate.
Times in arguments are epoch microseconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from clickhouse_connect.driver.client import Client

from storage.errors import StorageError
from storage.writer import SPAN_COLUMNS, row_to_span

_SPAN_SELECT = ", ".join(SPAN_COLUMNS)
LINK_COLUMNS = ("trace_id", "id", "parent_id", "kind", "local_service", "remote_service", "error", "shared", "ts_us")


@dataclass(slots=True)
class TraceQuery:
    """Zipkin's QueryRequest: every given criterion must hold for one span of the trace."""

    start_us: int
    end_us: int
    limit: int = 10
    service: str | None = None
    remote_service: str | None = None
    span_name: str | None = None
    min_duration: int | None = None
    max_duration: int | None = None
    # annotationQuery terms: (key, None) = annotation value or tag key; (key, value) = tag equals
    terms: list[tuple[str, str | None]] = field(default_factory=list)


def _query(client: Client, sql: str, parameters: dict | None = None) -> list[tuple]:
    try:
        return client.query(sql, parameters=parameters or {}).result_rows
    except Exception as exc:
        raise StorageError(f"query failed: {exc}") from exc


def services(client: Client, database: str) -> list[str]:
    return [row[0] for row in _query(client, f"SELECT DISTINCT service FROM {database}.span_names ORDER BY service")]


def span_names(client: Client, database: str, service: str) -> list[str]:
    return [row[0] for row in _query(
        client, f"SELECT DISTINCT name FROM {database}.span_names WHERE service = {{s:String}} AND name != '' ORDER BY name",
        {"s": service})]


def remote_services(client: Client, database: str, service: str) -> list[str]:
    return [row[0] for row in _query(
        client, f"SELECT DISTINCT remote_service FROM {database}.remote_service_names WHERE service = {{s:String}} ORDER BY remote_service",
        {"s": service})]


def autocomplete_keys(client: Client, database: str, limit: int = 1000) -> list[str]:
    return [row[0] for row in _query(client, f"SELECT DISTINCT key FROM {database}.tag_values ORDER BY key LIMIT {int(limit)}")]


def autocomplete_values(client: Client, database: str, key: str, limit: int = 1000) -> list[str]:
    return [row[0] for row in _query(
        client, f"SELECT DISTINCT value FROM {database}.tag_values WHERE key = {{k:String}} ORDER BY value LIMIT {int(limit)}",
        {"k": key})]


def traces(client: Client, database: str, trace_ids: Sequence[str]) -> dict[str, list[dict]]:
    """trace id -> its spans (de-duplicated, ordered by timestamp); absent ids are left out."""
    if not trace_ids:
        return {}
    rows = _query(
        client,
        f"SELECT {_SPAN_SELECT} FROM {database}.spans WHERE trace_id IN {{ids:Array(String)}} "
        "ORDER BY trace_id, timestamp_us, id LIMIT 1 BY fingerprint",
        {"ids": list(trace_ids)},
    )
    out: dict[str, list[dict]] = {}
    for row in rows:
        span = row_to_span(dict(zip(SPAN_COLUMNS, row)))
        out.setdefault(span["traceId"], []).append(span)
    return out


def search(client: Client, database: str, query: TraceQuery) -> list[str]:
    """Ids of the matching traces, most recent first."""
    conditions = ["ts BETWEEN fromUnixTimestamp64Micro({start:Int64}) AND fromUnixTimestamp64Micro({end:Int64})"]
    parameters: dict = {"start": query.start_us, "end": query.end_us}
    if query.service:
        conditions.append("local_service = {service:String}")
        parameters["service"] = query.service
    if query.remote_service:
        conditions.append("remote_service = {remote:String}")
        parameters["remote"] = query.remote_service
    if query.span_name:
        conditions.append("name = {name:String}")
        parameters["name"] = query.span_name
    if query.min_duration is not None:
        conditions.append("duration_us >= {min_duration:UInt64}")
        parameters["min_duration"] = query.min_duration
    if query.max_duration is not None:
        conditions.append("duration_us <= {max_duration:UInt64}")
        parameters["max_duration"] = query.max_duration
    for index, (key, value) in enumerate(query.terms):
        parameters[f"k{index}"] = key
        if value is None:
            conditions.append(f"(has(annotation_values, {{k{index}:String}}) OR mapContains(tags, {{k{index}:String}}))")
        else:
            parameters[f"v{index}"] = value
            conditions.append(f"(mapContains(tags, {{k{index}:String}}) AND tags[{{k{index}:String}}] = {{v{index}:String}})")
    sql = (
        f"SELECT trace_id, max(ts_us) AS latest FROM {database}.spans WHERE {' AND '.join(conditions)} "
        f"GROUP BY trace_id ORDER BY latest DESC, trace_id LIMIT {int(query.limit)}"
    )
    return [row[0] for row in _query(client, sql, parameters)]


def dependencies(client: Client, database: str, start_us: int, end_us: int) -> list[dict]:
    rows = _query(
        client,
        f"SELECT parent, child, sum(call_count), sum(error_count) FROM {database}.dependency_links FINAL "
        "ARRAY JOIN parents AS parent, children AS child, calls AS call_count, errors AS error_count "
        "WHERE ts_us BETWEEN {start:Int64} AND {end:Int64} GROUP BY parent, child ORDER BY parent, child",
        {"start": start_us, "end": end_us},
    )
    links = []
    for parent, child, calls, errors in rows:
        link = {"parent": parent, "child": child, "callCount": int(calls)}
        if errors:
            link["errorCount"] = int(errors)
        links.append(link)
    return links


def link_spans(client: Client, database: str, trace_ids: Iterable[str]) -> list[tuple]:
    """The linker's fields (LINK_COLUMNS) of every stored span of ``trace_ids``."""
    ids = list(trace_ids)
    if not ids:
        return []
    return _query(
        client,
        f"SELECT {', '.join(LINK_COLUMNS)} FROM {database}.trace_link_spans WHERE trace_id IN {{ids:Array(String)}}",
        {"ids": ids},
    )


def insert_trace_links(client: Client, database: str, rows: Sequence[tuple[str, int, dict[tuple[str, str], list[int]]]]) -> None:
    """``rows``: (trace id, earliest span timestamp, {(parent, child): [calls, errors]}) per trace;
    each replaces the trace's previous links."""
    if not rows:
        return
    version = time.time_ns()
    columns: list[list] = [[], [], [], [], [], [], []]
    for trace_id, ts_us, links in rows:
        columns[0].append(trace_id)
        columns[1].append(ts_us)
        columns[2].append(version)
        columns[3].append([parent for parent, _ in links])
        columns[4].append([child for _, child in links])
        columns[5].append([counts[0] for counts in links.values()])
        columns[6].append([counts[1] for counts in links.values()])
    try:
        client.insert(
            f"{database}.dependency_links", columns, column_oriented=True,
            column_names=["trace_id", "ts_us", "version", "parents", "children", "calls", "errors"],
        )
    except Exception as exc:
        raise StorageError(f"insert into dependency_links failed: {exc}") from exc
