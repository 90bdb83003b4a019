"""Alert evaluation and delivery against seeded metrics, a controlled clock and a real HTTP
receiver: states, grouping, repeat interval, signature, retries, the outbox across a restart."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from analysis.alerts import AlertScheduler
from analysis.alerts.rules import load_rules
from analysis.alerts.webhook import backoff_s
from tests.analysis.conftest import NOW, seed_latency
from tests.analysis.receiver import WebhookReceiver

RULES = """\
global:
  group_by: [alertname, service]
  repeat_interval: {repeat}
receivers:
  - name: ops
    url: {url}
    secret: topsecret
    timeout: 2s
rules:
  - name: Slow
    expr: p99 > 100
    window: 30s
    for: 20s
    severity: critical
    labels: {{team: shop}}
    annotations: {{summary: "p99 of {{{{service}}}} is {{{{value}}}} ms"}}
  - name: Errors
    expr: error_ratio > 0.2
    selector: {{service: orders}}
    window: 30s
"""


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def receiver():
    server = WebhookReceiver().start()
    yield server
    server.stop()


def seed_phases(store, service, phases):
    """``phases``: (start offset, end offset, latency ms, error) relative to NOW, 5 requests/s."""
    samples = []
    for start, end, latency, error in phases:
        for tick in range((end - start) * 5):
            ts = NOW + start + tick / 5
            samples.append((ts, service, f"{service}-1", "", "http.server", "GET /x", latency, error, "", ""))
    seed_latency(store, samples, interval_s=5)


def make_scheduler(ctx, tmp_path, receiver, clock, repeat="1h", url=None):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.format(url=url or receiver.url, repeat=repeat))
    settings = ctx.settings.model_copy(update={"alert_rules": path, "alert_state_path": tmp_path / "alerts.sqlite"})
    return AlertScheduler(settings, ctx.client, ctx.database, rules=load_rules(path), clock=clock,
                          backoff_base_s=1.0, backoff_cap_s=4.0)


def test_pending_firing_resolved_with_signature_grouping_and_repeat(clickhouse, ctx, tmp_path, receiver):
    seed_phases(clickhouse, "orders", [(-600, -300, 20.0, False), (-300, -120, 300.0, False), (-120, 300, 20.0, False)])
    seed_phases(clickhouse, "cart", [(-600, -300, 20.0, False), (-300, -120, 300.0, False), (-120, 300, 20.0, False)])
    clock = Clock(NOW - 320)
    scheduler = make_scheduler(ctx, tmp_path, receiver, clock, repeat="100s")
    try:
        def states():
            return {(a["rule"], a["labels"]["service"]): a["state"] for a in scheduler.snapshot()["alerts"]}

        scheduler.run_once()
        assert states() == {}
        clock.now = NOW - 280  # the window now holds slow requests
        scheduler.run_once()
        assert states() == {("Slow", "orders"): "pending", ("Slow", "cart"): "pending"}
        assert receiver.received == []
        clock.now = NOW - 255  # held for 25 s >= for: 20 s
        scheduler.run_once()
        assert states() == {("Slow", "orders"): "firing", ("Slow", "cart"): "firing"}
        assert sorted(receiver.statuses()) == [("firing", "Slow"), ("firing", "Slow")]  # one group per service
        clock.now = NOW - 200  # still firing, repeat interval (100 s) not reached: nothing new
        scheduler.run_once()
        assert len(receiver.received) == 2
        clock.now = NOW - 150  # 105 s since the notification: repeated
        scheduler.run_once()
        assert len(receiver.received) == 4
        clock.now = NOW - 60
        scheduler.run_once()
        assert states() == {}
        assert receiver.statuses()[-2:] == [("resolved", "Slow"), ("resolved", "Slow")]
    finally:
        scheduler.stop()
        scheduler.stop()  # idempotent

    first = receiver.received[0]
    body = first["body"]
    assert body["version"] == "4" and body["receiver"] == "ops" and body["status"] == "firing"
    assert body["groupLabels"] == {"alertname": "Slow", "service": body["alerts"][0]["labels"]["service"]}
    assert body["truncatedAlerts"] == 0 and body["externalURL"].startswith("http://")
    alert = body["alerts"][0]
    assert alert["labels"]["severity"] == "critical" and alert["labels"]["team"] == "shop"
    assert alert["annotations"]["summary"].startswith(f"p99 of {alert['labels']['service']} is 30")
    assert alert["endsAt"] == "0001-01-01T00:00:00Z" and alert["startsAt"].endswith("Z") and alert["fingerprint"]
    assert set(body) == {"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels", "commonLabels",
                         "commonAnnotations", "externalURL", "alerts"}
    timestamp = first["headers"]["X-Meshscope-Timestamp"]
    expected = hmac.new(b"topsecret", timestamp.encode() + b"." + first["raw"], hashlib.sha256).hexdigest()
    assert first["headers"]["X-Meshscope-Signature"] == f"sha256={expected}"
    resolved = receiver.received[-1]["body"]
    assert resolved["status"] == "resolved" and resolved["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"


def test_error_ratio_rule_fires_immediately_without_for(clickhouse, ctx, tmp_path, receiver):
    seed_phases(clickhouse, "orders", [(-60, -30, 10.0, False), (-30, 0, 10.0, True)])
    clock = Clock(NOW)
    scheduler = make_scheduler(ctx, tmp_path, receiver, clock)
    try:
        scheduler.run_once()
        assert receiver.statuses() == [("firing", "Errors")]
        assert scheduler.snapshot()["alerts"][0]["value"] == pytest.approx(1.0)
    finally:
        scheduler.stop()


def test_receiver_outage_and_restart_lose_nothing_and_duplicate_nothing(clickhouse, ctx, tmp_path, receiver):
    seed_phases(clickhouse, "orders", [(-300, -200, 300.0, False), (-200, 0, 20.0, False)])
    clock = Clock(NOW - 280)
    receiver.failing = True  # the receiver answers 503
    scheduler = make_scheduler(ctx, tmp_path, receiver, clock)
    scheduler.run_once()
    clock.now = NOW - 255
    scheduler.run_once()  # firing: delivery fails, stays in the outbox
    assert receiver.attempts == 1 and receiver.received == []
    history = scheduler.store.history()
    assert history[0]["delivered"] is False and "503" in history[0]["last_error"]
    clock.now += 0.1
    scheduler.sender.deliver_due()  # backoff: not due yet
    assert receiver.attempts == 1
    scheduler.stop()  # meshscope restarts while the notification is pending

    receiver.stop()  # and the receiver is now down altogether (connection refused)
    clock.now = NOW - 150
    scheduler = make_scheduler(ctx, tmp_path, receiver, clock)
    scheduler.run_once()  # still firing: no new notification, the old one retried and failed
    clock.now = NOW - 100
    scheduler.run_once()  # resolved: queued behind the firing one
    assert [h["status"] for h in scheduler.store.history()] == ["resolved", "firing"]
    scheduler.stop()

    receiver.failing = False
    receiver.start()  # same port
    clock.now = NOW - 50
    scheduler = make_scheduler(ctx, tmp_path, receiver, clock)
    try:
        scheduler.run_once()
        assert receiver.statuses() == [("firing", "Slow"), ("resolved", "Slow")]  # in order, once each
        notification_ids = [r["headers"]["X-Meshscope-Notification-Id"] for r in receiver.received]
        assert len(set(notification_ids)) == 2
        clock.now = NOW - 10
        scheduler.run_once()
        assert len(receiver.received) == 2
        history = scheduler.store.history()
        assert all(h["delivered"] for h in history) and history[1]["attempts"] >= 3
    finally:
        scheduler.stop()


def test_backoff_is_exponential_with_jitter_and_capped():
    import random

    rng = random.Random(1)
    delays = [[backoff_s(attempt, rng, 1.0, 60.0) for _ in range(200)] for attempt in range(1, 10)]
    for attempt, values in enumerate(delays, start=1):
        ceiling = min(60.0, 2 ** (attempt - 1))
        assert ceiling / 2 <= min(values) and max(values) <= ceiling
        assert max(values) - min(values) > ceiling / 4  # jittered


def test_a_notification_is_given_up_after_max_retry_for_and_kept_in_history(clickhouse, ctx, tmp_path, receiver):
    seed_phases(clickhouse, "orders", [(-60, 0, 10.0, True)])
    clock = Clock(NOW)
    path = tmp_path / "rules.yaml"
    path.write_text(f"receivers: [{{name: ops, url: '{receiver.url}', max_retry_for: 30s}}]\n"
                    "rules: [{name: Errors, expr: error_ratio > 0.5, window: 30s}]\n")
    settings = ctx.settings.model_copy(update={"alert_state_path": tmp_path / "alerts.sqlite"})
    receiver.failing = True
    scheduler = AlertScheduler(settings, ctx.client, ctx.database, rules=load_rules(path), clock=clock,
                               backoff_base_s=1.0, backoff_cap_s=4.0)
    try:
        scheduler.run_once()
        for _ in range(20):
            clock.now += 5
            scheduler.sender.deliver_due()
        [entry] = scheduler.store.history()
        assert entry["given_up"] and not entry["delivered"] and "503" in entry["last_error"]
        assert 5 <= entry["attempts"] <= 10  # backoff capped at 4 s over 30 s
        assert scheduler.store.pending_count() == 0
    finally:
        scheduler.stop()
