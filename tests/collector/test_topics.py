"""The collector's topics come back with meshscope's partition count after a broker lost them."""

from __future__ import annotations

from collector.metrics import Metrics
from collector.publisher import SpanPublisher
from collector.spool import Spool
from meshscope.settings import ServerSettings
from meshscope.topics import ensure_topics
from tests.collector.conftest import wait_for
from tests.collector.test_crash import _batch
from tests.support.kafka import topic_partitions


def test_a_broker_that_lost_its_topics_gets_them_back_with_meshscope_partitions(fresh_broker, tmp_path):
    settings = ServerSettings(kafka_bootstrap=fresh_broker.bootstrap, kafka_topic_partitions=5, spool_dir=tmp_path / "spool")
    metrics = Metrics()
    publisher = SpanPublisher(
        Spool(settings.spool_dir, settings.spool_max_bytes), settings.kafka_bootstrap, settings.spans_topic,
        settings.consumer_group, metrics, retain_until_committed=False, ensure_topics=lambda: ensure_topics(settings),
    ).start()
    try:
        publisher.publish(_batch(10, "topics"))
        wait_for(lambda: metrics.get("meshscope_messages_published_total") >= 1, timeout=30)
        assert topic_partitions(fresh_broker.bootstrap).get(settings.spans_topic) == 5
        published = metrics.get("meshscope_messages_published_total")
        fresh_broker.stop(kill=True)  # memory storage: its topics die with it
        fresh_broker.start()
        publisher.publish(_batch(10, "topics"))
        wait_for(lambda: metrics.get("meshscope_messages_published_total") > published, timeout=60)
        # not the broker's default for a topic a producer names (4 with tansu)
        assert topic_partitions(fresh_broker.bootstrap).get(settings.spans_topic) == 5
    finally:
        publisher.close()
