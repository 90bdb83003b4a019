"""Known traffic written into a meshscope store through ``storage.writer``, as the collector's
writer puts it there; run in a process of its own (chdb: one process per data directory):

    python -m tests.dashboard.store_seed /abs/clickhouse/dir DATABASE [BIG_TRACE_SPANS]

One fixed hour (``WINDOW``), two hours ago, aligned to the hour: checkout -> inventory -> mysql,
with exact request counts, CPU/memory/health samples, and traces whose span counts are known.
``seed()`` runs it with the hour its caller imported, so that an hour turning between the caller's
import and the seeding process cannot put the data outside the window the caller asks for."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HOUR_S = 3600
WINDOW_START_ENV = "MESHSCOPE_SEED_WINDOW_START_S"
WINDOW_START_S = int(os.environ.get(WINDOW_START_ENV) or (int(time.time()) // HOUR_S - 2) * HOUR_S)
WINDOW_MS = (WINDOW_START_S * 1000, (WINDOW_START_S + HOUR_S) * 1000)
INTERVAL_S = 10
CHECKOUT_PER_INTERVAL = 25  # -> 9000 requests in the hour, 2.5 requests/s
CHECKOUT_REQUESTS = CHECKOUT_PER_INTERVAL * HOUR_S // INTERVAL_S
CHECKOUT_ERRORS = 90
EDGES = {("checkout", "inventory"), ("checkout", "payments"), ("inventory", "mysql")}
TRACE_ID = "c0ffee00000000000000000000000025"
TRACE_SPANS = 25
BIG_TRACE_ID = "c0ffee000000000000000000000b16a0"


@dataclass
class Served:
    url: str
    process: object


def _counts(mean: int, swing: int, phase: float = 0.0) -> list[int]:
    """Requests per interval over the hour: a daily-like wave around ``mean`` that sums to exactly
    ``mean`` per interval on average (the last interval takes up the rounding)."""
    steps = HOUR_S // INTERVAL_S
    counts = [max(0, round(mean + swing * math.sin(2 * math.pi * (i / steps * 2 + phase)))) for i in range(steps)]
    counts[-1] += mean * steps - sum(counts)
    return counts


def latency_records():
    from meshscope.wire import LatencyRecord

    rng = random.Random(7)
    records = []
    keys = (  # service, instance, version, kind, endpoint, method, remote, database, counts, base ms, error share
        ("checkout", "checkout-1", "v1", "http.server", "GET /cart", "GET", "", "", _counts(CHECKOUT_PER_INTERVAL, 10), 20.0, 0.0),
        ("checkout", "checkout-1", "v1", "http.client", "GET /stock", "GET", "inventory", "", _counts(10, 4), 8.0, 0.0),
        ("checkout", "checkout-1", "v1", "http.client", "POST /pay", "POST", "payments", "", _counts(5, 2, 0.1), 30.0, 0.06),
        ("inventory", "inventory-1", "v1", "http.server", "GET /stock", "GET", "", "", _counts(10, 4), 6.0, 0.0),
        ("inventory", "inventory-1", "v1", "sql.client", "SELECT * FROM stock WHERE sku = ?", "SELECT", "mysql", "shop",
         _counts(20, 8), 1.5, 0.0),
        ("payments", "payments-1", "v1", "http.server", "POST /pay", "POST", "", "", _counts(3, 1, 0.1), 25.0, 0.05),
        ("payments", "payments-2", "v2", "http.server", "POST /pay", "POST", "", "", _counts(2, 1, 0.1), 40.0, 0.08),
    )
    checkout_errors = iter(range(CHECKOUT_ERRORS))
    for step in range(HOUR_S // INTERVAL_S):
        start = WINDOW_START_S + step * INTERVAL_S
        for service, instance, version, kind, endpoint, method, remote, database, counts, base, error_share in keys:
            record = LatencyRecord(interval_start=start, interval_s=INTERVAL_S, service=service, instance=instance, version=version,
                                   kind=kind, endpoint=endpoint, method=method, status_class="2xx", remote_service=remote,
                                   database=database, rows=counts[step] if database else 0)
            slow = 3.0 if service == "payments" and 200 <= step < 215 else 1.0  # a latency episode
            for _ in range(counts[step]):
                record.sketch.add(base * slow * rng.uniform(0.5, 2.0))
                record.errors += rng.random() < error_share
            if service == "checkout" and kind == "http.server" and step % 4 == 0:
                record.errors = 1 if next(checkout_errors, None) is not None else 0
            records.append(record)
    return records


def resource_samples():
    from meshscope.wire import ResourceSample

    samples = []
    for t in range(WINDOW_START_S, WINDOW_START_S + HOUR_S, 30):
        wave = math.sin(2 * math.pi * (t - WINDOW_START_S) / 1800)
        for service, instance, version, cpu in (("checkout", "checkout-1", "v1", 0.4), ("inventory", "inventory-1", "v1", 0.2),
                                                ("payments", "payments-1", "v1", 0.7), ("payments", "payments-2", "v2", 0.8)):
            for metric, value in (("process.cpu.utilization", cpu * (1 + 0.25 * wave)),
                                  ("process.memory.rss", (200 + 30 * wave + 40 * (service == "payments")) * 2**20),
                                  ("process.memory.limit", 512 * 2**20), ("health.up", 1.0), ("health.probe_ms", 1.5)):
                samples.append(ResourceSample(t * 1000, service, instance, version, metric, value))
    return samples


def trace(trace_id: str, spans: int, start_us: int) -> list[dict]:
    """checkout's request: one SERVER span, then alternating calls to inventory and its SQL."""
    out = [{"traceId": trace_id, "id": "%016x" % 1, "kind": "SERVER", "name": "get /cart", "timestamp": start_us,
            "duration": 40_000 + spans * 20, "localEndpoint": {"serviceName": "checkout"}, "tags": {"http.path": "/cart"}}]
    for i in range(2, spans + 1):
        parent = out[(i - 2) // 3]  # a tree of fan-out three
        offset = 10 + (i % 3) * 5
        service = "inventory" if i % 2 else "checkout"
        out.append({"traceId": trace_id, "id": "%016x" % i, "parentId": parent["id"], "kind": "CLIENT",
                    "name": "select stock" if service == "inventory" else "get /stock", "timestamp": parent["timestamp"] + offset,
                    "duration": max(5, parent["duration"] // 3), "localEndpoint": {"serviceName": service},
                    "remoteEndpoint": {"serviceName": "mysql" if service == "inventory" else "inventory"}})
    return out


def main(argv: list[str]) -> int:
    from storage import migrations
    from storage.client import connect
    from storage.writer import insert_latency, insert_resources, insert_spans

    path, database = argv[0], argv[1]
    big = int(argv[2]) if len(argv) > 2 else 10_000
    client = connect(f"chdb://{path}")
    migrations.apply(client, database, retention_days=3650)
    insert_latency(client, database, latency_records())
    insert_resources(client, database, resource_samples())
    middle_us = (WINDOW_START_S + HOUR_S // 2) * 1_000_000
    spans = trace(TRACE_ID, TRACE_SPANS, middle_us)
    for n in range(5):
        spans += trace(f"c0ffee{n:026x}", 3 + n, middle_us + (n + 1) * 60_000_000)
    spans += trace(BIG_TRACE_ID, big, middle_us + 600_000_000)
    insert_spans(client, database, spans)
    return 0


def seed(store: Path, database: str, big_trace_spans: int | None = None, env: dict | None = None) -> None:
    """Seed ``store`` in a process of its own (chdb lets one process own a directory)."""
    extra = [str(big_trace_spans)] if big_trace_spans is not None else []
    subprocess.run([sys.executable, "-m", __name__, str(store), database, *extra], check=True, timeout=300,
                   env={**(env or os.environ), WINDOW_START_ENV: str(WINDOW_START_S)}, cwd=Path(__file__).resolve().parents[2])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
