"""The ingestion and query API in-process (FastAPI TestClient) over a real embedded ClickHouse:
Zipkin's sample spans in every format read back as Zipkin returns them, dependency links as
Zipkin derives them, Zipkin's defaults and errors, and every response checked against Zipkin's
own API spec."""

from __future__ import annotations

import gzip

import orjson
import pytest

from tests.collector import formats
from tests.collector.conftest import load_testdata
from tests.collector.zipkin_spec import V1, V2, check

SAMPLES = load_testdata()
FAR_END_MS = 4102444800000  # 2100-01-01
ALL_TIME = {"endTs": FAR_END_MS, "lookback": FAR_END_MS - 1}


def _key(span: dict) -> tuple:
    return (span["id"], span.get("kind", ""), bool(span.get("shared")), span.get("localEndpoint", {}).get("serviceName", ""))


def _sorted(spans: list[dict]) -> list[dict]:
    return sorted(spans, key=_key)


def post(api, fmt: str, spans: list[dict], **headers):
    if fmt == "json_v2":
        return api.post("/api/v2/spans", content=orjson.dumps(spans), headers={"content-type": "application/json", **headers})
    if fmt == "proto3":
        return api.post("/api/v2/spans", content=formats.to_proto3(spans), headers={"content-type": "application/x-protobuf", **headers})
    if fmt == "json_v1":
        return api.post("/api/v1/spans", content=orjson.dumps([formats.to_v1(s) for s in spans]),
                        headers={"content-type": "application/json", **headers})
    if fmt == "thrift":
        return api.post("/api/v1/spans", content=formats.to_thrift([formats.to_v1(s) for s in spans]),
                        headers={"content-type": "application/x-thrift", **headers})
    if fmt == "otlp_proto":
        return api.post("/v1/traces", content=formats.to_otlp(spans), headers={"content-type": "application/x-protobuf", **headers})
    if fmt == "otlp_json":
        return api.post("/v1/traces", content=formats.to_otlp_json(spans), headers={"content-type": "application/json", **headers})
    raise ValueError(fmt)


