"""Rule evaluation: metric values per service, the pending -> firing -> resolved state machine,
grouping, repeat interval, and the notifications that result (written to the outbox together with
the states, see store.py).

Semantics follow Prometheus/Alertmanager: an alert is `pending` from the first evaluation its
condition holds, `firing` once it has held for ``for``, and `resolved` at the first evaluation it no
longer holds (no data counts as not holding). Alerts sharing a receiver and the rule set's
``group_by`` labels go out in one notification, sent when one of them starts firing or resolves,
and again every ``repeat_interval`` while any of them fires. A rule whose query fails keeps its
alerts as they were: an outage of the store never "resolves" anything.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from analysis.alerts.payload import alert_entry, fingerprint, group_key, webhook_payload
from analysis.alerts.rules import RED_METRICS, Rule, RuleSet
from analysis.alerts.store import AlertRow, AlertStore, Notification
from analysis.context import AnalysisContext
from analysis.red import red_table, spans_as_red
from storage import metrics_queries as q

logger = logging.getLogger(__name__)


def rule_values(ctx: AnalysisContext, rule: Rule, now: float) -> dict[str, float | None]:
    """The rule's metric per service over ``[now - window, now)``."""
    start, end = int(now - rule.window_s), int(now)
    seconds = max(end - start, 1)
    if rule.metric in RED_METRICS:
        filters: dict = dict(rule.selector)
        filters.setdefault("kind", list(q.SERVER_KINDS))
        frame = q.latency_distributions(ctx.client, ctx.database, start, end, group_by=["service"], filters=filters)
        table = red_table(frame, ["service"], seconds, ctx.apdex_t_ms)
        values = {row["service"]: row[rule.metric] for row in table.to_dict("records")}
        span_filters = {k: v for k, v in rule.selector.items() if k in ("service", "endpoint", "remote_service", "version")}
        if set(span_filters) == set(rule.selector) - {"kind"}:
            spans = spans_as_red(q.span_red(ctx.client, ctx.database, start, end, apdex_t_ms=ctx.apdex_t_ms,
                                            filters=span_filters), seconds)
            for row in spans.to_dict("records"):
                values.setdefault(row["service"], row[rule.metric] if rule.metric in row else None)
        return {service: _number(value) for service, value in values.items()}
    usage = q.resource_usage(ctx.client, ctx.database, start, end, rule.selector.get("service"))
    values: dict[str, float | None] = {}
    by_service: dict[str, dict] = defaultdict(dict)
    for row in usage.to_dict("records"):
        by_service[row["service"]][row["metric"]] = row
    for service, metrics in by_service.items():
        if rule.metric == "cpu" and "process.cpu.utilization" in metrics:
            row = metrics["process.cpu.utilization"]
            values[service] = _number(row.get("latest_sum")) / max(_number(row.get("instances_latest")) or 1, 1) \
                if _number(row.get("latest_sum")) is not None else None
        elif rule.metric == "memory_ratio" and {"process.memory.rss", "process.memory.limit"} <= set(metrics):
            limit = _number(metrics["process.memory.limit"].get("latest_max"))
            rss = _number(metrics["process.memory.rss"].get("latest_max"))
            values[service] = rss / limit if limit and rss is not None else None
        elif rule.metric == "instances_up" and "health.up" in metrics:
            values[service] = _number(metrics["health.up"].get("latest_sum"))
    return values


