"""End to end: load through a real agent (`meshscope agent` subprocess) in front of a service whose
upstream gets slow, metrics through a real Kafka-protocol broker and the collector's writer into
ClickHouse, the alert scheduler in its thread with the real clock, and a real HTTP receiver that
gets `firing` and later `resolved`. Then the receiver goes down, meshscope restarts in between, and
the notifications still arrive, in order, once each."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from analysis import metrics
from analysis.alerts import AlertScheduler
from analysis.context import AnalysisContext, Window
from meshscope.devbroker import free_port, wait_for_port
from meshscope.settings import ServerSettings, WriterSettings
from tests.analysis.receiver import WebhookReceiver

RULES = """\
receivers:
  - name: ops
    url: {url}
    secret: e2e-secret
    timeout: 1s
rules:
  - name: OrdersSlow
    expr: p90 > 200
    selector: {{service: orders}}
    window: 5s
    for: 1s
    severity: critical
    annotations: {{summary: "orders p90 is {{{{value}}}} ms"}}
"""


def http_server(handler_body):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802 - http.server's naming
            body = handler_body(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def shop():
    """`payments` (the upstream, delay adjustable) and `orders`, which calls it per request."""
    delay = {"s": 0.005}

    def payments(path):
        time.sleep(delay["s"])
        return b"paid"

    upstream = http_server(payments)
    upstream_url = f"http://127.0.0.1:{upstream.server_address[1]}/pay"

    def orders(path):
        with urllib.request.urlopen(upstream_url, timeout=10) as response:
            return b"order:" + response.read()

    service = http_server(orders)
    yield service.server_address[1], delay
    for server in (service, upstream):
        server.shutdown()
        server.server_close()


def test_slow_upstream_fires_and_resolves_through_agent_broker_writer_and_survives_outage_and_restart(
        fresh_broker, clickhouse, shop, tmp_path):
    from collector.metrics import Metrics
    from meshscope.topics import ensure_topics
    from collector.writer import Writer

    orders_port, delay = shop
    writer_settings = WriterSettings(kafka_bootstrap=fresh_broker.bootstrap, clickhouse_url=clickhouse.url,
                                     clickhouse_database=clickhouse.database, consumer_group="e2e-alerts",
                                     writer_batch_ms=100, kafka_session_timeout_ms=2000, kafka_heartbeat_ms=500)
    ensure_topics(writer_settings)
    writer = Writer(writer_settings, clickhouse.client, Metrics()).start()
    agent_port = free_port()
    agent = subprocess.Popen(
        [sys.executable, "-m", "meshscope.cli", "agent", "--service", "orders", "--version", "v1",
         "--inbound", f"127.0.0.1:{agent_port}=127.0.0.1:{orders_port}/http",
         "--kafka-bootstrap", fresh_broker.bootstrap, "--interval-s", "1", "--export-interval-s", "0.2",
         "--resource-interval-s", "1", "--agent-spool-dir", str(tmp_path / "agent-spool")],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "agent.log", "wb"), env={**os.environ, "PYTHONUNBUFFERED": "1"})
    receiver = WebhookReceiver().start()
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.format(url=receiver.url))
    settings = ServerSettings(clickhouse_url=clickhouse.url, clickhouse_database=clickhouse.database,
                              alert_rules=rules, alert_interval_s=0.5, alert_state_path=tmp_path / "alerts.sqlite",
                              spool_dir=tmp_path / "spool")

    def start_meshscope():
        return AlertScheduler(settings, clickhouse.client, clickhouse.database, backoff_base_s=0.2, backoff_cap_s=1.0).start()

    stop_load = threading.Event()
    sent = [0]

    def load():
        with httpx.Client(base_url=f"http://127.0.0.1:{agent_port}", timeout=10) as client:
            while not stop_load.is_set():
                assert client.get("/orders/1").status_code == 200
                sent[0] += 1
                time.sleep(0.01)

    scheduler = None
    threads = [threading.Thread(target=load, daemon=True) for _ in range(4)]
    try:
        wait_for_port("127.0.0.1", agent_port)
        for thread in threads:
            thread.start()
        ctx = AnalysisContext(clickhouse.client, clickhouse.database, settings)

        def stored_requests():
            now = int(time.time())
            table = metrics.service_red(ctx, Window(now - 600, now + 1, 60))
            return int(table["count"].sum()) if not table.empty else 0

        wait_for(lambda: stored_requests() > 50, 60, "the agent's metrics to reach ClickHouse")
        time.sleep(6)  # the rule's window moves past the warm-up (cold connections, imports)
        scheduler = start_meshscope()
        time.sleep(3)
        assert receiver.received == []  # fast upstream: quiet

        # 1. the upstream slows down: firing, then resolved when it recovers
        delay["s"] = 0.4
        wait_for(lambda: receiver.statuses() == [("firing", "OrdersSlow")], 40, "firing")
        delay["s"] = 0.005
        wait_for(lambda: receiver.statuses() == [("firing", "OrdersSlow"), ("resolved", "OrdersSlow")], 40, "resolved")
        firing = receiver.received[0]["body"]
        assert firing["version"] == "4" and firing["alerts"][0]["labels"]["service"] == "orders"
        assert float(firing["alerts"][0]["annotations"]["summary"].split()[-2]) > 200

        # 2. the receiver goes down; the upstream slows again; meshscope restarts while the
        #    firing notification waits in the outbox; the upstream recovers; the receiver returns
        receiver.stop()
        delay["s"] = 0.4
        wait_for(lambda: any(h["status"] == "firing" and not h["delivered"] and h["attempts"] >= 1
                             for h in scheduler.store.history()), 40, "a failed firing delivery")
        scheduler.stop()
        scheduler = start_meshscope()
        delay["s"] = 0.005
        wait_for(lambda: [h["status"] for h in scheduler.store.history()][:2] == ["resolved", "firing"]
                 and not scheduler.store.history()[0]["delivered"], 40, "the resolution queued behind the firing")
        receiver.start()
        expected = [("firing", "OrdersSlow"), ("resolved", "OrdersSlow")] * 2
        wait_for(lambda: receiver.statuses() == expected, 40, "both notifications after the outage")
        time.sleep(2)
        assert receiver.statuses() == expected  # once each: nothing repeated after delivery
        ids = [r["headers"]["X-Meshscope-Notification-Id"] for r in receiver.received]
        assert len(set(ids)) == 4
        print(f"\nend-to-end alert: {sent[0]} requests through the agent; notifications {receiver.statuses()}; "
              f"attempts per notification {[h['attempts'] for h in reversed(scheduler.store.history())]}")
    finally:
        stop_load.set()
        for thread in threads:
            thread.join(15)
        if scheduler is not None:
            scheduler.stop()
        receiver.stop()
        agent.terminate()
        try:
            agent.wait(10)
        except subprocess.TimeoutExpired:
            agent.kill()
        writer.close()
