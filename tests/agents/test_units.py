"""Pure pieces: trace-context headers, route normalization, recorder, spool, config."""

from __future__ import annotations

import pytest

from agents import routes, tracecontext
from agents.config import build, parse_listener, read_yaml
from agents.errors import ConfigError, SpoolError
from agents.spool import Message, Spool
from agents.telemetry import OTHER, Recorder
from meshscope.retention import Retention
from meshscope.settings import SettingsError

TRACE = "463ac35c9f6413ad48485a3953bb6124"
SPAN = "a2fb4a1d1a96d312"
PARENT = "0020000000000001"


def head(*lines: str) -> bytes:
    return ("GET / HTTP/1.1\r\n" + "".join(f"{line}\r\n" for line in lines) + "\r\n").encode()


def test_extract_b3_multi_single_and_w3c():
    multi = tracecontext.extract(head(f"X-B3-TraceId: {TRACE}", f"X-B3-SpanId: {SPAN}", f"X-B3-ParentSpanId: {PARENT}", "X-B3-Sampled: 1"))
    assert (multi.trace_id, multi.span_id, multi.parent_id, multi.sampled) == (TRACE, SPAN, PARENT, True)
    single = tracecontext.extract(head(f"b3: {TRACE}-{SPAN}-d-{PARENT}"))
    assert (single.trace_id, single.span_id, single.parent_id, single.sampled, single.debug) == (TRACE, SPAN, PARENT, True, True)
    w3c = tracecontext.extract(head(f"traceparent: 00-{TRACE}-{SPAN}-00"))
    assert (w3c.trace_id, w3c.span_id, w3c.sampled, w3c.formats) == (TRACE, SPAN, False, tracecontext.W3C)
    deny = tracecontext.extract(head("b3: 0"))
    assert (deny.trace_id, deny.sampled) == ("", False)
    assert tracecontext.extract(head("Host: x", "Cookie: b3=1")) is None
    assert tracecontext.extract(head("traceparent: 00-zz-yy-01")) is None
    sixty_four = tracecontext.extract(head(f"X-B3-TraceId: {TRACE[16:]}", f"X-B3-SpanId: {SPAN}"))
    assert (sixty_four.trace_id, sixty_four.sampled) == (TRACE[16:], None)


@pytest.mark.parametrize(("line", "may"), [
    ("X-B3-TraceId: 1", True), ("x-b3-sampled: 0", True), ("B3: 0", True), ("TraceParent: 00", True),
    ("TRACEPARENT: 00", True), ("tRaCePaReNt: 00", True), ("Cookie: b3=1", True),  # extract says no to this one
    ("Host: x", False), ("Trace: a", False), ("X-Traceparen: t", False), ("Accept: b/3", False), ("Content-Type: b", False),
])
def test_the_quick_context_check_never_misses_a_context(line, may):
    """may_carry_context decides as the lowered substring check (a C loop when compiled)."""
    request = head(line)
    assert tracecontext.may_carry_context(request) is may
    assert may == (b"b3" in request.lower() or b"traceparent" in request.lower())
    assert tracecontext.may_carry_context(request[:-len(line) - 4]) is False  # cut before the line
    assert tracecontext.may_carry_context(b"") is False and tracecontext.may_carry_context(b"b") is False


def test_rewrite_replaces_only_trace_headers():
    original = head("Host: x", f"X-B3-TraceId: {TRACE}", f"X-B3-SpanId: {SPAN}", "Accept: */*")
    headers = tracecontext.headers_for(TRACE, "1111111111111111", SPAN, True, False, tracecontext.B3_MULTI)
    out = tracecontext.rewrite(original, headers, had_context=True)
    assert out == head("Host: x", "Accept: */*", f"X-B3-TraceId: {TRACE}", "X-B3-SpanId: 1111111111111111", f"X-B3-ParentSpanId: {SPAN}", "X-B3-Sampled: 1")
    inserted = tracecontext.rewrite(head("Host: x"), b"b3: 0\r\n", had_context=False)
    assert inserted == head("Host: x", "b3: 0")
    both = tracecontext.headers_for(TRACE, SPAN, "", False, False, tracecontext.B3_MULTI | tracecontext.W3C)
    assert tracecontext.extract(head(both.decode().rstrip("\r\n"))).span_id == SPAN