def _number(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if value == value and abs(value) != float("inf") else None


def _render(template: str, labels: dict, value: float | None, rule: Rule) -> str:
    values = {**labels, "value": f"{value:.4g}" if value is not None else "n/a", "threshold": f"{rule.threshold:g}",
              "metric": rule.metric}
    for key, text in values.items():
        template = template.replace("{{" + key + "}}", str(text)).replace("{{ " + key + " }}", str(text))
    return template


class AlertEngine:
    def __init__(self, ctx: AnalysisContext, rules: RuleSet, store: AlertStore, external_url: str) -> None:
        self.ctx = ctx
        self.rules = rules
        self.store = store
        self.external_url = external_url.rstrip("/")

    def labels_for(self, rule: Rule, service: str) -> dict[str, str]:
        return {**rule.labels, **rule.selector, "alertname": rule.name, "service": service, "severity": rule.severity}

    def evaluate(self, now: float) -> list[Notification]:
        """One evaluation of every rule; returns the notifications committed to the outbox."""
        existing = {(a.rule, a.fingerprint): a for a in self.store.alerts()}
        rules = {r.name: r for r in self.rules.rules}
        upserts: list[AlertRow] = []
        deletes: list[tuple[str, str]] = []
        resolved: list[tuple[Rule, AlertRow]] = []
        changed: set[tuple[str, str]] = set()  # (rule, fingerprint) that started firing or resolved now
        evaluated: set[str] = set()
        for rule in self.rules.rules:
            try:
                values = rule_values(self.ctx, rule, now)
            except Exception:
                logger.exception("alert rule %s: evaluation failed; its alerts keep their state", rule.name)
                continue
            evaluated.add(rule.name)
            for service, value in values.items():
                if value is None or not rule.holds(value):
                    continue
                labels = self.labels_for(rule, service)
                key = (rule.name, fingerprint(labels))
                row = existing.pop(key, None) or AlertRow(rule.name, key[1], labels, {}, "pending", now, None, None, value)
                row.value = value
                row.labels = labels
                row.annotations = {k: _render(v, labels, value, rule) for k, v in rule.annotations.items()}
                if row.state == "pending" and now - row.active_since >= rule.for_s:
                    row.state, row.fired_at = "firing", now
                    changed.add(key)
                upserts.append(row)
        for key, row in existing.items():  # alerts whose condition no longer holds
            if row.rule in rules and row.rule not in evaluated:
                continue
            deletes.append(key)
            if row.state == "firing" and row.rule in rules:
                resolved.append((rules[row.rule], row))
                changed.add(key)
            elif row.rule not in rules:
                logger.info("alert %s dropped: its rule is no longer configured", row.rule)
        notifications = self._notifications(now, rules, upserts, resolved, changed)
        self.store.commit(upserts, deletes, notifications, now)
        return notifications

    def _notifications(self, now: float, rules: dict[str, Rule], active: list[AlertRow],
                       resolved: list[tuple[Rule, AlertRow]], changed: set[tuple[str, str]]) -> list[Notification]:
        groups: dict[tuple[str, tuple], list[tuple[str, AlertRow]]] = defaultdict(list)
        for row in active:
            if row.state == "firing":
                for receiver in rules[row.rule].receivers:
                    groups[(receiver, self._group_labels(row.labels))].append(("firing", row))
        for rule, row in resolved:
            for receiver in rule.receivers:
                groups[(receiver, self._group_labels(row.labels))].append(("resolved", row))
        last_sent = self.store.group_notified()
        notifications = []
        for (receiver, group_items), members in sorted(groups.items()):
            group_labels = dict(group_items)
            key = group_key(receiver, group_labels)
            due_repeat = now - last_sent.get((receiver, key), float("-inf")) >= self.rules.repeat_interval_s
            if not any((r.rule, r.fingerprint) in changed for _, r in members) and not due_repeat:
                continue
            alerts = [alert_entry(status, row.labels, row.annotations, row.active_since, now if status == "resolved" else None,
                                  f"{self.external_url}/dashboard/?service={row.labels.get('service', '')}")
                      for status, row in members]
            payload = webhook_payload(receiver, group_labels, alerts, self.external_url)
            notifications.append(Notification(receiver, key, payload["status"], payload))
            for status, row in members:
                row.last_notified = now
        return notifications

    def _group_labels(self, labels: dict[str, str]) -> tuple:
        return tuple((k, labels[k]) for k in self.rules.group_by if k in labels)
