"""Read queries over the metrics tables: aggregation happens in ClickHouse, Python gets one row
per (step, group), never raw rows.

- ``latency``: merged distributions per group with ``sumMap(buckets)``; always ``FINAL`` (the
  ReplacingMergeTree collapses at-least-once duplicates only at merge time). Rows of different
  sketch scales come back apart (``scale`` is in the GROUP BY) so the caller can merge them exactly.
- ``spans``: exact quantiles in SQL over de-duplicated spans (``LIMIT 1 BY fingerprint``), for
  services that report spans but run no agent.
- ``span_latency``: the same spans as per-minute sketches for the all-services summary, kept up to
  date by the reader (``span_server_distributions``; migration 0006 says why not at insert time).
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


def _span_window(start: str = "start", end: str = "end") -> str:
    """Spans in ``[{start}, {end})`` (Int64 µs parameters): ``ts``, a sorting-key column, lets the
    primary index skip granules; ``ts_us`` is the exact bound."""
    return (f"ts >= fromUnixTimestamp64Micro({{{start}:Int64}}) AND ts < fromUnixTimestamp64Micro({{{end}:Int64}})"
            f" AND ts_us >= {{{start}:Int64}} AND ts_us < {{{end}:Int64}}")


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
    where = [_span_window(), "kind = {kind:String}", "duration_us > 0"]
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
              WHERE {_span_window()} AND kind = 'CLIENT'
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
          AND {_span_window()} AND duration_us > 0
        LIMIT 1 BY fingerprint LIMIT {int(limit)}
    """
    return _query_df(client, sql, {"service": service, "kind": kind, "start": int(start_s) * 1_000_000, "end": int(end_s) * 1_000_000})


def span_services(client: Client, database: str, start_s: int, end_s: int) -> list[str]:
    sql = f"""SELECT DISTINCT local_service FROM {database}.spans
              WHERE {_span_window()} AND local_service != '' ORDER BY 1"""
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
    # one query (each costs a round trip): the window's figures, joined with the latest values
    sql = f"""
        SELECT usage.service AS service, usage.metric AS metric, qs, max, mean, samples, instances, span_s,
               latest.latest_sum AS latest_sum, latest.latest_max AS latest_max, latest.instances_latest AS instances_latest
        FROM (SELECT service, metric,
                     quantilesExactLow(0.5, 0.9, 0.95)(value) AS qs, max(value) AS max, avg(value) AS mean,
                     count() AS samples, uniqExact(instance) AS instances,
                     (max(ts) - min(ts)) AS span_s
              FROM {database}.resource_samples FINAL WHERE {' AND '.join(where)}
              GROUP BY service, metric) AS usage
        LEFT JOIN (SELECT service, metric, sum(last) AS latest_sum, max(last) AS latest_max, count() AS instances_latest
                   FROM (SELECT service, metric, instance, argMax(value, ts) AS last, max(ts) AS seen
                         FROM {database}.resource_samples FINAL WHERE {' AND '.join(where)}
                         GROUP BY service, metric, instance)
                   WHERE seen >= toDateTime64({{end:Int64}} - 120, 3)
                   GROUP BY service, metric) AS latest
               ON usage.service = latest.service AND usage.metric = latest.metric
        ORDER BY service, metric
        SETTINGS join_use_nulls = 1
    """
    columns = ["service", "metric", "qs", "max", "mean", "samples", "instances", "span_s",
               "latest_sum", "latest_max", "instances_latest"]
    frame = _split_quantiles(_query_df(client, sql, parameters), columns, ("p50", "p90", "p95"), 1.0)
    for column in ("latest_sum", "latest_max", "instances_latest"):  # NaN, not <NA>, when nothing is recent
        frame[column] = pd.to_numeric(frame[column]).astype("float64")
    return frame


# --------------------------------------------------------------------- span sketches per minute

ROLLUP_S = 60
SKETCH_SCALE = 6  # meshscope.sketch.DEFAULT_SCALE: the agents' scale, so both kinds merge without loss
# bucket of a duration in ms at SKETCH_SCALE: ceil(log2(v) * 2^scale) - 1, as meshscope.sketch.bucket_index
_BUCKET = f"toInt32(ceil(log2(duration_us / 1000) * {1 << SKETCH_SCALE})) - 1"
_SKETCH_COLUMNS = ["service", "scale", "count", "errors", "sum", "min", "max", "zero_count", "buckets", "rows"]


