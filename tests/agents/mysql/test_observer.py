"""MySQLObserver glue: metrics for every statement, Zipkin v2 spans with the database
conventions, parents from sqlcommenter or the inbound request, sampling that keeps errors and slow
statements, masking and truncation."""

from __future__ import annotations

import re

from agents.mysql.observer import MAX_QUERY_CHARS, MySQLObserver, MySQLOptions
from agents.observer import TraceContext
from tests.agents.mysql.packets import connect, err, ok, query
from tests.agents.mysql.support import RecordingTelemetry, context

PARENT = "/*traceparent='00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'*/"


def run(statements: list[tuple[bytes, bytes]], telemetry=None, direction="outbound", options=None,
        duration_ns: int = 2_000_000):
    telemetry = telemetry or RecordingTelemetry()
    observer = MySQLObserver(context("10.0.0.5:3306", direction), telemetry, options or MySQLOptions())
    now = 10**9
    for direction_, data in connect():
        now += 1000
        (observer.client_data if direction_ == "c" else observer.server_data)(data, now)
    for request, response in statements:
        now += 1000
        assert observer.client_data(request, now) is request
        now += duration_ns
        observer.server_data(response, now)
    observer.closed(now)
    return telemetry


def test_span_shape_and_metric():
    telemetry = run([(query(b"SELECT name FROM users WHERE email = 'a@b.c'"), ok(1, affected=0))])
    [observation] = telemetry.observations
    assert observation == {
        "kind": "sql.client", "endpoint": "SELECT name FROM users WHERE email = ?", "method": "SELECT",
        "status_class": "ok", "remote_service": "catalogue-db", "database": "shop", "duration_ms": 2.0,
        "error": False, "rows": 0, "request_bytes": len(query(b"SELECT name FROM users WHERE email = 'a@b.c'")),
        "response_bytes": len(ok(1)),
    }
    [span] = telemetry.spans
    assert re.fullmatch(r"[0-9a-f]{32}", span["traceId"]) and re.fullmatch(r"[0-9a-f]{16}", span["id"])
    assert "parentId" not in span
    assert span["kind"] == "CLIENT" and span["name"] == "select" and span["duration"] == 2000
    assert span["localEndpoint"] == {"serviceName": "shop"}
    assert span["remoteEndpoint"] == {"serviceName": "catalogue-db", "ipv4": "10.0.0.5", "port": 3306}
    assert span["tags"] == {"db.system": "mysql", "db.statement.type": "SELECT", "db.command": "QUERY",
                            "sql.query": "SELECT name FROM users WHERE email = ?", "db.name": "shop",
                            "db.user": "app"}
    assert abs(span["timestamp"] / 1e6 - __import__("time").time()) < 3600 * 24 * 365  # wall clock, in us


def test_error_span_tags_and_status():
    telemetry = run([(query(b"SELECT * FROM gone"), err(1, 1146, b"42S02", b"Table 'shop.gone' doesn't exist"))])
    assert telemetry.observations[0]["status_class"] == "error" and telemetry.observations[0]["error"]
    tags = telemetry.spans[0]["tags"]
    assert tags["error"] == "1146 (42S02): Table 'shop.gone' doesn't exist"
    assert (tags["mysql.error_code"], tags["mysql.sqlstate"]) == ("1146", "42S02")


def test_sampling_keeps_errors_and_slow_statements_and_counts_everything():
    telemetry = RecordingTelemetry(sample=False)
    run([(query(b"SELECT 1"), ok(1)), (query(b"SELEC"), err(1))], telemetry)
    run([(query(b"SELECT SLEEP(2)"), ok(1))], telemetry, options=MySQLOptions(slow_ms=1000), duration_ns=1_500_000_000)
    assert len(telemetry.observations) == 3
    assert [s["name"] for s in telemetry.spans] == ["selec", "select"]


def test_parent_from_sqlcommenter_wins_over_inbound_request():
    telemetry = RecordingTelemetry(inbound=TraceContext("1" * 32, "2" * 16, True))
    run([(query(b"SELECT 1 " + PARENT.encode()), ok(1)), (query(b"SELECT 2"), ok(1))], telemetry)
    commented, plain = telemetry.spans
    assert (commented["traceId"], commented["parentId"]) == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
    assert (plain["traceId"], plain["parentId"]) == ("1" * 32, "2" * 16)


def test_unsampled_parent_is_respected():
    telemetry = RecordingTelemetry(inbound=TraceContext("1" * 32, "2" * 16, False))
    run([(query(b"SELECT 2"), ok(1))], telemetry)
    assert telemetry.spans == [] and len(telemetry.observations) == 1


def test_inbound_agent_reports_server_spans():
    telemetry = run([(query(b"UPDATE t SET a = 1"), ok(1, affected=3))], direction="inbound")
    [observation], [span] = telemetry.observations, telemetry.spans
    assert observation["kind"] == "sql.server" and observation["remote_service"] == "" and observation["rows"] == 3
    assert span["kind"] == "SERVER" and "remoteEndpoint" not in span
    assert span["localEndpoint"] == {"serviceName": "shop", "ipv4": "127.0.0.1", "port": 0}


def test_masking_off_and_truncation():
    long_sql = b"SELECT '" + b"s" * 5000 + b"'"
    telemetry = run([(query(b"SELECT 'secret'"), ok(1)), (query(long_sql), ok(1))], options=MySQLOptions(mask_literals=False))
    assert telemetry.spans[0]["tags"]["sql.query"] == "SELECT 'secret'"
    assert len(telemetry.spans[1]["tags"]["sql.query"]) == MAX_QUERY_CHARS + 3


class Exploding(RecordingTelemetry):
    def observe(self, **kwargs):
        raise RuntimeError("sink broken")


def test_a_failing_sink_never_reaches_the_proxy():
    telemetry = Exploding()
    observer = MySQLObserver(context("127.0.0.1:3306"), telemetry, MySQLOptions())
    for direction, data in connect() + [("c", query(b"SELECT 1")), ("s", ok(1)), ("c", query(b"SELECT 2"))]:
        if direction == "c":
            assert observer.client_data(data, 1) is data
        else:
            observer.server_data(data, 1)
    observer.closed(2)
    assert observer._broken


def test_desynced_connection_counted_once_in_the_telemetry():
    telemetry = RecordingTelemetry()
    telemetry.desynced = 0
    run([(query(b"SELECT 1"), b"\x05\x00\x00\x07junk!"), (query(b"SELECT 2"), b"\x01\x00\x00\x09x")], telemetry)
    assert telemetry.desynced == 1


def test_utility_commands_are_metrics_only_unless_they_fail():
    from tests.agents.mysql.packets import frames
    telemetry = run([(frames(0, b"\x0e"), ok(1)), (frames(0, b"\x1f"), err(1, 1047, b"08S01", b"Unknown command"))])
    assert [o["method"] for o in telemetry.observations] == ["PING", "RESET_CONNECTION"]
    assert [s["name"] for s in telemetry.spans] == ["reset_connection"]


def test_options_from_the_telemetry():
    telemetry = RecordingTelemetry()
    telemetry.slow_ms = 5.0
    assert MySQLObserver(context("127.0.0.1:3306"), telemetry).options.slow_ms == 5.0
    telemetry.mysql_options = MySQLOptions(capture_params=True, mask_literals=False, slow_ms=7.0)
    assert MySQLObserver(context("127.0.0.1:3306"), telemetry).options == telemetry.mysql_options
