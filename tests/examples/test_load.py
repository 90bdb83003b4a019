"""The load generator against the real shop: its report equals what the services counted, and
every call between services is counted the same on both sides."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time

import httpx
import pytest

from examples.shop import load, topology
from tests.examples.conftest import REPOSITORY

# Requests a test itself makes besides the load: never compared.
OWN = ("/admin/", "/health")


def served(stats: dict) -> dict[str, dict]:
    return {key: counter for key, counter in stats["routes"].items() if not key.split(" ", 1)[1].startswith(OWN)}


def delta(after: dict[str, dict], before: dict[str, dict]) -> dict[str, dict]:
    """Counters that changed between two snapshots, as {"requests", "errors", "statuses"}."""
    changes = {}
    for key, counter in after.items():
        old = before.get(key, {"requests": 0, "errors": 0, "statuses": {}})
        if counter["requests"] == old["requests"]:
            continue
        statuses = {status: count - old["statuses"].get(status, 0) for status, count in counter["statuses"].items()}
        changes[key] = {"requests": counter["requests"] - old["requests"], "errors": counter["errors"] - old["errors"],
                        "statuses": {status: count for status, count in statuses.items() if count}}
    return changes


def quiesce(shop, timeout: float = 30.0) -> None:
    """Let the worker drain the queue, then pause it so that no counter moves."""
    deadline = time.monotonic() + timeout
    while shop.stats("queue")["queue"]["depth"] and time.monotonic() < deadline:
        time.sleep(0.1)
    shop.admin("queue-worker", "pause")


@pytest.fixture
def paused_shop(shop):
    quiesce(shop)
    yield shop
    shop.admin("queue-worker", "resume")
    for service in topology.SERVICES:
        shop.admin(service.name, "reset")


def trace_ids_seen(shop, service: str) -> set[str]:
    requests = httpx.get(f"{shop.url(service)}/admin/traces", trust_env=False).json()["requests"]
    return {request["headers"].get("x-b3-traceid") for request in requests}


def snapshot(shop) -> dict[str, dict]:
    return {service.name: shop.stats(service.name) for service in topology.SERVICES}


def test_report_equals_what_the_shop_counted(paused_shop):
    shop = paused_shop
    before = snapshot(shop)  # while the worker is paused: no counter moves
    shop.admin("queue-worker", "resume")
    config = load.LoadConfig(base=shop.url("front-end"), duration=8, rate=25, seed=7,
                             admin={"payment": shop.url("payment"), "carts": shop.url("carts")},
                             phases=load.default_phases(slow_target="payment", slow_ms=100,
                                                        fail_target="carts", fail_ratio=0.5))
    report = asyncio.run(load.run(config)).as_dict()
    quiesce(shop)
    after = snapshot(shop)

    # what the generator sent is exactly what the front-end served, per route and per raw path
    front_end = delta(served(after["front-end"]), served(before["front-end"]))
    assert report["endpoints"] == front_end
    paths = {key: counter for key, counter in delta(after["front-end"]["paths"], before["front-end"]["paths"]).items()
             if not key.split(" ", 1)[1].startswith(OWN)}
    assert report["paths"] == paths
    assert report["requests"] == sum(counter["requests"] for counter in front_end.values()) > 0
    assert report["errors"] == sum(counter["errors"] for counter in front_end.values())
    assert sum(phase["requests"] for phase in report["phases"]) == report["requests"]
    assert [phase["name"] for phase in report["phases"]] == ["steady", "spike", "slow", "failing", "recovery"]
    assert [phase["injected"] for phase in report["phases"]] == [False, False, True, True, False]
    assert [call["status"] for call in report["admin_calls"]] == [200] * 4  # slow, reset, fail, reset
    assert after["payment"]["injection"] == after["carts"]["injection"] == {"slow_ms": 0, "fail_ratio": 0.0}
    # a phase's injection covers exactly its own requests: every order of the slow phase that got as
    # far as payment was slowed, and nothing else was
    slow_orders = report["phases"][2]["endpoints"]["POST /orders"]["statuses"]
    slowed = after["payment"]["injected"]["slowed"] - before["payment"]["injected"]["slowed"]
    assert slowed == slow_orders.get("201", 0) + slow_orders.get("402", 0) > 0
    # every injected carts failure, and nothing else, became a 502 at the front-end
    failed = after["carts"]["injected"]["failed"] - before["carts"]["injected"]["failed"]
    assert report["errors"] == report["phases"][3]["errors"] == failed > 0

    # every call between services is counted the same by caller and callee, along topology edges only
    for callee in topology.SERVICES:
        callers = [caller for caller in topology.SERVICES if callee.name in caller.dependencies]
        if not callers:
            continue
        called: dict[str, dict] = {}
        for caller in callers:
            calls = delta(after[caller.name]["calls"].get(callee.name, {}),
                          before[caller.name]["calls"].get(callee.name, {}))
            for key, counter in calls.items():
                total = called.setdefault(key, {"requests": 0, "errors": 0, "statuses": {}})
                total["requests"] += counter["requests"]
                total["errors"] += counter["errors"]
                for status, count in counter["statuses"].items():
                    total["statuses"][status] = total["statuses"].get(status, 0) + count
        assert called == delta(served(after[callee.name]), served(before[callee.name])), callee.name
    for service in topology.SERVICES:
        assert set(after[service.name]["calls"]) <= set(service.dependencies)
    assert after["queue"]["queue"]["depth"] == 0

    # it started one trace per request; front-end and orders carried those of placed orders to payment
    traced = report["traces"]
    assert len(traced) == len({trace["trace_id"] for trace in traced}) == report["requests"]
    placed = {trace["trace_id"] for trace in traced if trace["endpoint"] == "POST /orders" and trace["status"] == 201}
    assert placed and placed <= trace_ids_seen(shop, "payment")
    assert not trace_ids_seen(shop, "queue") & {trace["trace_id"] for trace in traced}
    assert after["queue-worker"]["worker"]["processed"] == after["queue"]["queue"]["taken"]


def test_command_line_writes_the_report_when_interrupted(shop, tmp_path):
    report_path = tmp_path / "load.json"
    before = served(shop.stats("front-end"))
    process = subprocess.Popen([sys.executable, "-m", "examples.shop.load", "--base", shop.url("front-end"),
                                "--duration", "60", "--rate", "10", "--report", str(report_path)],
                               cwd=REPOSITORY, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not delta(served(shop.stats("front-end")), before) and time.monotonic() < deadline:
            time.sleep(0.2)  # until the load is under way
        time.sleep(1)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, output.decode()
    report = json.loads(report_path.read_text())
    assert report["stopped_because"] == "stopped"
    assert report["endpoints"] == delta(served(shop.stats("front-end")), before)
    assert report["requests"] > 0


def test_max_requests_bounds_the_load(shop):
    config = load.LoadConfig(base=shop.url("front-end"), duration=30, rate=50, max_requests=12,
                             phases=(load.Phase("steady", 1.0),))
    report = asyncio.run(load.run(config))
    assert report.requests == 12
    assert report.stopped_because == "max_requests"


@pytest.mark.parametrize("base", ["http://localhost:9100", "http://10.0.0.1:80", "https://127.0.0.1:9100"])
def test_only_loopback_is_loaded(base):
    with pytest.raises(ValueError):
        load.LoadConfig(base=base)
    completed = subprocess.run([sys.executable, "-m", "examples.shop.load", "--base", base, "--duration", "1"],
                               cwd=REPOSITORY, capture_output=True, timeout=60)
    assert completed.returncode == 2
