"""The writer links a trace from the batch in memory when the store holds nothing more of it, and
reads the trace back otherwise: both give what the stored spans give."""

from __future__ import annotations

from collector.links import LinkSpan, aggregate, trace_links
from collector.writer import store_batch
from storage import zipkin_queries
from tests.collector.conftest import load_testdata

SAMPLES = load_testdata()
LINK_SPANS = zipkin_queries.link_spans


def _links_from_store(store, trace_id: str) -> dict:
    rows = LINK_SPANS(store.client, store.database, [trace_id])
    return aggregate(trace_links([LinkSpan._make(row[1:8]) for row in rows]))


def _stored_links(store, trace_id: str) -> dict:
    return zipkin_queries.previous_trace_links(store.client, store.database, [trace_id])[trace_id][1]


def test_batch_links_equal_the_stores(clickhouse, monkeypatch):
    read_back = []
    monkeypatch.setattr(zipkin_queries, "link_spans", lambda *a: read_back.append(a[2]) or LINK_SPANS(*a))
    for name in ("messaging", "skew", "zipkin2-client", "simple-db-p6"):
        spans = SAMPLES[name]
        trace_id = spans[0]["traceId"]
        store_batch(clickhouse.client, clickhouse.database, spans)  # the whole trace in one batch
        assert _stored_links(clickhouse, trace_id) == _links_from_store(clickhouse, trace_id), name
        store_batch(clickhouse.client, clickhouse.database, spans)  # re-delivered: still only the batch's spans
    assert read_back == []


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
