"""Alerting: YAML rules over the RED and resource metrics, the pending/firing/resolved state
machine with grouping and repeat intervals, and webhook delivery in Alertmanager's v4 format from
a persisted outbox. The server runs one ``AlertScheduler``."""

from analysis.alerts.scheduler import AlertScheduler

__all__ = ["AlertScheduler"]
