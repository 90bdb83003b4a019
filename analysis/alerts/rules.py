"""Alert rules from YAML (``MESHSCOPE_ALERT_RULES``), checked at load: every mistake is reported
as ``file:line: reason`` and the file is rejected whole (a half-loaded rule set pages nobody).

    global:
      external_url: http://meshscope.example:9411   # links in notifications (default: the server's)
      group_by: [alertname, service]                # alerts notified together (per receiver)
      repeat_interval: 4h                           # re-notify a still-firing group this often
    receivers:
      - name: ops
        url: http://alerts.example/hook
        secret_env: OPS_WEBHOOK_SECRET    # HMAC-SHA256 key from the environment (or `secret:`)
        timeout: 5s
        max_retry_for: 24h                # keep retrying a failed notification this long
    rules:
      - name: OrdersSlow
        expr: p99 > 250                   # <metric> <op> <number>, metrics: see METRICS
        selector: {service: orders, endpoint: "GET /orders"}   # no service: one alert per service
        window: 1m                        # lookback the metric is computed over
        for: 30s                          # condition must hold this long before firing
        severity: critical                # critical | warning | info
        labels: {team: shop}
        annotations: {summary: "p99 of {{service}} is {{value}} ms"}
        receivers: [ops]
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from analysis import yamlfile
from analysis.errors import RuleError

# RED metrics (latency in ms, ratios 0..1, rps per second) and resource metrics per service
RED_METRICS = ("rps", "count", "errors", "error_ratio", "p50", "p90", "p95", "p99", "max", "mean", "apdex")
RESOURCE_METRICS = ("cpu", "memory_ratio", "instances_up")
METRICS = RED_METRICS + RESOURCE_METRICS
OPERATORS = (">=", "<=", "==", "!=", ">", "<")
SELECTOR_KEYS = ("service", "endpoint", "kind", "version", "remote_service", "database", "method")
SEVERITIES = ("critical", "warning", "info")
_EXPR = re.compile(r"^\s*([a-z_0-9]+)\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Receiver:
    name: str
    url: str
    secret: str | None = None
    timeout_s: float = 5.0
    max_retry_for_s: float = 86_400.0


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    expr: str
    metric: str
    op: str
    threshold: float
    selector: dict[str, str] = field(default_factory=dict)
    window_s: float = 60.0
    for_s: float = 0.0
    severity: str = "warning"
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    receivers: tuple[str, ...] = ()
    line: int = 0

    def holds(self, value: float) -> bool:
        return {">": value > self.threshold, ">=": value >= self.threshold, "<": value < self.threshold,
                "<=": value <= self.threshold, "==": value == self.threshold, "!=": value != self.threshold}[self.op]

    def as_dict(self) -> dict:
        return {"name": self.name, "expr": self.expr, "selector": self.selector, "window_s": self.window_s,
                "for_s": self.for_s, "severity": self.severity, "labels": self.labels,
                "annotations": self.annotations, "receivers": list(self.receivers)}


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...] = ()
    receivers: dict[str, Receiver] = field(default_factory=dict)
    group_by: tuple[str, ...] = ("alertname", "service")
    repeat_interval_s: float = 4 * 3600
    external_url: str | None = None
    path: Path | None = None


def parse_duration(value: object) -> float:
    """``30s``, ``5m``, ``1h``, ``250ms``, ``1d`` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 30s, 5m or 1h, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        return float(value)
    match = _DURATION.match(str(value).strip())
    if not match:
        raise ValueError(f"expected a duration like 30s, 5m or 1h, got {value!r}")
    return float(match[1]) * _UNITS[match[2]]


class _Checker:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, node: object, key: str | None, reason: str) -> RuleError:
        return RuleError(f"{self.path}:{yamlfile.line_of(node, key)}: {reason}")

    def mapping(self, node: object, where: str, allowed: tuple[str, ...], required: tuple[str, ...] = (),
                parent: object = None, parent_key: str | None = None) -> dict:
        if not isinstance(node, dict):
            raise self.fail(parent if parent is not None else node, parent_key, f"{where} must be a mapping")
        for key in node:
            if key not in allowed:
                raise self.fail(node, key, f"{where}: unknown field {key!r} (allowed: {', '.join(allowed)})")
        for key in required:
            if key not in node or node[key] in (None, ""):
                raise self.fail(node, None, f"{where}: missing required field {key!r}")
        return node

    def strings(self, node: dict, key: str, where: str, labels: bool = False) -> dict[str, str]:
        value = node.get(key) or {}
        if not isinstance(value, dict):
            raise self.fail(node, key, f"{where}.{key} must be a mapping of names to strings")
        out = {}
        for name, item in value.items():
            if labels and not _LABEL.match(str(name)):
                raise self.fail(value, name, f"{where}.{key}: invalid label name {name!r}")
            if isinstance(item, (dict, list)) or item is None:
                raise self.fail(value, name, f"{where}.{key}.{name} must be a string")
            out[str(name)] = str(item)
        return out

    def duration(self, node: dict, key: str, where: str, default: float) -> float:
        if key not in node:
            return default
        try:
            return parse_duration(node[key])
        except ValueError as exc:
            raise self.fail(node, key, f"{where}.{key}: {exc}") from None


