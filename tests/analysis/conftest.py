"""Fixtures and seeding helpers for the analysis tests: data goes in through storage.writer, as the
collector's writer puts it there."""

from __future__ import annotations

import random

import pytest

from analysis.context import AnalysisContext
from meshscope.settings import ServerSettings
from meshscope.wire import LatencyRecord, ResourceSample
from storage.writer import insert_latency, insert_resources, insert_spans

NOW = 1_795_000_000 - 1_795_000_000 % 3600  # a fixed hour boundary: tests do not depend on the clock


def latency_records(samples, interval_s: int = 10) -> list[LatencyRecord]:
    """``samples``: iterable of (ts_s, service, instance, version, kind, endpoint, duration_ms, error,
    remote_service, database) -> one LatencyRecord per interval x key, as an agent reports them."""
    groups: dict[tuple, LatencyRecord] = {}
    for ts, service, instance, version, kind, endpoint, duration, error, remote, database in samples:
        start = int(ts) - int(ts) % interval_s
        key = (start, service, instance, version, kind, endpoint, remote, database)
        record = groups.get(key)
        if record is None:
            record = groups[key] = LatencyRecord(
                interval_start=start, interval_s=interval_s, service=service, instance=instance, version=version,
                kind=kind, endpoint=endpoint, method=endpoint.split(" ")[0], remote_service=remote, database=database)
        record.sketch.add(duration)
        record.errors += int(error)
    return list(groups.values())


def seed_latency(store, samples, interval_s: int = 10) -> list[LatencyRecord]:
    records = latency_records(samples, interval_s)
    insert_latency(store.client, store.database, records)
    return records


def seed_resources(store, samples) -> None:
    insert_resources(store.client, store.database, [ResourceSample(*s) for s in samples])


def zipkin_span(trace: int, service: str, name: str, ts_us: int, duration_us: int, *, kind="SERVER",
                remote: str | None = None, error: bool = False, version: str | None = None, span_id: int | None = None):
    span = {"traceId": f"{trace:016x}", "id": f"{span_id or trace:016x}", "kind": kind, "name": name,
            "timestamp": ts_us, "duration": duration_us, "localEndpoint": {"serviceName": service}}
    tags = {}
    if error:
        tags["error"] = "500"
    if version:
        tags["version"] = version
    if tags:
        span["tags"] = tags
    if remote:
        span["remoteEndpoint"] = {"serviceName": remote}
    return span


def seed_spans(store, spans) -> None:
    insert_spans(store.client, store.database, spans)


@pytest.fixture
def ctx(clickhouse, tmp_path):
    settings = ServerSettings(clickhouse_url=clickhouse.url, clickhouse_database=clickhouse.database,
                              apdex_threshold_ms=100.0, spool_dir=tmp_path / "spool")
    return AnalysisContext(clickhouse.client, clickhouse.database, settings)


@pytest.fixture
def rng():
    return random.Random(20261121)
