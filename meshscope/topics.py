"""Creating meshscope's Kafka topics with enough partitions for several writers.

The collector creates them at its start; each agent too, whenever it makes a Kafka producer (at
its start, and after the broker was away, which may have lost them): a producer that finds a
topic missing leaves its creation to the broker and, with kafka-python 3.0 and tansu, spins on
metadata requests for seconds meanwhile, holding the interpreter lock the agent's proxy needs.
"""

from __future__ import annotations

import logging

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from meshscope.settings import KafkaMixin

logger = logging.getLogger(__name__)


def ensure_topics(settings: KafkaMixin) -> None:
    """Create the spans, metrics and resources topics if missing; a broker that is away is
    logged, not fatal (producers then create topics with the broker's defaults)."""
    topics = [settings.spans_topic, settings.metrics_topic, settings.resources_topic]
    try:
        admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap.split(","), request_timeout_ms=5000)
    except Exception as exc:
        logger.warning("cannot reach Kafka at %s to create topics: %s", settings.kafka_bootstrap, exc)
        return
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(name, settings.kafka_topic_partitions, 1) for name in topics if name not in existing]
        if missing:
            admin.create_topics(missing)
    except TopicAlreadyExistsError:
        pass
    except Exception as exc:
        logger.warning("creating topics %s failed: %s", topics, exc)
    finally:
        admin.close()