FORMATS = ["json_v2", "proto3", "json_v1", "thrift", "otlp_proto", "otlp_json"]
# Zipkin's DependencyLinker on each sample trace
EXPECTED_LINKS = {
    "envoy": [],
    "messaging": [{"parent": "frontend", "child": "rabbitmq", "callCount": 1}, {"parent": "rabbitmq", "child": "backend", "callCount": 1}],
    "simple-db-p6": [{"parent": "bootifulmeters", "child": "app_db", "callCount": 4}],
    "skew": [{"parent": "servicea", "child": "serviceb", "callCount": 1}],
    "zipkin2-chinese": [{"parent": "订单维护服务", "child": "个人信息服务", "callCount": 1, "errorCount": 1}],
    "zipkin2-client": [{"parent": "frontend", "child": "backend", "callCount": 1}],
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_read_back_as_zipkin_returns_it(api, name, fmt):
    spans = SAMPLES[name]
    response = post(api, fmt, spans)
    assert response.status_code == 202, response.text
    if not fmt.startswith("otlp"):  # OTLP is not part of Zipkin's spec
        check(response, V1 if fmt in ("json_v1", "thrift") else V2)
    trace_id = spans[0]["traceId"]
    for prefix in ("/api/v2", "/zipkin/api/v2"):
        got = api.get(f"{prefix}/trace/{trace_id}")
        assert got.status_code == 200
        check(got)
        assert _sorted(got.json()) == _sorted(spans)
    dependencies = api.get("/api/v2/dependencies", params=ALL_TIME)
    check(dependencies)
    assert dependencies.json() == EXPECTED_LINKS[name]


def test_duplicate_delivery_shows_once(api):
    spans = SAMPLES["messaging"]
    for _ in range(3):
        assert post(api, "json_v2", spans).status_code == 202
    got = api.get(f"/api/v2/trace/{spans[0]['traceId']}").json()
    assert _sorted(got) == _sorted(spans)
    assert api.get("/api/v2/dependencies", params=ALL_TIME).json() == EXPECTED_LINKS["messaging"]


def test_trace_split_across_batches_links_once(api):
    spans = SAMPLES["skew"]
    for span in spans:  # each span in its own request, as separate reporters send them
        assert post(api, "json_v2", [span]).status_code == 202
    assert api.get("/api/v2/dependencies", params=ALL_TIME).json() == EXPECTED_LINKS["skew"]


def test_names_and_autocomplete(api):
    for name in ("messaging", "simple-db-p6", "zipkin2-client"):
        assert post(api, "json_v2", SAMPLES[name]).status_code == 202
    for path, params, expected in [
        ("/services", {}, ["backend", "bootifulmeters", "frontend"]),
        ("/spans", {"serviceName": "frontend"}, ["get", "get /", "publish"]),
        ("/spans", {"serviceName": "FRONTEND"}, ["get", "get /", "publish"]),
        ("/remoteServices", {"serviceName": "frontend"}, ["backend", "rabbitmq"]),
        ("/remoteServices", {"serviceName": "nobody"}, []),
    ]:
        for prefix in ("/api/v2", "/zipkin/api/v2"):
            response = api.get(prefix + path, params=params)
            check(response)
            assert response.json() == expected, (path, params)
    keys = api.get("/api/v2/autocompleteKeys")
    check(keys)
    assert "http.method" in keys.json()
    values = api.get("/api/v2/autocompleteValues", params={"key": "http.method"})
    check(values)
    assert "GET" in values.json()


def test_search(api):
    for name in SAMPLES:
        if name != "zipkin2-chinese":  # shares its trace and span id with zipkin2-client
            assert post(api, "json_v2", SAMPLES[name]).status_code == 202

    def trace_ids(**params):
        response = api.get("/api/v2/traces", params={**ALL_TIME, **params})
        assert response.status_code == 200, response.text
        check(response)
        return [trace[0]["traceId"] for trace in response.json()]

    messaging, db = SAMPLES["messaging"][0]["traceId"], SAMPLES["simple-db-p6"][0]["traceId"]
    client, skew = SAMPLES["zipkin2-client"][0]["traceId"], SAMPLES["skew"][0]["traceId"]
    assert trace_ids(serviceName="frontend") == [messaging, client]  # most recent first
    assert trace_ids(serviceName="frontend", spanName="publish") == [messaging]
    assert trace_ids(serviceName="frontend", spanName="all") == [messaging, client]
    assert trace_ids(serviceName="frontend", remoteServiceName="backend") == [client]
    assert trace_ids(serviceName="bootifulmeters", minDuration=6000) == [db]
    assert trace_ids(serviceName="bootifulmeters", minDuration=6000, maxDuration=6100) == [db]
    assert trace_ids(serviceName="bootifulmeters", minDuration=7000, maxDuration=8000) == []
    assert trace_ids(annotationQuery="http.path=/api") == [client]
    assert trace_ids(annotationQuery="foo") == [client]  # an annotation value
    assert trace_ids(annotationQuery="rabbit.queue and rabbit.exchange=") == [messaging]  # tag keys
    assert trace_ids(serviceName="serviceb") == [skew]
    assert len(trace_ids(limit=2)) == 2
    assert trace_ids(serviceName="frontend", endTs=1521186011926) == [client]  # before messaging
    assert trace_ids(serviceName="frontend", endTs=1521186011930, lookback=60000) == [messaging]
    # Zipkin's defaults: endTs = now, lookback = 1 day: samples from years ago are not found
    default = api.get("/api/v2/traces", params={"serviceName": "frontend"})
    check(default)
    assert default.json() == []
    many = api.get("/api/v2/traceMany", params={"traceIds": f"{messaging},{db},{'1' * 16}"})
    check(many)
    assert sorted(trace[0]["traceId"] for trace in many.json()) == sorted([messaging, db])


@pytest.mark.parametrize("path, params, status", [
    ("/trace/" + "a" * 16, {}, 404),
    ("/trace/not-hex", {}, 400),
    ("/trace/" + "a" * 33, {}, 400),
    ("/traceMany", {"traceIds": "a" * 16}, 400),
    ("/traceMany", {"traceIds": f"{'a' * 16},{'A' * 16}"}, 400),
    ("/traceMany", {}, 400),
    ("/spans", {}, 400),
    ("/remoteServices", {}, 400),
    ("/autocompleteValues", {}, 400),
    ("/dependencies", {}, 400),
    ("/dependencies", {"endTs": "x"}, 400),
    ("/traces", {"maxDuration": 5}, 400),
    ("/traces", {"minDuration": 9, "maxDuration": 5}, 400),
    ("/traces", {"limit": 0}, 400),
    ("/traces", {"endTs": -1}, 400),
    ("/traces", {"lookback": "soon"}, 400),
])
def test_zipkin_errors(api, path, params, status):
    response = api.get("/api/v2" + path, params=params)
    assert response.status_code == status, response.text
    if status == 404:
        check(response)


def test_config_json(api):
    config = api.get("/zipkin/config.json").json()
    assert config["dependency"] == {"enabled": True, "lowErrorRate": 0.5, "highErrorRate": 0.75}
    assert {"environment", "queryLimit", "defaultLookback", "searchEnabled", "logsUrl", "supportUrl",
            "archivePostUrl", "archiveUrl"} <= set(config)


# ------------------------------------------------------------------------------ bad input


def test_gzip_body(api):
    spans = SAMPLES["skew"]
    response = api.post("/api/v2/spans", content=gzip.compress(orjson.dumps(spans)),
                        headers={"content-type": "application/json", "content-encoding": "gzip"})
    assert response.status_code == 202
    assert len(api.get(f"/api/v2/trace/{spans[0]['traceId']}").json()) == len(spans)


@pytest.mark.parametrize("path, content_type, body", [
    ("/api/v2/spans", "application/json", b"[{"),
    ("/api/v2/spans", "application/json", b'"spans"'),
    ("/api/v2/spans", "application/x-protobuf", b"\x0a\xff\xff\xff"),
    ("/api/v1/spans", "application/json", b"{not json"),
    ("/api/v1/spans", "application/x-thrift", b"\x0c\x00\x00\x00\x05\x01"),
    ("/api/v1/spans", "application/x-thrift", b"garbage"),
    ("/v1/traces", "application/x-protobuf", b"\x0a\x05\x0a\x03"),
    ("/v1/traces", "application/json", b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}'),
    ("/api/v2/spans", "application/json", gzip.compress(b"[]")[:-4]),
])
def test_malformed_bodies_are_400(api, path, content_type, body):
    headers = {"content-type": content_type}
    if body.startswith(b"\x1f\x8b"):
        headers["content-encoding"] = "gzip"
    response = api.post(path, content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"]


def test_wrong_content_type_is_415(api):
    response = api.post("/api/v2/spans", content=b"x", headers={"content-type": "application/x-thrift"})
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]


def test_body_limits_are_413(api):
    big = orjson.dumps([SAMPLES["envoy"][0]] * 200)  # > 64 KiB, the fixture's limit
    assert api.post("/api/v2/spans", content=big, headers={"content-type": "application/json"}).status_code == 413
    bomb = gzip.compress(b"[" + b" " * (10 * 1024 * 1024) + b"]")
    response = api.post("/api/v2/spans", content=bomb, headers={"content-type": "application/json", "content-encoding": "gzip"})
    assert response.status_code == 413


def test_partial_batch_says_what_was_rejected(api):
    good = SAMPLES["zipkin2-client"][0]
    bad_ids = {**good, "id": "xyz"}
    bad_trace = {**good, "traceId": "1234"}
    bad_kind = {**good, "kind": "SIDEWAYS"}
    response = post(api, "json_v2", [bad_ids, good, bad_trace, bad_kind])
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 1 and body["rejectedCount"] == 3
    assert body["rejected"][0].startswith("span 0: id") and "span 2: traceId" in body["rejected"][1]
    assert "SIDEWAYS" in body["rejected"][2]
    all_bad = post(api, "json_v2", [bad_ids])
    assert all_bad.status_code == 400 and "span 0" in all_bad.json()["error"]


def test_ids_are_normalized_as_zipkin_does(api):
    span = {"traceId": "0000000000000000ABCDEF0123456789", "id": "ABCDEF0123456789", "name": "GET /Foo",
            "localEndpoint": {"serviceName": "Front", "ipv6": "::ffff:10.0.0.1"}, "timestamp": 1600000000000000, "duration": 0}
    assert post(api, "json_v2", [span]).status_code == 202
    got = api.get("/api/v2/trace/abcdef0123456789").json()
    assert got == [{"traceId": "abcdef0123456789", "id": "abcdef0123456789", "name": "get /foo", "timestamp": 1600000000000000,
                    "localEndpoint": {"serviceName": "front", "ipv4": "10.0.0.1"}}]


def test_bearer_token(clickhouse, tmp_path):
    from fastapi.testclient import TestClient

    from collector.app import create_app
    from collector.metrics import Metrics
    from meshscope.settings import ServerSettings
    from tests.collector.conftest import DirectSink

    settings = ServerSettings(clickhouse_url=clickhouse.url, clickhouse_database=clickhouse.database, auth_token="s3cret")
    app = create_app(settings, DirectSink(clickhouse.client, clickhouse.database), lambda: clickhouse.client, Metrics())
    with TestClient(app) as client:
        assert client.get("/api/v2/services").status_code == 401
        assert client.get("/api/v2/services", headers={"authorization": "Bearer nope"}).status_code == 401
        assert client.post("/api/v2/spans", content=b"[]").status_code == 401
        assert client.get("/api/v2/services", headers={"authorization": "Bearer s3cret"}).status_code == 200
        assert client.get("/zipkin/config.json").status_code == 200
