"""Publishing to a real Kafka-protocol broker (tansu) with the agent run by its command line;
the broker stopped under load and restarted: every request is still accounted for. A broker that
acknowledged telemetry and then died with it: the agent sends it again from its spool."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
from kafka import KafkaConsumer

from meshscope.devbroker import free_port, wait_for_port
from meshscope.wire import decode_latency, decode_resources, decode_spans, partition_of
from tests.agents.support import MemoryPublisher, AgentThread, wait_until

TOPICS = ("meshscope.spans", "meshscope.metrics", "meshscope.resources")
OUTAGE_S = 30  # as the issue asks: the broker away for 30 s under load


class Tally:
    """Everything consumed from the broker, deduplicated as storage does. With ``group``, it
    commits what it consumed in that consumer group, as the writers do after each insert."""

    def __init__(self, bootstrap: str, group: str | None = None) -> None:
        self.consumer = KafkaConsumer(*TOPICS, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                      enable_auto_commit=False, consumer_timeout_ms=200, group_id=group,
                                      session_timeout_ms=6000, heartbeat_interval_ms=2000)
        self.group = group
        self.records: dict[tuple, int] = {}
        self.spans: dict[str, dict] = {}
        self.span_deliveries = 0
        self.samples: list = []
        self.span_keys_ok = True

    def poll(self) -> None:
        for message in self.consumer:
            if message.topic == "meshscope.spans":
                self.span_deliveries += len(decode_spans(message.value))
            if message.topic == "meshscope.metrics":
                for record in decode_latency(message.value):
                    self.records[(record.interval_start, record.instance, record.key())] = record.sketch.count
            elif message.topic == "meshscope.spans":
                partitions = len(self.consumer.partitions_for_topic(message.topic))
                for span in decode_spans(message.value):
                    # one message per partition: each trace in the partition its own id maps to
                    self.span_keys_ok &= message.partition == partition_of(span["traceId"].encode(), partitions)
                    self.spans[span["id"]] = span
            else:
                self.samples.extend(decode_resources(message.value))
        if self.group is not None and self.consumer.assignment():
            self.consumer.commit()

    def requests(self) -> int:
        self.poll()
        return sum(self.records.values())

    def close(self) -> None:
        self.consumer.close()


def test_broker_outage_under_load_loses_nothing(fresh_broker, asgi_upstream, tmp_path):
    port = free_port()
    agent = subprocess.Popen(
        [sys.executable, "-m", "meshscope.cli", "agent", "--service", "shop", "--version", "v1",
         "--inbound", f"127.0.0.1:{port}=127.0.0.1:{asgi_upstream}/http",
         "--kafka-bootstrap", fresh_broker.bootstrap, "--sample-rate", "1", "--interval-s", "1",
         "--export-interval-s", "0.2", "--kafka-send-timeout-s", "1", "--resource-interval-s", "1",
         "--agent-spool-dir", str(tmp_path / "spool"), "--drain-timeout-s", "2"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "agent.log", "wb"), env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    sent = [0]
    stop_load = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            while not stop_load.is_set():
                assert client.get(f"/users/{sent[0]}").status_code == 200
                sent[0] += 1
                time.sleep(0.002)

    try:
        wait_for_port("127.0.0.1", port)
        # phase 1: broker up. Let it all arrive before the kill: tansu keeps messages in memory
        # only, so what it had would die with it (a broker's loss, not the agent's).
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            for i in range(100):
                assert client.get(f"/users/{i}").status_code == 200
        before = Tally(fresh_broker.bootstrap)
        assert wait_until(lambda: before.requests() == 100, timeout=30), before.requests()
        assert before.span_keys_ok and len(before.spans) == 100
        before.close()

        # phase 2: the broker dies with everything it had (memory storage), and stays away for a
        # while under load. Nothing has committed phase 1, so the agent still holds it.
        fresh_broker.stop(kill=True)
        loader = threading.Thread(target=load, daemon=True)
        loader.start()
        time.sleep(OUTAGE_S)
        spooled = list((tmp_path / "spool" / "shop").glob("*.seg"))
        assert spooled, "nothing was spooled while the broker was away"
        fresh_broker.start()  # restarted under load
        time.sleep(3)
        stop_load.set()
        loader.join(10)
        during = sent[0]
        assert during > 100

        # phase 3: SIGTERM drains and flushes
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(30) == 0
        # the restarted broker has it all: phase 1 sent again, the outage replayed from the spool
        after = Tally(fresh_broker.bootstrap)
        wait_until(lambda: after.requests() >= 100 + during, timeout=30)
        assert after.requests() == 100 + during
        assert after.span_keys_ok and len(after.spans) == 100 + during
        assert {(s.service, s.instance.split(":")[0] != "", s.version) for s in after.samples} == {("shop", True, "v1")}
        dropped = [s.value for s in after.samples if s.metric == "telemetry.dropped"]
        assert dropped and max(dropped) == 0
        assert any(s.metric == "health.up" and s.value == 1.0 for s in after.samples)
        assert any(s.metric == "process.memory.rss" and s.value > 0 for s in after.samples)
        after.close()
    finally:
        stop_load.set()
        if agent.poll() is None:
            agent.kill()


def test_telemetry_a_killed_broker_had_acknowledged_is_sent_again(fresh_broker, asgi_upstream, tmp_path):
    group = "writers-under-test"
    agent = AgentThread({"service": "shop", "inbound": [f"127.0.0.1:0=127.0.0.1:{asgi_upstream}/http"],
                         "kafka_bootstrap": fresh_broker.bootstrap, "consumer_group": group, "sample_rate": "1",
                         "interval_s": "1", "kafka_send_timeout_s": "1", "resource_interval_s": "1"},
                        spool_dir=tmp_path).start()
    exporter = agent.agent.exporter
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{agent.port()}") as client:
            for i in range(50):
                assert client.get(f"/users/{i}").status_code == 200
            # acknowledged by the broker (a reader outside the group sees them), not yet committed
            peek = Tally(fresh_broker.bootstrap)
            assert wait_until(lambda: peek.requests() == 50 and len(peek.spans) == 50, timeout=30), peek.requests()
            peek.close()
            first_segment = exporter.spool.segments()[0]

            fresh_broker.stop(kill=True)  # tansu's memory storage: everything acknowledged dies with it
            fresh_broker.start()
            for i in range(50, 80):
                assert client.get(f"/users/{i}").status_code == 200

        # nothing is committed yet (the group has not read a message): the agent keeps its spool
        assert first_segment in exporter.spool.segments()
        # the writers' group: each request exactly once after deduplication, the first 50 included
        writers = Tally(fresh_broker.bootstrap, group=group)
        assert wait_until(lambda: writers.requests() >= 80 and len(writers.spans) >= 80, timeout=60), writers.requests()
        time.sleep(1.5)  # anything late (a duplicate, a stray interval) would show now
        assert writers.requests() == 80 and len(writers.spans) == 80
        assert writers.span_keys_ok
        # once the group committed them, the agent lets the spool segment go, although it goes on
        # appending and sending every round (samples, intervals)
        def released() -> bool:
            writers.poll()  # keeps committing what the agent goes on sending
            return first_segment not in exporter.spool.segments()

        assert wait_until(released, timeout=20, interval=0.2), exporter.spool.segments()
        writers.close()
    finally:
        agent.stop()


def test_full_spool_drops_counts_and_publishes_the_count(asgi_upstream, tmp_path):
    publisher = MemoryPublisher()
    publisher.down = True
    agent = AgentThread({"service": "tiny", "inbound": [f"127.0.0.1:0=127.0.0.1:{asgi_upstream}/http"],
                         "sample_rate": "1", "agent_spool_max_bytes": "4096", "interval_s": "1", "resource_interval_s": "0.5"},
                        publisher=publisher, spool_dir=tmp_path).start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{agent.port()}") as client:
            for i in range(200):
                client.get(f"/users/{i}")
        assert wait_until(lambda: agent.agent.exporter.spool_dropped_items > 0, timeout=10)
        agent.agent.exporter.retry_interval_s = 0.1
        publisher.down = False
        assert wait_until(lambda: any(s.metric == "telemetry.dropped" and s.value > 0 for s in publisher.samples()), timeout=15)
    finally:
        agent.stop()
    published = [s.value for s in publisher.samples() if s.metric == "telemetry.dropped"]
    # the last published count is the final one (items: spans, latency records, samples)
    assert published[-1] == agent.agent.exporter.dropped == agent.agent.exporter.spool_dropped_items
    # every span is either delivered or among the dropped items
    assert len(publisher.spans()) + published[-1] >= 200


def test_the_agent_creates_its_topics_before_its_first_send(fresh_broker):
    """With the partitions meshscope asks for, not the broker's defaults for a topic a producer
    names (and without the producer's seconds of metadata requests while the broker creates it)."""
    from agents.exporter import KafkaPublisher
    from agents.spool import Message
    from meshscope.settings import AgentSettings
    from meshscope.topics import ensure_topics
    from tests.support.kafka import topic_partitions

    settings = AgentSettings(kafka_bootstrap=fresh_broker.bootstrap, kafka_topic_partitions=5, service="web")
    publisher = KafkaPublisher(fresh_broker.bootstrap, client_id="test", ensure_topics=lambda: ensure_topics(settings))
    try:
        assert publisher.publish([Message(settings.metrics_topic, b"web", b"x")]) == []
        assert publisher.partitions(settings.metrics_topic) == 5
    finally:
        publisher.close()
    described = topic_partitions(fresh_broker.bootstrap)
    assert {topic: described.get(topic) for topic in (settings.spans_topic, settings.metrics_topic, settings.resources_topic)} == {
        settings.spans_topic: 5, settings.metrics_topic: 5, settings.resources_topic: 5,
    }
