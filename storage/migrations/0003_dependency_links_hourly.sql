-- Dependency links summed per hour, so that /dependencies reads a few thousand rows however many
-- traces the window holds. The writer inserts, for each trace it re-links, the difference between
-- the trace's new links and those it had (collector/writer.py): re-linking the same spans adds 0.
CREATE TABLE IF NOT EXISTS {db}.dependency_links_hourly
(
    hour DateTime,
    parent LowCardinality(String),
    child LowCardinality(String),
    calls Int64,
    errors Int64
)
ENGINE = SummingMergeTree
ORDER BY (hour, parent, child)
TTL hour + INTERVAL {retention_days} DAY