def _span_sketches(client: Client, database: str, ranges: Sequence[tuple[int, int]], *, by_minute: bool = False,
                   services: Sequence[str] | None = None, minutes: Sequence[int] | None = None) -> pd.DataFrame:
    """Sketches of de-duplicated SERVER spans (duration > 0) in the ``[start_s, end_s)`` ``ranges``,
    per service (and per ``minute``, unix s, when ``by_minute``): columns as ``latency_distributions``
    grouped by service. ``services``/``minutes`` narrow the scan."""
    parameters: dict = {}
    spans = []
    for i, (start_s, end_s) in enumerate(ranges):
        parameters[f"s{i}"], parameters[f"e{i}"] = int(start_s) * 1_000_000, int(end_s) * 1_000_000
        spans.append(f"({_span_window(f's{i}', f'e{i}')})")
    if not spans:
        return pd.DataFrame(columns=_SKETCH_COLUMNS + (["minute"] if by_minute else []))
    where = [f"({' OR '.join(spans)})", "kind = 'SERVER'", "duration_us > 0"]
    if services is not None:
        parameters["services"] = list(services)
        where.append("local_service IN {services:Array(String)}")
    if minutes is not None:
        parameters["minutes"] = [int(m) // ROLLUP_S for m in minutes]
        where.append(f"intDiv(ts_us, {ROLLUP_S * 1_000_000}) IN {{minutes:Array(Int64)}}")
    minute = ", minute" if by_minute else ""
    sql = f"""
        SELECT service{minute}, toInt8({SKETCH_SCALE}) AS scale, sum(n) AS count, sum(e) AS errors, sum(s) AS sum,
               min(lo) AS min, max(hi) AS max, toUInt64(0) AS zero_count,
               CAST(mapFromArrays(groupArray(bucket), groupArray(n)), 'Map(Int32, UInt64)') AS buckets, toUInt64(0) AS rows
        FROM (SELECT local_service AS service{', intDiv(ts_us, 1000000 * ' + str(ROLLUP_S) + ') * ' + str(ROLLUP_S) + ' AS minute' if by_minute else ''},
                     {_BUCKET} AS bucket, count() AS n, countIf(error) AS e, sum(duration_us) / 1000 AS s,
                     min(duration_us) / 1000 AS lo, max(duration_us) / 1000 AS hi
              FROM (SELECT local_service, ts_us, duration_us, error FROM {database}.spans
                    WHERE {' AND '.join(where)} LIMIT 1 BY fingerprint)
              GROUP BY service{minute}, bucket)
        GROUP BY service{minute}
        ORDER BY service{minute}
    """
    return _query_df(client, sql, parameters)


def refresh_span_latency(client: Client, database: str, start_s: int, end_s: int, service: str | None = None) -> int:
    """Compute again the per-minute sketches (``span_latency``) of the minutes in ``[start_s,
    end_s)`` (whole minutes) whose SERVER spans changed since they were computed (of every service,
    or of ``service``); returns how many.

    Order matters: the rows of a minute are counted (``source_rows``) *before* its sketch is
    computed, so a sketch never claims rows it did not see; rows it saw beyond the count make it
    stale again, which is only a recomputation."""
    parameters: dict = {"start": int(start_s), "end": int(end_s)}
    where = "minute >= toDateTime({start:Int64}) AND minute < toDateTime({end:Int64})"
    if service is not None:
        parameters["service"] = service
        where += " AND service = {service:String}"
    try:
        stale = client.query(f"""
            SELECT m.service, toUnixTimestamp(m.minute)
            FROM (SELECT service, minute, sum(rows) AS inserted FROM {database}.span_minutes WHERE {where}
                  GROUP BY service, minute) AS m
            LEFT JOIN (SELECT service, minute, source_rows FROM {database}.span_latency FINAL WHERE {where}) AS r
                   ON m.service = r.service AND m.minute = r.minute
            WHERE r.source_rows != m.inserted
        """, parameters=parameters).result_rows
    except Exception as exc:
        raise StorageError(f"metrics query failed: {exc}") from exc
    if not stale:
        return 0
    keys = {(service, int(minute)) for service, minute in stale}
    services = sorted({s for s, _ in keys})
    minutes = sorted({m for _, m in keys})
    lo, hi = minutes[0], minutes[-1] + ROLLUP_S
    try:
        counted = client.query(f"""
            SELECT local_service, intDiv(ts_us, {ROLLUP_S * 1_000_000}) * {ROLLUP_S} AS minute, count()
            FROM {database}.spans
            WHERE {_span_window('lo', 'hi')} AND kind = 'SERVER'
              AND local_service IN {{services:Array(String)}} AND intDiv(ts_us, {ROLLUP_S * 1_000_000}) IN {{minutes:Array(Int64)}}
            GROUP BY local_service, minute
        """, parameters={"lo": lo * 1_000_000, "hi": hi * 1_000_000, "services": services,
                         "minutes": [m // ROLLUP_S for m in minutes]}).result_rows
    except Exception as exc:
        raise StorageError(f"metrics query failed: {exc}") from exc
    source_rows = {(service, int(minute)): int(n) for service, minute, n in counted}
    sketches = _span_sketches(client, database, [(lo, hi)], by_minute=True, services=services, minutes=minutes)
    computed = {(row["service"], int(row["minute"])): row for row in sketches.to_dict("records")}
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    rows = []
    for key in sorted(keys):
        row = computed.get(key)
        if row is None:  # no span with a duration (or none left): an empty sketch, still a fresh answer
            row = {"count": 0, "errors": 0, "sum": 0.0, "min": 0.0, "max": 0.0, "zero_count": 0, "buckets": {}}
        rows.append([key[0], datetime.fromtimestamp(key[1], UTC), source_rows.get(key, 0), now, int(row["count"]),
                     int(row["errors"]), float(row["sum"]), float(row["min"]), float(row["max"]), SKETCH_SCALE,
                     int(row["zero_count"]), {int(k): int(v) for k, v in dict(row["buckets"]).items()}])
    try:
        client.insert(f"{database}.span_latency", rows, column_names=[
            "service", "minute", "source_rows", "computed_at", "count", "errors", "sum", "min", "max", "scale",
            "zero_count", "buckets"])
    except Exception as exc:
        raise StorageError(f"insert into {database}.span_latency failed: {exc}") from exc
    return len(rows)


def span_server_distributions(client: Client, database: str, start_s: int, end_s: int,
                              service: str | None = None) -> pd.DataFrame:
    """Per service (or for ``service``), the merged latency distribution of its de-duplicated SERVER
    spans in ``[start_s, end_s)``, with the columns of ``latency_distributions(group_by=["service"])``:
    whole minutes from ``span_latency`` (refreshed first where stale), the partial minutes at the
    window's edges from the spans themselves. Quantiles carry the sketch's error (< 1%), as the
    agents' do; counts, errors, sum, min and max are exact."""
    first = -(-int(start_s) // ROLLUP_S) * ROLLUP_S
    last = int(end_s) // ROLLUP_S * ROLLUP_S
    services = None if service is None else [service]
    if first >= last:
        return _span_sketches(client, database, [(start_s, end_s)], services=services)
    refresh_span_latency(client, database, first, last, service)
    parameters: dict = {"first": first, "last": last}
    if service is not None:
        parameters["service"] = service
    sql = f"""
        SELECT service, scale, sum(count) AS count, sum(errors) AS errors, sum(sum) AS sum,
               minIf(min, count > 0) AS min, max(max) AS max, sum(zero_count) AS zero_count,
               sumMap(buckets) AS buckets, toUInt64(0) AS rows
        FROM {database}.span_latency FINAL
        WHERE minute >= toDateTime({{first:Int64}}) AND minute < toDateTime({{last:Int64}}) AND count > 0
              {'AND service = {service:String}' if service is not None else ''}
        GROUP BY service, scale ORDER BY service, scale
    """
    whole = _query_df(client, sql, parameters)
    edges = [(a, b) for a, b in ((start_s, first), (last, end_s)) if a < b]
    parts = [f for f in (whole, _span_sketches(client, database, edges, services=services)) if not f.empty]
    return pd.concat(parts, ignore_index=True) if parts else whole


def span_server_services(client: Client, database: str, start_s: int, end_s: int) -> list[str]:
    """Services with SERVER spans in the minutes that ``[start_s, end_s)`` touches (from the
    per-minute counts: no span is read)."""
    sql = f"""SELECT DISTINCT service FROM {database}.span_minutes
              WHERE minute >= toDateTime({{start:Int64}}) AND minute < toDateTime({{end:Int64}}) ORDER BY service"""
    try:
        rows = client.query(sql, parameters={"start": int(start_s) // ROLLUP_S * ROLLUP_S, "end": int(end_s)}).result_rows
    except Exception as exc:
        raise StorageError(f"metrics query failed: {exc}") from exc
    return [row[0] for row in rows]
