"""The alert scheduler the server starts and stops: evaluates the rules every
``MESHSCOPE_ALERT_INTERVAL_S`` and delivers the outbox, in one background thread.

    scheduler = AlertScheduler(settings, client, database).start()   # RuleError if the file is bad
    ...
    scheduler.stop()   # idempotent; pending notifications stay in the outbox for the next start

Environment: MESHSCOPE_ALERT_RULES (the YAML, see rules.py), MESHSCOPE_ALERT_INTERVAL_S,
MESHSCOPE_ALERT_STATE_PATH (SQLite state + outbox), MESHSCOPE_ALERT_EXTERNAL_URL.
"""

from __future__ import annotations

import logging
import threading
import time

from clickhouse_connect.driver.client import Client

from analysis.alerts.evaluator import AlertEngine
from analysis.alerts.rules import RuleSet, load_rules
from analysis.alerts.store import AlertStore
from analysis.alerts.webhook import BACKOFF_BASE_S, BACKOFF_CAP_S, WebhookSender
from analysis.context import AnalysisContext
from meshscope.settings import ServerSettings

logger = logging.getLogger(__name__)

DELIVERY_TICK_S = 0.5


class AlertScheduler:
    def __init__(self, settings: ServerSettings, client: Client, database: str, *, rules: RuleSet | None = None,
                 clock=time.time, backoff_base_s: float = BACKOFF_BASE_S, backoff_cap_s: float = BACKOFF_CAP_S) -> None:
        self.settings = settings
        self.rules = rules if rules is not None else load_rules(settings.alert_rules) if settings.alert_rules else RuleSet()
        self.clock = clock
        self.store = AlertStore(settings.alert_state_path)
        external = settings.alert_external_url or self.rules.external_url or f"http://{settings.host}:{settings.port}"
        self.engine = AlertEngine(AnalysisContext(client, database, settings), self.rules, self.store, external)
        self.sender = WebhookSender(self.store, self.rules.receivers, backoff_base_s=backoff_base_s,
                                    backoff_cap_s=backoff_cap_s, clock=clock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._lock = threading.Lock()

    def start(self) -> AlertScheduler:
        with self._lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="meshscope-alerts", daemon=True)
                self._thread.start()
                logger.info("alert scheduler started: %d rule(s), %d receiver(s), every %.1fs",
                            len(self.rules.rules), len(self.rules.receivers), self.settings.alert_interval_s)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stop.set()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        self.sender.close()
        self.store.close()

    def run_once(self) -> int:
        """One evaluation and one delivery round (the loop's body, for tests and tools)."""
        self.engine.evaluate(self.clock())
        return self.sender.deliver_due()

    def _run(self) -> None:
        next_evaluation = 0.0
        while not self._stop.is_set():
            now = self.clock()
            if now >= next_evaluation:
                next_evaluation = now + self.settings.alert_interval_s
                try:
                    self.engine.evaluate(now)
                except Exception:
                    logger.exception("alert evaluation failed")
            try:
                self.sender.deliver_due()
            except Exception:
                logger.exception("alert delivery failed")
            self._stop.wait(min(DELIVERY_TICK_S, self.settings.alert_interval_s))

    # ---- read side for the API

    def snapshot(self) -> dict:
        return alerts_snapshot(self.rules, self.store)


def alerts_snapshot(rules: RuleSet, store: AlertStore | None) -> dict:
    """The `/alerts` answer: the rules and the active (pending or firing) alerts."""
    alerts = []
    for row in store.alerts() if store else []:
        alerts.append({"rule": row.rule, "labels": row.labels, "annotations": row.annotations, "state": row.state,
                       "active_since": int(row.active_since * 1000),
                       "firing_since": int(row.fired_at * 1000) if row.fired_at else None, "value": row.value})
    return {"rules": [{**r.as_dict(), "expr": r.expr} for r in rules.rules], "alerts": alerts}


_running: AlertScheduler | None = None


def start(settings: ServerSettings, client: Client, database: str | None = None) -> AlertScheduler:
    """The server's hook: build and start the scheduler (RuleError if the rule file is invalid).
    Without ``MESHSCOPE_ALERT_RULES`` it evaluates nothing but still drains the outbox."""
    global _running
    scheduler = AlertScheduler(settings, client, database or settings.clickhouse_database).start()
    _running = scheduler
    return scheduler


def running() -> AlertScheduler | None:
    """The scheduler started by ``start()`` in this process, while it runs (for the API)."""
    return _running if _running is not None and not _running._closed else None
