"""Two `meshscope writer` processes in one consumer group share the partitions and write to one
ClickHouse over HTTP (the test double of tests/support/clickhouse_http.py over the real engine);
every span accepted is stored exactly once."""

from __future__ import annotations

import uuid

import httpx
import orjson
from fastapi.testclient import TestClient

from collector.app import create_app
from collector.metrics import Metrics
from collector.publisher import SpanPublisher
from collector.spool import Spool
from meshscope.devbroker import free_port
from meshscope.settings import ServerSettings
from tests.collector.conftest import ServerProcess, wait_for
from tests.collector.test_crash import _batch


def _written(port: int) -> float:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0
    return next(float(line.split()[1]) for line in text.splitlines() if line.startswith("meshscope_spans_written_total "))


def test_two_writers_share_the_partitions(kafka_broker, clickhouse_over_http, tmp_path):
    store = clickhouse_over_http
    suffix = uuid.uuid4().hex[:8]
    env = {"MESHSCOPE_SPANS_TOPIC": f"spans-{suffix}", "MESHSCOPE_METRICS_TOPIC": f"metrics-{suffix}",
           "MESHSCOPE_RESOURCES_TOPIC": f"resources-{suffix}", "MESHSCOPE_CONSUMER_GROUP": f"writers-{suffix}",
           "MESHSCOPE_CLICKHOUSE_URL": store.url, "MESHSCOPE_CLICKHOUSE_DATABASE": store.database}
    ports = [free_port(), free_port()]
    writers = []
    for index, port in enumerate(ports):
        (tmp_path / str(index)).mkdir()
        writers.append(ServerProcess(tmp_path / str(index), kafka_broker.bootstrap, command="writer",
                                     MESHSCOPE_METRICS_PORT=str(port), **env).start(wait=False))
    settings = ServerSettings(kafka_bootstrap=kafka_broker.bootstrap, spans_topic=env["MESHSCOPE_SPANS_TOPIC"],
                              consumer_group=env["MESHSCOPE_CONSUMER_GROUP"], spool_dir=tmp_path / "spool",
                              clickhouse_url=store.url, clickhouse_database=store.database)
    publisher = SpanPublisher(Spool(settings.spool_dir, settings.spool_max_bytes), settings.kafka_bootstrap,
                              settings.spans_topic, settings.consumer_group, Metrics()).start()
    accepted: dict[str, int] = {}
    try:
        with TestClient(create_app(settings, publisher, lambda: store.client, Metrics())) as api:
            for _ in range(30):
                spans = _batch(20, "scale-out")
                assert api.post("/api/v2/spans", content=orjson.dumps(spans), headers={"content-type": "application/json"}).status_code == 202
                for span in spans:
                    accepted[span["traceId"]] = accepted.get(span["traceId"], 0) + 1
            wait_for(lambda: publisher.spool.size_bytes == 0 and not publisher.pending(), timeout=90, interval=0.5)
            assert all(_written(port) > 0 for port in ports), "both writers got partitions and wrote"
            ids = sorted(accepted)
            found = {}
            for start in range(0, len(ids), 200):
                for trace in api.get("/api/v2/traceMany", params={"traceIds": ",".join(ids[start:start + 200])}).json():
                    found[trace[0]["traceId"]] = len(trace)
            assert found == accepted
    finally:
        publisher.close()
        for writer in writers:
            writer.stop()
