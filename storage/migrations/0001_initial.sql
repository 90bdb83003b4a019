-- Schema v1. Placeholders: {db} database, {retention_days} TTL (re-applied at every start, see
-- storage/migrations/__init__.py, so that a retention change reaches existing tables).

CREATE TABLE IF NOT EXISTS {db}.spans
(
    trace_id String CODEC(ZSTD(1)),
    id String CODEC(ZSTD(1)),
    parent_id String CODEC(ZSTD(1)),
    kind LowCardinality(String),
    name LowCardinality(String),
    -- the span's timestamp, or when meshscope received it for spans that have none (Zipkin v1 parts)
    ts_us Int64 CODEC(Delta, ZSTD(1)),
    timestamp_us UInt64 CODEC(Delta, ZSTD(1)),  -- Zipkin timestamp, 0 = absent
    duration_us UInt64 CODEC(T64, ZSTD(1)),     -- Zipkin duration, 0 = absent
    local_service LowCardinality(String),
    local_ipv4 LowCardinality(String),
    local_ipv6 LowCardinality(String),
    local_port UInt16,
    remote_service LowCardinality(String),
    remote_ipv4 LowCardinality(String),
    remote_ipv6 LowCardinality(String),
    remote_port UInt16,
    annotation_ts Array(UInt64) CODEC(ZSTD(1)),
    annotation_values Array(String) CODEC(ZSTD(1)),
    tags Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    debug Bool,
    shared Bool,
    ts DateTime64(6) MATERIALIZED fromUnixTimestamp64Micro(ts_us),
    error Bool MATERIALIZED mapContains(tags, 'error'),
    -- identifies one span report: at-least-once delivery re-inserts identical rows, which the
    -- ReplacingMergeTree collapses and queries de-duplicate on before merges happen
    fingerprint UInt64 MATERIALIZED cityHash64(trace_id, id, parent_id, kind, name, timestamp_us, duration_us,
        local_service, local_ipv4, local_ipv6, local_port, remote_service, remote_ipv4, remote_ipv6, remote_port,
        annotation_ts, annotation_values, mapKeys(tags), mapValues(tags), debug, shared),
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_name name TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_remote_service remote_service TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_duration duration_us TYPE minmax GRANULARITY 1,
    INDEX idx_tag_keys mapKeys(tags) TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_tag_values mapValues(tags) TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(ts)
ORDER BY (local_service, ts, trace_id, id, fingerprint)
TTL toDateTime(ts) + INTERVAL {retention_days} DAY
SETTINGS ttl_only_drop_parts = 1;

-- One row per (interval, instance, key): the mergeable latency distribution of that traffic.
-- Duplicates from at-least-once delivery share the whole sorting key and collapse; read with FINAL.
CREATE TABLE IF NOT EXISTS {db}.latency
(
    interval_start DateTime CODEC(Delta, ZSTD(1)),
    interval_s UInt32,
    service LowCardinality(String),
    instance LowCardinality(String),
    version LowCardinality(String),
    kind LowCardinality(String),
    remote_service LowCardinality(String),
    endpoint String,
    method LowCardinality(String),
    status_class LowCardinality(String),
    database LowCardinality(String),
    count UInt64,
    errors UInt64,
    sum Float64,
    min Float64,
    max Float64,
    scale Int8,
    zero_count UInt64,
    buckets Map(Int32, UInt64),
    rows UInt64,
    request_bytes UInt64,
    response_bytes UInt64
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(interval_start)
ORDER BY (service, kind, interval_start, endpoint, instance, version, remote_service, method, status_class, database)
TTL interval_start + INTERVAL {retention_days} DAY
SETTINGS ttl_only_drop_parts = 1;

CREATE TABLE IF NOT EXISTS {db}.resource_samples
(
    ts DateTime64(3) CODEC(Delta, ZSTD(1)),
    service LowCardinality(String),
    instance LowCardinality(String),
    version LowCardinality(String),
    metric LowCardinality(String),
    value Float64
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(ts)
ORDER BY (service, metric, instance, ts)
TTL toDateTime(ts) + INTERVAL {retention_days} DAY
SETTINGS ttl_only_drop_parts = 1;

-- Messages the writer could not decode: parked here (and counted) so they never block a partition.
CREATE TABLE IF NOT EXISTS {db}.dead_letters
(
    received_at DateTime64(3),
    topic LowCardinality(String),
    partition UInt32,
    offset Int64,
    error String,
    payload String CODEC(ZSTD(3))
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(received_at)
ORDER BY (topic, partition, offset)
TTL toDateTime(received_at) + INTERVAL {retention_days} DAY
SETTINGS ttl_only_drop_parts = 1