@pytest.mark.parametrize(("target", "route"), [
    (b"/users/42/orders/7", "/users/{id}/orders/{id}"),
    (b"/items/3fa85f64-5717-4562-b3fc-2c963f66afa6?x=1", "/items/{uuid}"),
    (b"/blob/0123456789abcdef0123", "/blob/{id}"),
    (b"/static/app.js", "/static/app.js"),
    (b"/", "/"),
    (b"*", "*"),
    (b"http://host:80/a/1", "/a/{id}"),
    (b"/s/aZ3kP9qLm2Xv7Rt5Yw1B", "/s/{id}"),
])
def test_routes_collapse_ids(target, route):
    assert routes.normalize(target) == route


def test_recorder_caps_endpoints_and_counts_every_observation():
    clock = [1000.0]
    recorder = Recorder("svc", "i1", "v1", interval_s=10, max_endpoints=2, clock=lambda: clock[0])
    for endpoint in ("GET /a", "GET /b", "GET /c", "GET /a"):
        recorder.observe(kind="http.server", endpoint=endpoint, method="GET", status_class="2xx", remote_service="",
                         database="", duration_ms=1.0, error=False)
    clock[0] = 1010.0
    recorder.rotate()
    records = {r.endpoint: r.sketch.count for r in recorder.take_closed()}
    assert records == {"GET /a": 2, "GET /b": 1, OTHER: 1}
    assert recorder.take_closed() == []


def test_sampling_is_consistent_on_the_trace_id():
    recorder = Recorder("s", "i", "v", sample_rate=0.25)
    ids = [tracecontext.new_trace_id() for _ in range(4000)]
    decisions = [recorder.should_sample(t, None) for t in ids]
    assert 0.2 < sum(decisions) / len(ids) < 0.3
    assert decisions == [Recorder("s2", "i", "v", sample_rate=0.25).should_sample(t, None) for t in ids]
    assert recorder.should_sample(ids[0], True) and not recorder.should_sample(ids[0], False)


def test_spool_keeps_order_across_segments_and_restarts(tmp_path):
    spool = Spool(tmp_path, max_bytes=1_000_000, segment_bytes=300)
    sent = [Message("t", f"k{i}".encode(), bytes([i]) * 50, items=i + 1) for i in range(20)]
    assert spool.add(sent) == []
    assert len(spool.segments()) > 1
    position, seen = spool.start(), []
    while records := spool.read(position, 7):
        seen += [message for _, message in records]
        position = records[-1][0]
    assert seen == sent
    with pytest.raises(SpoolError):
        Spool(tmp_path, max_bytes=1_000_000)
    spool.close()
    # nothing was released: a restarted agent sends it all again
    reopened = Spool(tmp_path, max_bytes=1_000_000, segment_bytes=300)
    retention = Retention(reopened, "", None)
    records = reopened.read(retention.cursor, 100)
    assert [message for _, message in records] == sent
    for position, message in records:
        assert retention.acknowledged(position, message.topic, None, None)
    retention.maybe_release(force=True)
    assert reopened.size_bytes == 0 and not retention.pending()
    reopened.close()


def test_spool_refuses_beyond_its_limit(tmp_path):
    spool = Spool(tmp_path, max_bytes=1024)
    refused = spool.add([Message("t", b"k", f"{i}".encode() * 400, items=3) for i in range(4)])
    assert [m.value[:1] for m in refused] == [b"2", b"3"]
    assert len(spool.read(spool.start(), 10)) == 2
    spool.close()


def test_spool_cuts_a_torn_tail(tmp_path):
    spool = Spool(tmp_path, max_bytes=100_000)
    spool.add([Message("t", b"a", b"1"), Message("t", b"b", b"2")])
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    segment.write_bytes(segment.read_bytes()[:-3])
    spool = Spool(tmp_path, max_bytes=100_000)
    assert [m.key for _, m in spool.read(spool.start(), 10)] == [b"a"]
    spool.close()


def test_listener_specs_and_errors():
    spec = parse_listener("payment=127.0.0.1:7001=payment.internal:80/http", "outbound")
    assert (spec.name, spec.listen, spec.upstream, spec.protocol) == ("payment", "127.0.0.1:7001", "payment.internal:80", "http")
    assert parse_listener("0.0.0.0:8080=127.0.0.1:18080", "inbound").protocol == "http"
    for bad, direction in [("127.0.0.1:7001=x:80", "outbound"), ("a=b=c=d", "inbound"), ("1.2.3.4:x=y:1", "inbound"), ("a:1=b:2/ftp", "inbound")]:
        with pytest.raises(ConfigError):
            parse_listener(bad, direction)


