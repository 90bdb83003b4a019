"""Insert and query round trips of spans, latency distributions and resource samples."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC
from pathlib import Path

import pytest

from meshscope.sketch import LatencySketch, quantiles_from_buckets
from meshscope.wire import LatencyRecord, ResourceSample
from storage.writer import SPAN_COLUMNS, insert_latency, insert_resources, insert_spans, row_to_span

ZIPKIN_TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "zipkin-testdata"
TESTDATA_FILES = sorted(ZIPKIN_TESTDATA.glob("*.json"))
RECEIVED_US = 1_700_000_000_000_000  # fixed, so that a re-delivered span without timestamp is identical


def _load(path: Path) -> list[dict]:
    data = json.loads(path.read_text())
    return data if isinstance(data, list) else [data]


def _canonical(spans: list[dict]) -> list[str]:
    return sorted(json.dumps(span, sort_keys=True) for span in spans)


def _read_spans(store, suffix: str = "") -> list[dict]:
    sql = f"SELECT {', '.join(SPAN_COLUMNS)} FROM {store.database}.spans {suffix}"
    return [row_to_span(row) for row in store.client.query(sql).named_results()]


def test_testdata_is_there():
    assert len(TESTDATA_FILES) >= 6


@pytest.mark.parametrize("path", TESTDATA_FILES, ids=lambda path: path.stem)
def test_zipkin_spans_round_trip(store, path):
    spans = _load(path)
    insert_spans(store.client, store.database, spans, received_us=RECEIVED_US)
    assert _canonical(_read_spans(store)) == _canonical(spans)


def test_duplicate_spans_read_once(store):
    spans = [span for path in TESTDATA_FILES for span in _load(path)]
    insert_spans(store.client, store.database, spans, received_us=RECEIVED_US)
    insert_spans(store.client, store.database, spans, received_us=RECEIVED_US)  # at-least-once re-delivery
    distinct = len(set(_canonical(spans)))
    count = f"SELECT count() FROM {store.database}.spans"
    assert store.client.command(count) == 2 * len(spans)
    assert _canonical(_read_spans(store, "LIMIT 1 BY fingerprint")) == sorted(set(_canonical(spans)))
    store.client.command(f"OPTIMIZE TABLE {store.database}.spans FINAL")
    assert store.client.command(count) == distinct


def test_latency_merges_across_instances_within_one_percent(store):
    rng = random.Random(7)
    values = [rng.lognormvariate(3.0, 1.2) for _ in range(30_000)]  # milliseconds, long-tailed
    records = []
    for number in range(3):
        record = LatencyRecord(
            interval_start=1_700_000_000, interval_s=10, service="checkout", instance=f"checkout-{number}",
            version="1.0", kind="http.server", endpoint="POST /orders", method="POST", status_class="2xx",
        )
        for value in values[number::3]:
            record.sketch.add(value)
        record.errors = number
        records.append(record)
    insert_latency(store.client, store.database, records)
    insert_latency(store.client, store.database, records)  # at-least-once re-delivery

    assert store.client.command(f"SELECT count() FROM {store.database}.latency FINAL") == 3
    row = store.client.query(
        "SELECT sumMap(buckets), sum(zero_count), sum(count), sum(errors), min(min), max(max), any(scale) "
        f"FROM {store.database}.latency FINAL WHERE service = {{service:String}} AND endpoint = {{endpoint:String}}",
        parameters={"service": "checkout", "endpoint": "POST /orders"},
    ).result_rows[0]
    buckets, zero_count, count, errors, minimum, maximum, scale = row
    assert (count, errors, minimum, maximum) == (len(values), 3, min(values), max(values))

    merged = LatencySketch()
    for record in records:
        merged.merge(record.sketch)
    assert dict(buckets) == merged.buckets  # exactly the in-memory merge

    qs = [0.0, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0]
    estimates = quantiles_from_buckets(dict(buckets), zero_count, scale, qs, minimum, maximum)
    ordered = sorted(values)
    for q, estimate in zip(qs, estimates):
        exact = ordered[math.floor(q * (len(ordered) - 1))]
        assert abs(estimate - exact) <= 0.01 * exact, (q, estimate, exact)


def test_resource_samples_round_trip(store):
    samples = [
        ResourceSample(1_700_000_000_000 + 250 * i, "checkout", f"checkout-{i % 2}", "1.0", metric, value)
        for i, (metric, value) in enumerate([
            ("process.cpu.utilization", 0.25), ("process.memory.rss", 123_456_789.0),
            ("process.memory.limit", 2.0**31), ("health.up", 1.0), ("health.probe_ms", 3.5), ("telemetry.dropped", 0.0),
        ])
    ]
    insert_resources(store.client, store.database, samples)
    rows = store.client.query(
        f"SELECT ts, service, instance, version, metric, value FROM {store.database}.resource_samples ORDER BY ts"
    ).result_rows
    read = [
        ResourceSample(round(ts.replace(tzinfo=UTC).timestamp() * 1000), service, instance, version, metric, value)
        for ts, service, instance, version, metric, value in rows
    ]
    assert read == samples


def test_spans_without_timestamp_take_their_own_receipt_time(store):
    spans = [{"traceId": "1" * 32, "id": f"{n:016x}", "name": "no time"} for n in (1, 2)]
    spans.append({"traceId": "1" * 32, "id": "3" * 16, "timestamp": RECEIVED_US + 5})
    insert_spans(store.client, store.database, spans, received_us=[RECEIVED_US + 1, RECEIVED_US + 2, RECEIVED_US + 3])
    rows = store.client.query(f"SELECT id, ts_us, timestamp_us FROM {store.database}.spans ORDER BY id").result_rows
    assert rows == [(f"{1:016x}", RECEIVED_US + 1, 0), (f"{2:016x}", RECEIVED_US + 2, 0), ("3" * 16, RECEIVED_US + 5, RECEIVED_US + 5)]
    assert "received_us" not in spans[0]  # the caller's dicts are left alone


def test_strings_json_cannot_encode_are_still_stored(store):
    span = {"traceId": "1" * 32, "id": "2" * 16, "name": "lone \ud800 surrogate", "timestamp": RECEIVED_US,
            "tags": {"k": "v\x00\n\"'"}}
    insert_spans(store.client, store.database, [span])
    (name, tags), = store.client.query(f"SELECT name, tags FROM {store.database}.spans").result_rows
    assert name.startswith("lone ") and name.endswith(" surrogate")
    assert tags == {"k": "v\x00\n\"'"}
