"""Read queries over the metrics tables: aggregation happens in ClickHouse, Python gets one row
per (step, group), never raw rows.

- ``latency``: merged distributions per group with ``sumMap(buckets)``; always ``FINAL`` (the
  ReplacingMergeTree collapses at-least-once duplicates only at merge time). Rows of different
  sketch scales come back apart (``scale`` is in the GROUP BY) so the caller can merge them exactly.
- ``spans``: exact quantiles in SQL over de-duplicated spans (``LIMIT 1 BY fingerprint``), for
  services that report spans but run no agent.
- ``resource_samples``: per-instance averages per step, and usage percentiles for sizing.

Group and filter columns are whitelisted: only the names below ever reach SQL text; values always
travel as query parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
from clickhouse_connect.driver.client import Client

from storage.errors import StorageError

LATENCY_GROUPS = ("service", "instance", "version", "kind", "remote_service", "endpoint", "method", "database", "status_class")
# spans-table column behind each group name (spans have no agent instance or status class)
SPAN_GROUPS = {
    "service": "local_service",
    "remote_service": "remote_service",
    "endpoint": "name",
    "kind": "kind",
    "version": "tags['version']",
}
SERVER_KINDS = ("http.server", "sql.server")
CLIENT_KINDS = ("http.client", "sql.client")


def _checked(columns: Sequence[str], allowed: Sequence[str] | Mapping[str, str]) -> list[str]:
    unknown = [c for c in columns if c not in allowed]
    if unknown:
        raise StorageError(f"unknown group/filter column(s) {unknown}; allowed: {sorted(allowed)}")
    return list(columns)


def _query_df(client: Client, sql: str, parameters: dict) -> pd.DataFrame:
    try:
        # the output columns are named like the table's (count, sum, min...): aggregate the columns
        return client.query_df(sql, parameters=parameters, settings={"prefer_column_name_to_alias": 1})
    except Exception as exc:
        raise StorageError(f"metrics query failed: {exc}") from exc


def _split_quantiles(frame: pd.DataFrame, columns: list[str], names: Sequence[str], divisor: float) -> pd.DataFrame:
    """The array column ``qs`` as one float column per name (an empty result keeps its columns)."""
    if frame.empty:
        return pd.DataFrame(columns=[c for c in columns if c != "qs"] + list(names))
    for i, name in enumerate(names):
        frame[name] = [float(q[i]) / divisor for q in frame["qs"]]
    return frame.drop(columns=["qs"])


def _where(filters: Mapping[str, object], column_of: Mapping[str, str], parameters: dict) -> list[str]:
    clauses = []
    for i, (name, value) in enumerate(filters.items()):
        if value is None:
            continue
        column = column_of[name]
        if isinstance(value, (list, tuple, set, frozenset)):
            parameters[f"f{i}"] = list(value)
            clauses.append(f"{column} IN {{f{i}:Array(String)}}")
        else:
            parameters[f"f{i}"] = str(value)
            clauses.append(f"{column} = {{f{i}:String}}")
    return clauses


def latency_distributions(
    client: Client,
    database: str,
    start_s: int,
    end_s: int,
    *,
    group_by: Sequence[str] = (),
    step_s: int | None = None,
    filters: Mapping[str, object] | None = None,
) -> pd.DataFrame:
    """Merged latency distributions over ``[start_s, end_s)``: columns ``ts`` (step start, unix s,
    when ``step_s``), the ``group_by`` columns, ``scale``, ``count``, ``errors``, ``sum``, ``min``,
    ``max``, ``zero_count``, ``buckets`` (dict index -> count), ``rows``.

    ``filters``: column -> value or list of values (columns from LATENCY_GROUPS)."""
    groups = _checked(group_by, LATENCY_GROUPS)
    filters = dict(filters or {})
    _checked(list(filters), LATENCY_GROUPS)
    parameters: dict = {"start": int(start_s), "end": int(end_s)}
    where = ["interval_start >= toDateTime({start:Int64})", "interval_start < toDateTime({end:Int64})"]
    where += _where(filters, {c: c for c in LATENCY_GROUPS}, parameters)
    keys = list(groups)
    select = list(groups)
    if step_s:
        parameters["step"] = int(step_s)
        select.insert(0, "toUnixTimestamp(toStartOfInterval(interval_start, toIntervalSecond({step:UInt32}))) AS ts")
        keys.insert(0, "ts")
    keys.append("scale")
    sql = f"""
        SELECT {', '.join(select + ['scale'])},
               sum(count) AS count, sum(errors) AS errors, sum(sum) AS sum,
               minIf(min, count > 0) AS min, max(max) AS max,
               sum(zero_count) AS zero_count, sumMap(buckets) AS buckets, sum(rows) AS rows
        FROM {database}.latency FINAL
        WHERE {' AND '.join(where)}
        GROUP BY {', '.join(keys)}
        ORDER BY {', '.join(keys)}
    """
    return _query_df(client, sql, parameters)


def span_red(
    client: Client,
    database: str,
    start_s: int,
    end_s: int,
    *,
    apdex_t_ms: float,
    group_by: Sequence[str] = ("service",),
    step_s: int | None = None,
    kind: str = "SERVER",
    filters: Mapping[str, object] | None = None,
) -> pd.DataFrame:
    """RED from Zipkin spans of ``kind`` (exact quantiles in SQL over de-duplicated spans):
    columns ``ts`` (when ``step_s``), the groups, ``count``, ``errors``, ``sum``, ``min``, ``max``,
    ``p50``, ``p90``, ``p95``, ``p99`` (ms), ``satisfied``, ``tolerated`` (Apdex counts)."""
    groups = _checked(group_by, SPAN_GROUPS)
    filters = dict(filters or {})
    _checked(list(filters), SPAN_GROUPS)
    parameters: dict = {"start": int(start_s) * 1_000_000, "end": int(end_s) * 1_000_000, "kind": kind,
                        "t_us": float(apdex_t_ms) * 1000.0}
    where = ["ts_us >= {start:Int64}", "ts_us < {end:Int64}", "kind = {kind:String}", "duration_us > 0"]
    where += _where(filters, SPAN_GROUPS, parameters)
    select = [f"{SPAN_GROUPS[g]} AS {g}" for g in groups]
    keys = list(groups)
    if step_s:
        parameters["step"] = int(step_s)
        select.insert(0, "intDiv(ts_us, 1000000 * {step:Int64}) * {step:Int64} AS ts")
        keys.insert(0, "ts")
    inner_columns = "ts_us, duration_us, error, local_service, remote_service, name, kind, tags"
    sql = f"""
        SELECT {', '.join(select)}{', ' if select else ''}
               count() AS count, countIf(error) AS errors, sum(duration_us) / 1000 AS sum,
               min(duration_us) / 1000 AS min, max(duration_us) / 1000 AS max,
               quantilesExactLow(0.5, 0.9, 0.95, 0.99)(duration_us) AS qs,
               countIf(duration_us <= {{t_us:Float64}}) AS satisfied,
               countIf(duration_us > {{t_us:Float64}} AND duration_us <= 4 * {{t_us:Float64}}) AS tolerated
        FROM (SELECT {inner_columns} FROM {database}.spans WHERE {' AND '.join(where)} LIMIT 1 BY fingerprint)
        {'GROUP BY ' + ', '.join(keys) if keys else ''}
        {'ORDER BY ' + ', '.join(keys) if keys else ''}
    """
    columns = [*keys, "count", "errors", "sum", "min", "max", "qs", "satisfied", "tolerated"]
    return _split_quantiles(_query_df(client, sql, parameters), columns, ("p50", "p90", "p95", "p99"), 1000.0)


def span_edges(client: Client, database: str, start_s: int, end_s: int) -> pd.DataFrame:
    """Dependency edges from CLIENT spans that name their remote service: ``source``, ``target``,
    ``count``, ``errors``, ``p50``, ``p99`` (ms)."""
    sql = f"""
        SELECT local_service AS source, remote_service AS target, count() AS count, countIf(error) AS errors,
               quantilesExactLow(0.5, 0.99)(duration_us) AS qs
        FROM (SELECT local_service, remote_service, error, duration_us FROM {database}.spans
              WHERE ts_us >= {{start:Int64}} AND ts_us < {{end:Int64}} AND kind = 'CLIENT'
                AND remote_service != '' AND local_service != '' LIMIT 1 BY fingerprint)
        GROUP BY source, target ORDER BY source, target
    """
    frame = _query_df(client, sql, {"start": int(start_s) * 1_000_000, "end": int(end_s) * 1_000_000})
    return _split_quantiles(frame, ["source", "target", "count", "errors", "qs"], ("p50", "p99"), 1000.0)


def span_durations_ms(client: Client, database: str, start_s: int, end_s: int, service: str, kind: str = "SERVER",
                      limit: int = 200_000) -> pd.DataFrame:
    """``version``, ``duration_ms``, ``error`` of a service's spans (bounded sample, for tests that
    need raw values; analysis itself works on aggregates)."""
    sql = f"""
        SELECT tags['version'] AS version, duration_us / 1000 AS duration_ms, error
        FROM {database}.spans WHERE local_service = {{service:String}} AND kind = {{kind:String}}
          AND ts_us >= {{start:Int64}} AND ts_us < {{end:Int64}} AND duration_us > 0
        LIMIT 1 BY fingerprint LIMIT {int(limit)}
    """
    return _query_df(client, sql, {"service": service, "kind": kind, "start": int(start_s) * 1_000_000, "end": int(end_s) * 1_000_000})


def span_services(client: Client, database: str, start_s: int, end_s: int) -> list[str]:
    sql = f"""SELECT DISTINCT local_service FROM {database}.spans
              WHERE ts_us >= {{start:Int64}} AND ts_us < {{end:Int64}} AND local_service != '' ORDER BY 1"""
    try:
        rows = client.query(sql, parameters={"start": int(start_s) * 1_000_000, "end": int(end_s) * 1_000_000}).result_rows
    except Exception as exc:
        raise StorageError(f"metrics query failed: {exc}") from exc
    return [row[0] for row in rows]


def resource_series(client: Client, database: str, start_s: int, end_s: int, step_s: int,
                    service: str | None = None) -> pd.DataFrame:
    """Per (step, service, instance, version, metric): ``avg`` and ``max`` of the samples."""
    parameters: dict = {"start": int(start_s), "end": int(end_s), "step": int(step_s)}
    where = ["ts >= toDateTime64({start:Int64}, 3)", "ts < toDateTime64({end:Int64}, 3)"]
    if service is not None:
        parameters["service"] = service
        where.append("service = {service:String}")
    sql = f"""
        SELECT toUnixTimestamp(toStartOfInterval(ts, toIntervalSecond({{step:UInt32}}))) AS ts,
               service, instance, version, metric, avg(value) AS avg, max(value) AS max
        FROM {database}.resource_samples FINAL WHERE {' AND '.join(where)}
        GROUP BY ts, service, instance, version, metric ORDER BY ts, service, instance, metric
    """
    return _query_df(client, sql, parameters)


def resource_usage(client: Client, database: str, start_s: int, end_s: int,
                   service: str | None = None) -> pd.DataFrame:
    """Per (service, metric) over the window: usage percentiles across every sample of every
    instance (``p50``, ``p90``, ``p95``, ``max``), the mean, the number of samples and of instances,
    and per metric the instances' latest values (``latest_sum``, ``latest_max``, ``instances_latest``:
    instances with a sample in the last 2 minutes of the window)."""
    parameters: dict = {"start": int(start_s), "end": int(end_s)}
    where = ["ts >= toDateTime64({start:Int64}, 3)", "ts < toDateTime64({end:Int64}, 3)"]
    if service is not None:
        parameters["service"] = service
        where.append("service = {service:String}")
    sql = f"""
        SELECT service, metric,
               quantilesExactLow(0.5, 0.9, 0.95)(value) AS qs, max(value) AS max, avg(value) AS mean,
               count() AS samples, uniqExact(instance) AS instances,
               (max(ts) - min(ts)) AS span_s
        FROM {database}.resource_samples FINAL WHERE {' AND '.join(where)}
        GROUP BY service, metric ORDER BY service, metric
    """
    columns = ["service", "metric", "qs", "max", "mean", "samples", "instances", "span_s"]
    frame = _split_quantiles(_query_df(client, sql, parameters), columns, ("p50", "p90", "p95"), 1.0)
    latest_sql = f"""
        SELECT service, metric, sum(last) AS latest_sum, max(last) AS latest_max, count() AS instances_latest
        FROM (SELECT service, metric, instance, argMax(value, ts) AS last, max(ts) AS seen
              FROM {database}.resource_samples FINAL WHERE {' AND '.join(where)}
              GROUP BY service, metric, instance)
        WHERE seen >= toDateTime64({{end:Int64}} - 120, 3)
        GROUP BY service, metric
    """
    latest = _query_df(client, latest_sql, parameters)
    if len(frame) and len(latest):
        frame = frame.merge(latest, on=["service", "metric"], how="left")
    return frame
