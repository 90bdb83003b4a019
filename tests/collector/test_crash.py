"""Crash tests: a writer killed (SIGKILL) mid-batch, and the broker killed mid-stream (tansu's
memory storage then loses every message it had acknowledged). Every span answered 202 must be
queryable exactly once afterwards."""

from __future__ import annotations

import time
import uuid

import httpx
import orjson
from fastapi.testclient import TestClient
from kafka import KafkaProducer

from collector.app import create_app
from collector.metrics import Metrics
from collector.publisher import SpanPublisher
from collector.spool import Spool
from meshscope.devbroker import free_port
from meshscope.settings import ServerSettings
from meshscope.wire import encode_spans
from tests.collector.conftest import ServerProcess, wait_for

SPANS_PER_TRACE = 5


def _batch(n_traces: int, service: str) -> list[dict]:
    spans = []
    now = int(time.time() * 1_000_000)
    for _ in range(n_traces):
        trace_id = uuid.uuid4().hex
        root = trace_id[:16]
        for index in range(SPANS_PER_TRACE):
            span_id = root if index == 0 else uuid.uuid4().hex[:16]
            span = {"traceId": trace_id, "id": span_id, "kind": "SERVER" if index == 0 else "CLIENT", "name": f"op{index}",
                    "timestamp": now + index, "duration": 100 + index, "localEndpoint": {"serviceName": service}}
            if index:
                span["parentId"] = root
                span["remoteEndpoint"] = {"serviceName": "db"}
            spans.append(span)
    return spans


def _post(client: httpx.Client, n_traces: int, service: str, accepted: dict[str, int]) -> None:
    """POST ``n_traces`` new traces; count their spans in ``accepted`` (trace id -> spans)."""
    spans = _batch(n_traces, service)
    response = client.post("/api/v2/spans", content=orjson.dumps(spans), headers={"content-type": "application/json"})
    assert response.status_code == 202, response.text
    for span in spans:
        accepted[span["traceId"]] = accepted.get(span["traceId"], 0) + 1


def _assert_exactly_once(base_url: str, accepted: dict[str, int]) -> None:
    ids = sorted(accepted)
    with httpx.Client(base_url=base_url, timeout=30) as client:
        def all_there() -> bool:
            found = {}
            for start in range(0, len(ids), 200):
                chunk = ids[start:start + 200]
                for trace in client.get("/api/v2/traceMany", params={"traceIds": ",".join(chunk)}).json():
                    found[trace[0]["traceId"]] = trace
            missing = [t for t in ids if t not in found]
            wrong = {t: len(found[t]) for t in found if len(found[t]) != accepted[t]}
            assert not wrong, f"traces with duplicated or lost spans: {list(wrong.items())[:5]}"
            return not missing
        wait_for(all_there, timeout=90, interval=1.0)


def test_writer_killed_mid_batch(kafka_broker, clickhouse, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    env = {"MESHSCOPE_SPANS_TOPIC": f"spans-{suffix}", "MESHSCOPE_METRICS_TOPIC": f"metrics-{suffix}",
           "MESHSCOPE_RESOURCES_TOPIC": f"resources-{suffix}", "MESHSCOPE_CONSUMER_GROUP": f"writers-{suffix}",
           "MESHSCOPE_WRITER_BATCH_SIZE": "100000", "MESHSCOPE_WRITER_BATCH_MS": "1500"}
    metrics_port = free_port()
    writer = ServerProcess(tmp_path, kafka_broker.bootstrap, command="writer", MESHSCOPE_METRICS_PORT=str(metrics_port), **env)
    writer.start(wait=False)
    settings = ServerSettings(kafka_bootstrap=kafka_broker.bootstrap, spans_topic=env["MESHSCOPE_SPANS_TOPIC"],
                              consumer_group=env["MESHSCOPE_CONSUMER_GROUP"], spool_dir=tmp_path / "spool")
    publisher = SpanPublisher(Spool(settings.spool_dir, settings.spool_max_bytes), settings.kafka_bootstrap,
                              settings.spans_topic, settings.consumer_group, Metrics()).start()
    accepted: dict[str, int] = {}

    def written() -> float:
        try:
            text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return 0
        return next(float(line.split()[1]) for line in text.splitlines() if line.startswith("meshscope_spans_written_total "))

    try:
        with TestClient(create_app(settings, publisher, lambda: clickhouse.client, Metrics())) as api:
            for _ in range(10):
                _post(api, 20, "crash-writer", accepted)
            wait_for(lambda: written() > 0, timeout=60)  # the first batch is in: the writer works
            for _ in range(10):  # the next batch fills (1.5 s) ...
                _post(api, 20, "crash-writer", accepted)
                time.sleep(0.05)
            writer.kill()  # ... and dies before inserting it
            for _ in range(10):
                _post(api, 20, "crash-writer", accepted)
            writer.start(wait=False)
            for _ in range(10):
                _post(api, 20, "crash-writer", accepted)
            # the spool empties only when the writers' group has committed everything
            wait_for(lambda: publisher.spool.size_bytes == 0 and not publisher.pending(), timeout=90, interval=0.5)
    finally:
        publisher.close()
        writer.stop()
    reader = ServerProcess(tmp_path, kafka_broker.bootstrap, MESHSCOPE_RUN_WRITER="false", **env).start()
    try:
        _assert_exactly_once(reader.url, accepted)
    finally:
        reader.stop()


def test_broker_killed_mid_stream(fresh_broker, tmp_path):
    server = ServerProcess(tmp_path, fresh_broker.bootstrap, MESHSCOPE_WRITER_BATCH_MS="300").start()
    accepted: dict[str, int] = {}
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for _ in range(10):
                _post(client, 20, "crash-broker", accepted)
                time.sleep(0.05)
            fresh_broker.stop(kill=True)  # acknowledged, maybe unconsumed: lost with the broker
            for _ in range(10):
                _post(client, 20, "crash-broker", accepted)  # accepted into the spool while the broker is away
                time.sleep(0.1)
            fresh_broker.start()
            for _ in range(10):
                _post(client, 20, "crash-broker", accepted)
                time.sleep(0.05)
        _assert_exactly_once(server.url, accepted)
        metrics = dict(line.split() for line in httpx.get(server.url + "/metrics").text.splitlines() if not line.startswith("#"))
        assert float(metrics["meshscope_spans_spooled_total"]) > 0  # the outage was seen and spooled through
    finally:
        server.stop()


def test_a_broker_that_lost_its_log_is_read_from_its_start(fresh_broker, tmp_path):
    """The broker comes back empty (a new topic id) and fills past the writer's old offsets before
    the writer fetches again: the writer reads the new log from its start, skipping nothing."""
    server = ServerProcess(tmp_path, fresh_broker.bootstrap).start()
    accepted: dict[str, int] = {}
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for _ in range(10):
                _post(client, 20, "lost-log", accepted)
        _assert_exactly_once(server.url, accepted)  # consumed: the writer's offsets are past them
        fresh_broker.stop(kill=True)
        fresh_broker.start()
        producer = KafkaProducer(bootstrap_servers=fresh_broker.bootstrap)
        for _ in range(400):  # one trace per message: more messages than the old log held
            spans = _batch(1, "lost-log")
            producer.send("meshscope.spans", key=spans[0]["traceId"].encode(), value=encode_spans(spans))
            accepted[spans[0]["traceId"]] = len(spans)
        producer.flush()
        producer.close()
        _assert_exactly_once(server.url, accepted)
    finally:
        server.stop()
