-- Span ingestion in one pass inside ClickHouse (storage/writer.py insert_spans): the writer sends
-- the Zipkin v2 spans as JSONEachRow (one orjson.dumps per batch) into this Null table, and the
-- view maps them to the spans table's columns, so no Python code builds a column per field.
-- `received_us` stands in for the time of a span without timestamp (its Kafka message's time).
CREATE TABLE IF NOT EXISTS {db}.spans_zipkin_input
(
    traceId String,
    id String,
    parentId String,
    kind String,
    name String,
    timestamp UInt64,
    duration UInt64,
    localEndpoint Tuple(serviceName String, ipv4 String, ipv6 String, port UInt16),
    remoteEndpoint Tuple(serviceName String, ipv4 String, ipv6 String, port UInt16),
    annotations Array(Tuple(timestamp UInt64, value String)),
    tags Map(String, String),
    debug Bool,
    shared Bool,
    received_us Int64
)
ENGINE = Null;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.spans_zipkin_input_mv TO {db}.spans AS
SELECT
    traceId AS trace_id, id, parentId AS parent_id, kind, name,
    if(timestamp > 0, toInt64(timestamp), received_us) AS ts_us, timestamp AS timestamp_us, duration AS duration_us,
    localEndpoint.serviceName AS local_service, localEndpoint.ipv4 AS local_ipv4, localEndpoint.ipv6 AS local_ipv6,
    localEndpoint.port AS local_port,
    remoteEndpoint.serviceName AS remote_service, remoteEndpoint.ipv4 AS remote_ipv4, remoteEndpoint.ipv6 AS remote_ipv6,
    remoteEndpoint.port AS remote_port,
    arrayMap(a -> a.1, annotations) AS annotation_ts, arrayMap(a -> a.2, annotations) AS annotation_values,
    tags, debug, shared
FROM {db}.spans_zipkin_input
