"""The writer links a trace from the batch in memory when the store held nothing of it before the
batch, and with the spans stored earlier otherwise: both give what the stored spans give, and the
hourly sums count each call once however the trace arrives."""

from __future__ import annotations

from collector import writer
from collector.links import LinkSpan, aggregate, trace_links
from collector.writer import store_batch
from storage import zipkin_queries
from tests.collector.conftest import load_testdata

SAMPLES = load_testdata()


def _links_from_store(store, trace_id: str) -> dict:
    rows = zipkin_queries.link_spans(store.client, store.database, [trace_id])
    return aggregate(trace_links([LinkSpan._make(row[1:8]) for row in rows]))


def _stored_links(store, trace_id: str) -> dict:
    return zipkin_queries.previous_trace_links(store.client, store.database, [trace_id])[trace_id][1]


def test_batch_links_equal_the_stores(clickhouse, monkeypatch):
    found_stored = []
    stored_link_spans = writer.stored_link_spans
    monkeypatch.setattr(writer, "stored_link_spans", lambda *a: found_stored.append(stored_link_spans(*a)) or found_stored[-1])
    for name in ("messaging", "skew", "zipkin2-client", "simple-db-p6"):
        spans = SAMPLES[name]
        trace_id = spans[0]["traceId"]
        store_batch(clickhouse.client, clickhouse.database, spans)  # the whole trace in one batch
        assert found_stored[-1] == {}, name  # linked from the batch alone
        assert _stored_links(clickhouse, trace_id) == _links_from_store(clickhouse, trace_id), name
        store_batch(clickhouse.client, clickhouse.database, spans)  # re-delivered: linked with what was stored
        assert set(found_stored[-1]) == {trace_id}, name
        assert _stored_links(clickhouse, trace_id) == _links_from_store(clickhouse, trace_id), name


def _hourly_links(store) -> dict:
    return {(link["parent"], link["child"]): (link["callCount"], link.get("errorCount", 0))
            for link in zipkin_queries.dependencies(store.client, store.database, 0, 2**62)}


def test_hourly_sums_count_each_call_once(clickhouse):
    spans = SAMPLES["skew"]
    trace_id = spans[0]["traceId"]
    store_batch(clickhouse.client, clickhouse.database, spans[:1])
    store_batch(clickhouse.client, clickhouse.database, spans)  # the rest, with the first again
    store_batch(clickhouse.client, clickhouse.database, spans[1:])  # a re-delivery
    expected = {link: tuple(counts) for link, counts in _links_from_store(clickhouse, trace_id).items()}
    assert expected and _hourly_links(clickhouse) == expected


def test_a_trace_split_over_batches_is_read_back(clickhouse):
    spans = SAMPLES["skew"]
    trace_id = spans[0]["traceId"]
    for span in spans:
        store_batch(clickhouse.client, clickhouse.database, [span])
    assert _stored_links(clickhouse, trace_id) == _links_from_store(clickhouse, trace_id)
    assert _stored_links(clickhouse, trace_id)  # the skew trace has links


def test_many_traces_in_one_batch(clickhouse):
    # more trace ids than one query may inline (zipkin_queries chunks the id lists)
    spans = []
    for n in range(1, 12_001):
        trace_id = f"{n:032x}"
        spans.append({"traceId": trace_id, "id": f"{n:016x}", "kind": "SERVER", "timestamp": 1_700_000_000_000_000 + n,
                      "localEndpoint": {"serviceName": "b"}, "remoteEndpoint": {"serviceName": "a"}})
    store_batch(clickhouse.client, clickhouse.database, spans)
    assert len(zipkin_queries.previous_trace_links(clickhouse.client, clickhouse.database, [s["traceId"] for s in spans])) == 12_000
