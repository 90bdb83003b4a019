-- Zipkin query support (collector/). Placeholders as in 0001.
-- Small tables filled by materialized views as spans are inserted, so that the services,
-- span names, remote services and autocomplete lists never scan the spans table, and a table of
-- dependency links per trace kept up to date by the writer (see collector/links.py).

-- The fields the dependency linker reads, ordered by trace id so a batch's traces are found fast.
CREATE TABLE IF NOT EXISTS {db}.trace_link_spans
(
    trace_id String CODEC(ZSTD(1)),
    id String CODEC(ZSTD(1)),
    parent_id String CODEC(ZSTD(1)),
    kind LowCardinality(String),
    local_service LowCardinality(String),
    remote_service LowCardinality(String),
    error Bool,
    shared Bool,
    ts_us Int64 CODEC(Delta, ZSTD(1))
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(fromUnixTimestamp64Micro(ts_us))
ORDER BY (trace_id, id, kind, local_service, shared, parent_id, remote_service, error)
TTL toDateTime(fromUnixTimestamp64Micro(ts_us)) + INTERVAL {retention_days} DAY
SETTINGS ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.trace_link_spans_mv TO {db}.trace_link_spans AS
SELECT trace_id, id, parent_id, kind, local_service, remote_service, mapContains(tags, 'error') AS error, shared, ts_us
FROM {db}.spans;

-- One row per trace: its links, recomputed (a newer version replaces the older) whenever a
-- batch brings spans of that trace.
CREATE TABLE IF NOT EXISTS {db}.dependency_links
(
    trace_id String CODEC(ZSTD(1)),
    ts_us Int64 CODEC(Delta, ZSTD(1)),
    version UInt64,
    parents Array(LowCardinality(String)),
    children Array(LowCardinality(String)),
    calls Array(UInt32),
    errors Array(UInt32)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY trace_id
TTL toDateTime(fromUnixTimestamp64Micro(ts_us)) + INTERVAL {retention_days} DAY;

CREATE TABLE IF NOT EXISTS {db}.span_names
(
    service LowCardinality(String),
    name LowCardinality(String),
    last_seen DateTime
)
ENGINE = ReplacingMergeTree(last_seen)
ORDER BY (service, name)
TTL last_seen + INTERVAL {retention_days} DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.span_names_mv TO {db}.span_names AS
SELECT local_service AS service, name, toDateTime(max(ts_us) DIV 1000000) AS last_seen
FROM {db}.spans WHERE local_service != ''
GROUP BY service, name;

CREATE TABLE IF NOT EXISTS {db}.remote_service_names
(
    service LowCardinality(String),
    remote_service LowCardinality(String),
    last_seen DateTime
)
ENGINE = ReplacingMergeTree(last_seen)
ORDER BY (service, remote_service)
TTL last_seen + INTERVAL {retention_days} DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.remote_service_names_mv TO {db}.remote_service_names AS
SELECT local_service AS service, remote_service, toDateTime(max(ts_us) DIV 1000000) AS last_seen
FROM {db}.spans WHERE local_service != '' AND remote_service != ''
GROUP BY service, remote_service;

-- Tag values for autocompleteValues (short values only: long ones are not search terms).
CREATE TABLE IF NOT EXISTS {db}.tag_values
(
    key LowCardinality(String),
    value String,
    last_seen DateTime
)
ENGINE = ReplacingMergeTree(last_seen)
ORDER BY (key, value)
TTL last_seen + INTERVAL {retention_days} DAY;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.tag_values_mv TO {db}.tag_values AS
SELECT key, value, toDateTime(max(ts_us) DIV 1000000) AS last_seen
FROM {db}.spans ARRAY JOIN mapKeys(tags) AS key, mapValues(tags) AS value
WHERE length(value) <= 64
GROUP BY key, value
