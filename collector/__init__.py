"""The collector: Zipkin-compatible and OTLP span ingestion (FastAPI), the Kafka-to-ClickHouse
writer, the Zipkin v2 query API and self-metrics.

May import `meshscope` and `storage`; never agents or dashboard.
"""