def test_yaml_config_matches_flags_and_flags_win(tmp_path, monkeypatch):
    monkeypatch.delenv("MESHSCOPE_SAMPLE_RATE", raising=False)
    path = tmp_path / "agent.yaml"
    path.write_text(
        "service: orders\nversion: v2\nsample_rate: 0.5\n"
        "inbound:\n  - 0.0.0.0:8080=127.0.0.1:18080/http\n"
        "outbound:\n  - {name: payment, listen: '127.0.0.1:7001', upstream: 'payment.internal:80'}\n"
    )
    settings, listeners = build({"agent_config": str(path), "sample_rate": "0.25"})
    assert (settings.service, settings.version, settings.sample_rate) == ("orders", "v2", 0.25)
    assert [(l.direction, l.name, l.upstream) for l in listeners] == [("inbound", "", "127.0.0.1:18080"), ("outbound", "payment", "payment.internal:80")]
    assert settings.instance
    path.write_text("service: orders\nbogus: 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'bogus'"):
        build({"agent_config": str(path)})
    with pytest.raises(SettingsError, match="MESHSCOPE_SERVICE"):
        build({"inbound": ["0.0.0.0:1=127.0.0.1:2"]})
    with pytest.raises(ConfigError, match="cannot read"):
        read_yaml(tmp_path / "missing.yaml")


