-- Latency of SERVER spans per (service, minute), so that the services summary of services without an
-- agent reads a few thousand rows instead of every span of the window (storage/metrics_queries.py,
-- span_server_distributions).
--
-- Spans arrive at least once, and a sketch cannot un-count a duplicate, so the per-minute sketches
-- are not summed at insert time: they are computed from de-duplicated spans, by the reader, for
-- minutes whose spans changed since. span_minutes counts the SERVER span rows ever inserted per
-- (service, minute) (a materialized view: every insert adds to it); span_latency keeps, next to each
-- sketch, the number of span rows it was computed from (source_rows). A minute whose count moved on
-- is stale and computed again. Counting too much (a duplicate delivery) only causes a recomputation,
-- never a wrong figure.

CREATE TABLE IF NOT EXISTS {db}.span_minutes
(
    service LowCardinality(String),
    minute DateTime,
    rows UInt64
)
ENGINE = SummingMergeTree
ORDER BY (service, minute)
TTL minute + INTERVAL {retention_days} DAY
SETTINGS ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.span_minutes_mv TO {db}.span_minutes AS
SELECT local_service AS service, toDateTime(intDiv(ts_us, 60000000) * 60) AS minute, count() AS rows
FROM {db}.spans WHERE kind = 'SERVER'
GROUP BY service, minute;

-- Spans stored before this migration: counted once (the marker row service '' at minute 0 says the
-- backfill ran; a re-run after a crash skips it). Spans inserted between the view's creation and this
-- statement are counted twice: their minutes are recomputed at every read, which is slower, not wrong.
INSERT INTO {db}.span_minutes (service, minute, rows)
SELECT local_service, toDateTime(intDiv(ts_us, 60000000) * 60) AS m, count()
FROM {db}.spans
WHERE kind = 'SERVER' AND (SELECT count() FROM {db}.span_minutes WHERE service = '' AND minute = toDateTime(0)) = 0
GROUP BY local_service, m
UNION ALL
SELECT '', toDateTime(0), 1
WHERE (SELECT count() FROM {db}.span_minutes WHERE service = '' AND minute = toDateTime(0)) = 0;

-- One row per (service, minute), the newest computation wins (read with FINAL). The sketch columns
-- are those of the latency table (meshscope/sketch.py).
CREATE TABLE IF NOT EXISTS {db}.span_latency
(
    service LowCardinality(String),
    minute DateTime,
    source_rows UInt64,
    computed_at DateTime64(3),
    count UInt64,
    errors UInt64,
    sum Float64,
    min Float64,
    max Float64,
    scale Int8,
    zero_count UInt64,
    buckets Map(Int32, UInt64)
)
ENGINE = ReplacingMergeTree(computed_at)
ORDER BY (service, minute)
TTL minute + INTERVAL {retention_days} DAY
SETTINGS ttl_only_drop_parts = 1
