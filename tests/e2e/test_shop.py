"""The shop end to end: load generator -> front-end agent -> shop services with their agents ->
Kafka (tansu) -> `meshscope serve` (writer, ClickHouse, APIs). What the load generator recorded
sending must come back from the API exactly: per endpoint request and error counts, complete
front-end -> orders -> payment traces, the real call graph, and the catalogue's SQL counts.
Run once plainly and once with the broker killed and restarted in the middle of the load.
"""

from __future__ import annotations

import collections
import json
import threading
import time

import httpx
import pytest

from agents.routes import normalize
from examples.shop import topology
from meshscope.demo import DB_SERVICE_NAME, ShopStack
from meshscope.devbroker import free_port

pytestmark = pytest.mark.slow

LOAD_SECONDS = 24


def expected_endpoints(report: dict) -> dict[str, tuple[int, int]]:
    """Per agent endpoint ("METHOD /normalized/route"): (requests, errors) the load sent."""
    expected: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for key, counter in report["paths"].items():
        method, _, path = key.partition(" ")
        endpoint = f"{method} {normalize(path.encode())}"
        expected[endpoint][0] += counter["requests"]
        expected[endpoint][1] += counter["errors"]
    return {endpoint: (n, errors) for endpoint, (n, errors) in expected.items()}


def api_endpoints(api: str, service: str, kind: str = "http") -> dict[str, tuple[int, int]]:
    rows = httpx.get(f"{api}/api/meshscope/v1/endpoints", params={"service": service, "kind": kind}, timeout=30).json()
    return {row["endpoint"]: (int(row["count"]), int(row["errors"])) for row in rows
            if kind == "sql" or (row["kind"] == "http.server" and not row["remote_service"])}


def wait_for(expected, read, timeout: float = 90.0):
    """Poll ``read()`` until it equals ``expected`` (telemetry arrives interval by interval)."""
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = read()
        if got == expected:
            return got
        time.sleep(2)
    return got


@pytest.fixture
def shop(tmp_path):
    stack = ShopStack(work_dir=tmp_path / "demo", port=free_port(), interval_s=2)
    stack.start()
    yield stack
    stack.stop()


def run_load(stack: ShopStack, tmp_path, broker_outage: bool) -> dict:
    report_path = tmp_path / "load.json"
    outage = None
    if broker_outage:
        def kill_and_restart():
            time.sleep(LOAD_SECONDS / 3)
            stack.broker.stop(kill=True)
            time.sleep(5)
            stack.broker.start()

        outage = threading.Thread(target=kill_and_restart)
        outage.start()
    stack.run_load(LOAD_SECONDS, report_path, "--rate", "8", "--slow-ms", "150")
    if outage:
        outage.join()
    return json.loads(report_path.read_text())


def check_everything_accounted_for(stack: ShopStack, report: dict) -> None:
    api = stack.api
    assert report["requests"] > 100

    # 1. per front-end endpoint, exactly the requests and errors the load generator sent
    expected = expected_endpoints(report)
    got = wait_for(expected, lambda: api_endpoints(api, "front-end"))
    assert got == expected

    # 2. the dependency graph equals the shop's real call graph (the database under its agent name)
    real_graph = {(a, DB_SERVICE_NAME if b == "mariadb" else b) for a, b in topology.call_graph()}
    end_ts = int(time.time() * 1000)
    links = httpx.get(f"{api}/api/v2/dependencies", params={"endTs": end_ts, "lookback": 3_600_000}, timeout=30).json()
    graph = {(link["parent"], link["child"]) for link in links}
    if graph != real_graph:  # links arrive with the spans; give the last intervals time to land
        graph = wait_for(real_graph, lambda: {(link["parent"], link["child"]) for link in httpx.get(
            f"{api}/api/v2/dependencies", params={"endTs": int(time.time() * 1000), "lookback": 3_600_000},
            timeout=30).json()}, timeout=30)
    worker_spans = httpx.get(f"{api}/api/v2/traces", params={"serviceName": "queue-worker", "limit": 5}, timeout=30).json()
    assert graph == real_graph, f"queue-worker traces: {json.dumps(worker_spans)[:3000]}"

    # 3. traces front-end -> orders -> payment are complete where headers are forwarded
    traces = httpx.get(f"{api}/api/v2/traces", params={"serviceName": "payment", "limit": 20, "endTs": end_ts},
                       timeout=30).json()
    assert traces
    for trace in traces:
        servers = {span["localEndpoint"]["serviceName"] for span in trace
                   if span.get("kind") == "SERVER" and "localEndpoint" in span}
        assert {"front-end", "orders", "payment"} <= servers, servers
        ids = {span["id"] for span in trace}
        roots = [span for span in trace if "parentId" not in span]
        assert len(roots) == 1, "one root: the front-end's SERVER span"
        assert all(span["parentId"] in ids for span in trace if "parentId" in span)

    # 4. the catalogue's SQL statements appear with their counts (the catalogue counts its own)
    stats = httpx.get(f"http://127.0.0.1:{stack.private_ports['catalogue']}/admin/stats", timeout=10).json()
    statements_sent = sum(stats["sql"].values())
    got_sql = wait_for(statements_sent, lambda: sum(n for n, _ in api_endpoints(api, "catalogue", "sql").values()))
    assert got_sql == statements_sent


def test_shop_numbers_arrive_exactly(shop, tmp_path):
    report = run_load(shop, tmp_path, broker_outage=False)
    check_everything_accounted_for(shop, report)


def test_shop_numbers_survive_a_broker_outage(shop, tmp_path):
    report = run_load(shop, tmp_path, broker_outage=True)
    check_everything_accounted_for(shop, report)
