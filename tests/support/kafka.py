"""Reading a Kafka-protocol broker's view in tests."""

from __future__ import annotations

from kafka import KafkaAdminClient


def topic_partitions(bootstrap: str) -> dict[str, int]:
    """topic -> partition count, for every topic the broker has."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return {t["name"]: len(t["partitions"]) for t in admin.describe_topics() if not t["error_code"]}
    finally:
        admin.close()