def test_cli_errors_are_one_line(capsys, tmp_path):
    from agents.cli import run

    assert run(["--service", "x", "--inbound", "nonsense"]) == 2
    assert run(["--nope"]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("service: [unclosed\n")
    assert run(["--config", str(bad)]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("meshscope agent: ") for line in errors)
    assert "Traceback" not in "".join(errors)


def test_outbound_observer_rewrites_the_context_in_the_format_it_came_in():
    from agents.http_observer import HttpObserver
    from agents.observer import ListenerContext

    recorder = Recorder("front", "i1", "v1", sample_rate=1.0)
    recorder.track_inbound = False
    context = ListenerContext("front", "i1", "v1", "outbound", "back", "127.0.0.1:7001", "back.internal:80", "http")
    observer = HttpObserver(context, recorder)
    request = f"GET /x HTTP/1.1\r\nHost: back\r\nb3: {TRACE}-{SPAN}-1\r\nAccept: */*\r\n\r\n".encode()
    forwarded = observer.client_data(request, 1_000)
    lines = forwarded.split(b"\r\n")
    (b3,) = [line for line in lines if line.startswith(b"b3: ")]
    trace_id, span_id, flag, parent = b3[4:].decode().split("-")
    assert (trace_id, flag, parent) == (TRACE, "1", SPAN) and span_id != SPAN
    assert forwarded.replace(b3 + b"\r\n", b"") == request.replace(f"b3: {TRACE}-{SPAN}-1\r\n".encode(), b"")
    observer.server_data(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n", 3_000_000)
    recorder.account_pending()
    (span,) = list(recorder.spans)
    assert (span["kind"], span["traceId"], span["id"], span["parentId"]) == ("CLIENT", TRACE, span_id, SPAN)
    assert span["remoteEndpoint"] == {"serviceName": "back", "port": 80}
    assert span["tags"]["error"] == "503" and span["duration"] == 2999


def test_example_config_file_is_valid():
    from pathlib import Path

    import agents

    settings, listeners = build({"agent_config": str(Path(agents.__file__).parent / "agent.example.yaml")})
    assert settings.service == "orders" and settings.health_path == "/healthz"
    assert [(l.direction, l.name, l.protocol) for l in listeners] == [
        ("inbound", "", "http"), ("outbound", "payment", "http"), ("outbound", "db", "mysql"),
    ]


def test_recorder_closes_an_interval_exactly_at_its_end():
    clock = [1009.999]
    recorder = Recorder("svc", "i1", "v1", interval_s=10, clock=lambda: clock[0])
    key = ("http.server", "", "GET /a", "GET", "2xx", "")
    recorder.add(key, 1.0, False, 0, 0, 0)
    assert recorder.take_closed() == []
    clock[0] = 1010.0  # the first instant of the next interval
    recorder.add(key, 2.0, False, 0, 0, 0)
    closed = recorder.take_closed()
    assert [(r.interval_start, r.sketch.count, r.sketch.max) for r in closed] == [(1000, 1, 1.0)]
    clock[0] = 1035.5  # intervals without traffic are skipped, not published empty
    recorder.add(key, 3.0, True, 0, 0, 0)
    assert [(r.interval_start, r.sketch.count, r.sketch.max) for r in recorder.take_closed()] == [(1010, 1, 2.0)]
    recorder.close_all()
    assert [(r.interval_start, r.errors) for r in recorder.take_closed()] == [(1030, 1)]


def _inbound_http_observer(recorder: Recorder):
    from agents.http_observer import HttpObserver
    from agents.observer import ListenerContext

    context = ListenerContext("svc", "i1", "v1", "inbound", "", "127.0.0.1:8080", "127.0.0.1:18080", "http")
    return HttpObserver(context, recorder)


def _exchange(observer, request_ns: int, response_ns: int, path: str = "/a") -> None:
    observer.client_data(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), request_ns)
    observer.server_data(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", response_ns)


def test_deferred_http_accounting_lands_in_the_interval_each_exchange_ended_in():
    clock = [1009.0]
    recorder = Recorder("svc", "i1", "v1", interval_s=10, sample_rate=1.0, clock=lambda: clock[0])
    recorder.wall_offset_ns = 1000 * 10**9  # monotonic 9.9 s = unix 1009.9
    observer = _inbound_http_observer(recorder)
    _exchange(observer, 9_000_000_000, 9_900_000_000)  # ends at 1009.9
    _exchange(observer, 10_000_000_000, 10_100_000_000)  # ends at 1010.1
    assert len(recorder.pending) == 2 and recorder.requests == 0 and not recorder.spans  # not yet accounted
    clock[0] = 1010.5
    recorder.rotate()  # the loop's timer: deferred accounting first, each at its own time
    assert recorder.pending == [] and recorder.requests == 2 and len(recorder.spans) == 2
    assert [(r.interval_start, r.sketch.count) for r in recorder.take_closed()] == [(1000, 1)]
    _exchange(observer, 19_000_000_000, 19_950_000_000)  # ends at 1019.95, deferred
    clock[0] = 1020.2
    # an immediate observation (the MySQL observer's) that turns the interval accounts the deferred first
    recorder.add(("sql.client", "db", "SELECT ?", "SELECT", "ok", "shop"), 1.0, False, 1, 0, 0)
    assert [(r.interval_start, r.kind, r.sketch.count) for r in recorder.take_closed()] == [(1010, "http.server", 2)]
    recorder.close_all()
    assert [(r.interval_start, r.kind) for r in recorder.take_closed()] == [(1020, "sql.client")]


def test_deferred_accounting_waits_for_at_most_one_batch():
    from agents.telemetry import PENDING_BATCH

    recorder = Recorder("svc", "i1", "v1")
    observer = _inbound_http_observer(recorder)
    for i in range(PENDING_BATCH - 1):
        _exchange(observer, 2 * i, 2 * i + 1)
    assert recorder.requests == 0 and len(recorder.pending) == PENDING_BATCH - 1
    _exchange(observer, 1000, 1001)
    assert recorder.requests == PENDING_BATCH and recorder.pending == []


def test_an_observer_failing_to_account_costs_only_its_own_exchange(caplog):
    class Failing:
        def account(self, exchange):
            raise RuntimeError("broken observer")

    recorder = Recorder("svc", "i1", "v1")
    observer = _inbound_http_observer(recorder)
    _exchange(observer, 1, 2)
    recorder.defer(Failing(), object())
    _exchange(observer, 3, 4)
    recorder.close_all()
    assert sum(r.sketch.count for r in recorder.take_closed()) == 2
    assert "broken observer" in caplog.text


def test_resource_sampler_retries_a_failed_port_lookup_only_after_a_while(monkeypatch):
    import socket

    from agents import resources

    lookups = []
    real_lookup = resources.find_listener_pid
    monkeypatch.setattr(resources, "find_listener_pid", lambda port: lookups.append(port) or real_lookup(port))
    clock = [100.0]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, not yet listening: nothing to find
        port = sock.getsockname()[1]
        recorder = Recorder("svc", "i", "v")
        sampler = resources.ResourceSampler(recorder, port=port, clock=lambda: clock[0])
        sampler()
        clock[0] += resources.LOOKUP_RETRY_S - 1
        sampler()  # too soon: no second walk over every socket of the machine
        assert lookups == [port] and recorder.take_samples() == []
        sock.listen()
        clock[0] += 1
        sampler()
        assert lookups == [port, port]
        assert "process.memory.rss" in {s.metric for s in recorder.take_samples()}
        sampler()  # found: the process is kept, no more lookups
        assert lookups == [port, port]


def test_agent_interpreter_tuning_freezes_startup_objects():
    import gc
    import sys

    from agents.cli import tune_interpreter

    interval = sys.getswitchinterval()
    try:
        tune_interpreter()
        assert sys.getswitchinterval() == 0.001
        assert gc.get_freeze_count() > 10000  # the modules' objects, kafka-python's among them
        assert "kafka" in sys.modules
    finally:
        gc.unfreeze()
        sys.setswitchinterval(interval)


def test_new_traces_come_drawn_in_batches_with_their_header_lines():
    tracecontext.NEW_TRACES.clear()
    drawn = [tracecontext.new_trace() for _ in range(2 * tracecontext.NEW_TRACES_PER_DRAW + 1)]
    assert len(tracecontext.NEW_TRACES) == tracecontext.NEW_TRACES_PER_DRAW - 1  # a third draw, one taken
    assert len({trace_id for trace_id, *_ in drawn}) == len(drawn)
    both = tracecontext.B3_MULTI | tracecontext.W3C
    for trace_id, span_id, key, sampled_lines, unsampled_lines in drawn:
        assert tracecontext._is_hex(trace_id, 32) and tracecontext._is_hex(span_id, 16)
        assert key == int(trace_id[16:], 16)
        # the end of a request head: the header lines headers_for writes, then the blank line
        assert sampled_lines == tracecontext.headers_for(trace_id, span_id, "", True, False, both) + b"\r\n"
        assert unsampled_lines == tracecontext.headers_for(trace_id, span_id, "", False, False, both) + b"\r\n"
    trace_id, span_id = drawn[0][:2]
    assert tracecontext.headers_for(trace_id, span_id, "", True, False, both) == (
        f"X-B3-TraceId: {trace_id}\r\nX-B3-SpanId: {span_id}\r\nX-B3-Sampled: 1\r\n"
        f"traceparent: 00-{trace_id}-{span_id}-01\r\n").encode()
    assert tracecontext.headers_for(trace_id, span_id, "", False, False, both).endswith(f"-{span_id}-00\r\n".encode())


def test_a_new_trace_is_injected_with_its_sampling_decision():
    """The inlined sampling test on the request path decides as Recorder.should_sample does."""
    recorder = Recorder("svc", "i1", "v1", sample_rate=0.5)
    observer = _inbound_http_observer(recorder)
    seen = set()
    for _ in range(200):
        head = observer.client_data(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 1)
        context_in = tracecontext.extract(head)
        assert head.startswith(b"GET /a HTTP/1.1\r\nHost: x\r\n") and head.endswith(b"\r\n\r\n")
        assert context_in.sampled == recorder.should_sample(context_in.trace_id, None)
        assert head.count(b"traceparent: ") == 1 and context_in.formats == tracecontext.B3_MULTI | tracecontext.W3C
        seen.add(context_in.sampled)
        observer.server_data(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 2)
    assert seen == {True, False}


def test_exporter_sends_spans_as_one_message_per_partition_once_the_count_is_known(tmp_path):
    from agents.exporter import Exporter
    from meshscope.wire import decode_spans, partition_of
    from tests.agents.support import MemoryPublisher

    class FourPartitions(MemoryPublisher):
        def partitions(self, topic):
            return 4

    def spans(count: int) -> list[dict]:
        return [{"traceId": f"{i + 1:032x}", "id": f"{i + 1:016x}", "name": "get /", "timestamp": 1, "duration": 2,
                 "localEndpoint": {"serviceName": "svc"}} for i in range(count)]

    for publisher, expected_messages in ((MemoryPublisher(), 60), (FourPartitions(), 4)):
        recorder = Recorder("svc", "i1", "v1")
        spool = Spool(tmp_path / type(publisher).__name__, 10_000_000)
        exporter = Exporter(recorder, publisher, spool, spans_topic="spans", metrics_topic="m", resources_topic="r")
        for span in spans(60):
            recorder.emit_span(span)
        exporter.flush_once(final=True)
        sent = [m for m in publisher.messages if m.topic == "spans"]
        assert len(sent) == expected_messages
        received = [span for message in sent for span in decode_spans(message.value)]
        assert sorted(s["traceId"] for s in received) == sorted(s["traceId"] for s in spans(60))
        assert sum(message.items for message in sent) == 60
        for message in sent:  # every trace in the partition its own id maps to
            assert {partition_of(s["traceId"].encode(), 4) for s in decode_spans(message.value)} == {partition_of(message.key, 4)}
        exporter.stop()
