"""A real `meshscope serve` (uvicorn in a subprocess, Kafka, writer thread, its own chdb store):
OpenTelemetry's own exporters send to it and the spans are found through the query API; poison
messages are parked; /metrics reports the path."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid

import httpx
import orjson
from kafka import KafkaProducer

from collector.decoders import json_v2
from meshscope.wire import decode_spans, encode_spans
from tests.collector.conftest import REPO, wait_for
from tests.collector.zipkin_spec import V2, check

# The OpenTelemetry Zipkin proto exporter (1.45.1, installed with --no-deps) pins protobuf~=3.12 and
# ships a zipkin_pb2 generated for protobuf 3, which protobuf 7 refuses to load (and mis-reads under
# the pure-Python implementation). The exporter's code is used unchanged; only its generated module
# is replaced by the one compiled from the same zipkin.proto by a current protoc (the collector's).
CLIENT = textwrap.dedent("""
    import sys
    from collector.decoders import zipkin_pb2
    sys.modules["opentelemetry.exporter.zipkin.proto.http.v2.gen.zipkin_pb2"] = zipkin_pb2
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import SpanKind
    from opentelemetry.exporter.zipkin.json import ZipkinExporter as ZipkinJson
    from opentelemetry.exporter.zipkin.proto.http import ZipkinExporter as ZipkinProto
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    base, tag = sys.argv[1], sys.argv[2]
    exporters = {
        "zipkin-json": ZipkinJson(endpoint=base + "/api/v2/spans"),
        "zipkin-proto": ZipkinProto(endpoint=base + "/api/v2/spans"),
        "otlp": OTLPSpanExporter(endpoint=base + "/v1/traces"),
    }
    for name, exporter in exporters.items():
        provider = TracerProvider(resource=Resource.create({"service.name": f"{name}-{tag}"}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("meshscope-test")
        with tracer.start_as_current_span("GET /checkout", kind=SpanKind.SERVER) as root:
            root.set_attribute("http.method", "GET")
            with tracer.start_as_current_span("select orders", kind=SpanKind.CLIENT) as child:
                child.set_attribute("peer.service", "orders-db")
        provider.shutdown()
        print(name, "sent", flush=True)
""")


def test_opentelemetry_sdk_exporters(server):
    tag = uuid.uuid4().hex[:6]
    result = subprocess.run([sys.executable, "-c", CLIENT, server.url, tag], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for exporter in ("zipkin-json", "zipkin-proto", "otlp"):
            service = f"{exporter}-{tag}"
            traces = wait_for(lambda: client.get("/api/v2/traces", params={"serviceName": service}).json(), timeout=30)
            response = client.get("/api/v2/traces", params={"serviceName": service})
            check(response, V2)
            assert len(traces) == 1
            spans = {span["name"]: span for span in traces[0]}
            assert set(spans) == {"get /checkout", "select orders"}, traces
            assert spans["get /checkout"]["kind"] == "SERVER"
            assert spans["select orders"]["kind"] == "CLIENT"
            assert spans["select orders"]["parentId"] == spans["get /checkout"]["id"]
            assert spans["select orders"]["remoteEndpoint"]["serviceName"] == "orders-db"
            assert service in client.get("/api/v2/services").json()
            trace_id = traces[0][0]["traceId"]
            assert len(client.get(f"/zipkin/api/v2/trace/{trace_id}").json()) == 2
            links = client.get("/api/v2/dependencies", params={"endTs": 4102444800000, "lookback": 4102444800000}).json()
            assert {"parent": service, "child": "orders-db", "callCount": 1} in links


def test_poison_messages_are_parked_and_do_not_block(server, kafka_broker):
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    before = _metric(server, "meshscope_messages_parked_total")
    for partition in range(4):  # every partition gets garbage, then a good span follows
        producer.send("meshscope.spans", value=b"\xff not protobuf \x00", partition=partition)
    producer.flush()
    producer.close()
    trace_id = uuid.uuid4().hex
    span = {"traceId": trace_id, "id": trace_id[:16], "name": "after-poison", "timestamp": 1700000000000000,
            "duration": 5, "localEndpoint": {"serviceName": "poison-test"}}
    response = httpx.post(server.url + "/api/v2/spans", content=orjson.dumps([span]), headers={"content-type": "application/json"})
    assert response.status_code == 202
    wait_for(lambda: httpx.get(f"{server.url}/api/v2/trace/{trace_id}").status_code == 200, timeout=30)
    wait_for(lambda: _metric(server, "meshscope_messages_parked_total") >= before + 4, timeout=30)
    text = httpx.get(server.url + "/metrics").text
    for name in ("meshscope_spans_received_total", "meshscope_spans_written_total", "meshscope_consumer_lag",
                 "meshscope_spans_spooled_total", "meshscope_spans_rejected_total"):
        assert f"\n{name} " in text
    assert _metric(server, "meshscope_writer_partitions") >= 1  # it has joined its group: it wrote the span


def _metric(server, name: str) -> float:
    for line in httpx.get(server.url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} missing")


def test_spans_are_stored_as_decoding_their_message_gives(server):
    # The writer of `serve` takes back the spans its process spooled (collector.recent) instead of
    # decoding them; what it stores must be what decoding the Kafka message would have given,
    # whether the spans survive the OTLP round trip unchanged or not.
    base = uuid.uuid4().hex[:24]
    local = {"serviceName": "Recent-Test", "ipv4": "10.0.0.1", "port": 8080}
    spans = [
        {"traceId": (base + "00000001").upper(), "id": "00000000000000A1", "kind": "SERVER", "name": "GET /x",
         "timestamp": 1_700_000_000_000_000, "duration": 1500, "localEndpoint": local, "debug": True,
         "annotations": [{"timestamp": 1_700_000_000_000_100, "value": "ws"}], "tags": {"http.method": "GET", "n": 1}},
        {"traceId": base + "00000001", "id": "00000000000000a2", "parentId": "00000000000000a1", "kind": "CLIENT",
         "timestamp": 1_700_000_000_000_010, "duration": 10, "localEndpoint": local, "tags": {"peer.service": "Orders-DB"}},
        {"traceId": base + "00000002", "id": "00000000000000a3", "timestamp": 1_700_000_000_000_020,
         "localEndpoint": local, "tags": {"zipkin.remote.service_name": "sneaky", "error": "boom"}},
        {"traceId": "0000000000000000" + base[:16], "id": "00000000000000a4", "timestamp": 1_700_000_000_000_030,
         "localEndpoint": local, "remoteEndpoint": {"serviceName": "b", "ipv6": "::1"}, "shared": True},
    ]
    # the spans that survive the OTLP round trip unchanged come back to the writer undecoded (their
    # own request: the others make their message decode); the others decode
    taken_before = _metric(server, "meshscope_span_messages_taken_back_total")
    for batch in (spans[0:1] + spans[3:4], spans[1:3]):
        response = httpx.post(server.url + "/api/v2/spans", content=orjson.dumps(batch), headers={"content-type": "application/json"})
        assert response.status_code == 202
    body = orjson.dumps(spans)
    normalized = json_v2.decode(body).spans
    expected: dict[str, list[dict]] = {}
    for span in decode_spans(encode_spans(normalized)):
        expected.setdefault(span["traceId"], []).append(span)
    assert len(expected) == 3
    for trace_id, trace in expected.items():
        stored = wait_for(lambda: (r := httpx.get(f"{server.url}/api/v2/trace/{trace_id}")).status_code == 200
                          and len(r.json()) == len(trace) and r.json())
        assert sorted(stored, key=lambda s: s["id"]) == sorted(trace, key=lambda s: s["id"])
    assert _metric(server, "meshscope_span_messages_taken_back_total") >= taken_before + 1