def _receiver(check: _Checker, node: object, index: int, parent: object) -> Receiver:
    where = f"receivers[{index}]"
    node = check.mapping(node, where, ("name", "url", "secret", "secret_env", "timeout", "max_retry_for"), ("name", "url"),
                         parent=parent)
    url = str(node["url"])
    if not url.startswith(("http://", "https://")):
        raise check.fail(node, "url", f"{where}.url must be an http(s) URL, got {url!r}")
    secret = node.get("secret")
    if "secret_env" in node:
        secret = os.environ.get(str(node["secret_env"]))
        if secret is None:
            raise check.fail(node, "secret_env", f"{where}.secret_env: environment variable {node['secret_env']} is not set")
    return Receiver(str(node["name"]), url, str(secret) if secret is not None else None,
                    check.duration(node, "timeout", where, 5.0), check.duration(node, "max_retry_for", where, 86_400.0))


def _rule(check: _Checker, node: object, index: int, receivers: dict[str, Receiver], parent: object) -> Rule:
    where = f"rules[{index}]"
    node = check.mapping(node, where, ("name", "expr", "selector", "window", "for", "severity", "labels", "annotations", "receivers"),
                         ("name", "expr"), parent=parent)
    name = str(node["name"])
    where = f"rule {name!r}"
    if not _LABEL.match(name):
        raise check.fail(node, "name", f"{where}: the name must be letters, digits and underscores")
    match = _EXPR.match(str(node["expr"]))
    if not match:
        raise check.fail(node, "expr", f"{where}: expr must read `<metric> <op> <number>` (op one of {' '.join(OPERATORS)}), "
                                       f"got {node['expr']!r}")
    metric, op, threshold = match[1], match[2], float(match[3])
    if metric not in METRICS:
        raise check.fail(node, "expr", f"{where}: unknown metric {metric!r} (known: {', '.join(METRICS)})")
    selector = check.strings(node, "selector", where)
    for key in selector:
        if key not in SELECTOR_KEYS:
            raise check.fail(node["selector"], key, f"{where}.selector: unknown key {key!r} (allowed: {', '.join(SELECTOR_KEYS)})")
    if metric in RESOURCE_METRICS and set(selector) - {"service", "version"}:
        raise check.fail(node, "selector", f"{where}: resource metric {metric!r} can select only service and version")
    severity = str(node.get("severity", "warning"))
    if severity not in SEVERITIES:
        raise check.fail(node, "severity", f"{where}.severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    wanted = node.get("receivers") or list(receivers)
    if isinstance(wanted, str) or not isinstance(wanted, list):
        raise check.fail(node, "receivers", f"{where}.receivers must be a list of receiver names")
    for receiver in wanted:
        if receiver not in receivers:
            raise check.fail(node, "receivers", f"{where}: unknown receiver {receiver!r} (defined: {', '.join(receivers) or 'none'})")
    window = check.duration(node, "window", where, 60.0)
    if window < 1:
        raise check.fail(node, "window", f"{where}.window must be at least 1s")
    return Rule(name=name, expr=str(node["expr"]), metric=metric, op=op, threshold=threshold, selector=selector,
                window_s=window, for_s=check.duration(node, "for", where, 0.0), severity=severity,
                labels=check.strings(node, "labels", where, labels=True),
                annotations=check.strings(node, "annotations", where), receivers=tuple(wanted), line=yamlfile.line_of(node))


def load_rules(path: Path) -> RuleSet:
    """Parse and check the rule file; raises RuleError naming the file and line."""
    path = Path(path)
    check = _Checker(path)
    data = yamlfile.load(path, RuleError)
    if data is None:
        return RuleSet(path=path)
    check.mapping(data, "the rule file", ("global", "receivers", "rules"))
    settings = data.get("global") or yamlfile.Located()
    check.mapping(settings, "global", ("external_url", "group_by", "repeat_interval"), parent=data, parent_key="global")
    group_by = settings.get("group_by", ["alertname", "service"])
    if not isinstance(group_by, list) or not all(isinstance(g, str) and _LABEL.match(g) for g in group_by):
        raise check.fail(settings, "group_by", "global.group_by must be a list of label names")
    receivers: dict[str, Receiver] = {}
    receiver_nodes = data.get("receivers") or []
    if not isinstance(receiver_nodes, list):
        raise check.fail(data, "receivers", "receivers must be a list")
    for i, node in enumerate(receiver_nodes):
        receiver = _receiver(check, node, i, receiver_nodes)
        if receiver.name in receivers:
            raise check.fail(node, "name", f"duplicate receiver name {receiver.name!r}")
        receivers[receiver.name] = receiver
    rule_nodes = data.get("rules") or []
    if not isinstance(rule_nodes, list):
        raise check.fail(data, "rules", "rules must be a list")
    rules: list[Rule] = []
    for i, node in enumerate(rule_nodes):
        rule = _rule(check, node, i, receivers, rule_nodes)
        if any(r.name == rule.name for r in rules):
            raise check.fail(node, "name", f"duplicate rule name {rule.name!r}")
        rules.append(rule)
    return RuleSet(tuple(rules), receivers, tuple(group_by), check.duration(settings, "repeat_interval", "global", 4 * 3600.0),
                   settings.get("external_url"), path)
