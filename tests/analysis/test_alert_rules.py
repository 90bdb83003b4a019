"""Rule files: a good one loads; each kind of mistake is rejected with file, line and reason."""

from __future__ import annotations

import pytest

from analysis.alerts.rules import load_rules, parse_duration
from analysis.errors import RuleError

GOOD = """\
global:
  group_by: [alertname, service]
  repeat_interval: 2h
receivers:
  - name: ops
    url: http://127.0.0.1:9/hook
    secret: s3cret
    timeout: 2s
rules:
  - name: OrdersSlow
    expr: p99 > 250
    selector: {service: orders, endpoint: "GET /orders"}
    window: 1m
    for: 30s
    severity: critical
    labels: {team: shop}
    annotations: {summary: "p99 of {{service}} is {{value}} ms"}
    receivers: [ops]
  - name: Errors
    expr: error_ratio >= 0.05
  - name: Memory
    expr: memory_ratio > 0.8
"""


def test_a_good_file_loads(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD)
    rules = load_rules(path)
    slow, errors, memory = rules.rules
    assert (slow.metric, slow.op, slow.threshold, slow.for_s, slow.window_s) == ("p99", ">", 250.0, 30.0, 60.0)
    assert slow.selector == {"service": "orders", "endpoint": "GET /orders"}
    assert errors.receivers == ("ops",)  # default: every receiver
    assert rules.repeat_interval_s == 7200 and rules.receivers["ops"].secret == "s3cret"
    assert slow.holds(251) and not slow.holds(250)
    assert memory.metric == "memory_ratio"


@pytest.mark.parametrize("broken,line,reason", [
    ("    expr: p99 > 250\n", "    expr: p99 >> 250\n", (11, "expr must read")),
    ("    expr: p99 > 250\n", "    expr: p98 > 250\n", (11, "unknown metric 'p98'")),
    ("    for: 30s\n", "    for: soon\n", (14, "expected a duration")),
    ("    severity: critical\n", "    severity: huge\n", (15, "severity must be one of")),
    ("    receivers: [ops]\n", "    receivers: [pager]\n", (18, "unknown receiver 'pager'")),
    ("    window: 1m\n", "    windw: 1m\n", (13, "unknown field 'windw'")),
    ("  - name: Errors\n", "  - name: OrdersSlow\n", (19, "duplicate rule name")),
    ("    url: http://127.0.0.1:9/hook\n", "    url: ftp://x\n", (6, "url must be an http(s) URL")),
    ("    selector: {service: orders, endpoint: \"GET /orders\"}\n", "    selector: {host: a}\n", (12, "unknown key 'host'")),
    ("  - name: Errors\n    expr: error_ratio >= 0.05\n", "  - name: Errors\n", (19, "missing required field 'expr'")),
    ("    labels: {team: shop}\n", "    labels: {team: shop\n", (17, "invalid YAML")),
])
def test_invalid_rules_are_rejected_with_file_line_and_reason(tmp_path, broken, line, reason):
    path = tmp_path / "rules.yaml"
    text = GOOD.replace(broken, line)
    assert text != GOOD
    path.write_text(text)
    expected_line, message = reason
    with pytest.raises(RuleError) as error:
        load_rules(path)
    text = str(error.value)
    assert text.startswith(f"{path}:"), text
    assert message in text, text
    reported = int(text[len(str(path)) + 1:].split(":")[0])
    assert abs(reported - expected_line) <= 1, text  # YAML flow mappings report their start line


def test_durations():
    assert parse_duration("250ms") == 0.25
    assert parse_duration("5m") == 300 and parse_duration(90) == 90 and parse_duration("1d") == 86400
    with pytest.raises(ValueError):
        parse_duration("-5s")
