"""`meshscope serve`: ingestion, the Kafka -> ClickHouse writer (a thread), the Zipkin query API,
and, when those packages are present, the analysis API, the alert scheduler and the dashboard.

    meshscope serve [--host H] [--port P] [--kafka-bootstrap HOST:PORT] [--clickhouse-url URL]
                    [--spool-dir DIR] [--no-writer] [--no-dashboard]

Every option has a ``MESHSCOPE_*`` variable (``meshscope config`` lists them). The optional parts
are mounted by ``mount_optional_parts`` below, the one place to adjust how they are wired.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import logging
import warnings

from fastapi import Depends, FastAPI

from collector.app import _require_token, create_app
from collector.metrics import Metrics
from collector.publisher import SpanPublisher
from collector.recent import RecentSpanMessages
from collector.spool import Spool
from collector.writer import Writer, tune_gc
from meshscope.settings import ServerSettings, SettingsError, load
from meshscope.topics import ensure_topics
from storage import migrations
from storage.client import connect

logger = logging.getLogger(__name__)


def _optional(module: str):
    """The module if its package is installed and it imports, else None (quietly)."""
    try:
        if importlib.util.find_spec(module) is None:
            return None
    except ModuleNotFoundError:
        return None
    try:
        return importlib.import_module(module)
    except Exception:
        logger.exception("cannot import optional part %s; serving without it", module)
        return None


def _call_with(function, **available):
    """Call ``function`` with the keyword arguments it declares among ``available``."""
    parameters = inspect.signature(function).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return function(**available)
    return function(**{name: value for name, value in available.items() if name in parameters})


def mount_optional_parts(app: FastAPI, settings: ServerSettings, clickhouse) -> list:
    """Mount analysis.api.router, start analysis.alerts.scheduler and mount the dashboard when
    they exist; returns what must be stopped at shutdown (objects with ``stop()``)."""
    to_stop: list = []
    api = _optional("analysis.api")
    if api is not None and hasattr(api, "router"):
        app.include_router(api.router, dependencies=[Depends(_require_token)])  # the router carries its prefix
        logger.info("analysis API mounted at /api/meshscope/v1")
    alerts = _optional("analysis.alerts.scheduler")
    if alerts is not None and hasattr(alerts, "start"):
        try:
            handle = _call_with(alerts.start, settings=settings, clickhouse=clickhouse, client=clickhouse(),
                                database=settings.clickhouse_database)
            to_stop.append(handle if hasattr(handle, "stop") else alerts)
            logger.info("alert scheduler started")
        except Exception as exc:
            from analysis.errors import RuleError

            if isinstance(exc, RuleError):  # a broken rule file must not go unnoticed: stop at start
                raise SettingsError(f"MESHSCOPE_ALERT_RULES: {exc}") from None
            logger.exception("the alert scheduler did not start; serving without alerts")
    if settings.dashboard:
        dashboard_app = _optional("dashboard.app")
        if dashboard_app is not None and hasattr(dashboard_app, "create_app"):
            host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
            dash = dashboard_app.create_app(f"http://{host}:{settings.port}", requests_pathname_prefix="/dashboard/",
                                            auth_token=settings.auth_token)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                try:
                    from a2wsgi import WSGIMiddleware
                except ImportError:
                    from starlette.middleware.wsgi import WSGIMiddleware
            app.mount("/dashboard", WSGIMiddleware(dash.server))
            logger.info("dashboard mounted at /dashboard/")
    return to_stop


def check_alert_rules(settings: ServerSettings) -> None:
    """Read the rule file before anything else starts, so that a broken one stops `serve` at once
    (the scheduler reads it again when it starts)."""
    rules = _optional("analysis.alerts.rules") if settings.alert_rules else None
    if rules is None:
        return
    from analysis.errors import RuleError

    try:
        rules.load_rules(settings.alert_rules)
    except RuleError as exc:
        raise SettingsError(f"MESHSCOPE_ALERT_RULES: {exc}") from None


class Collector:
    """Everything `serve` runs, built from settings; ``close()`` stops it (idempotent)."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        check_alert_rules(settings)
        self.client = connect(settings.clickhouse_url)
        migrations.apply(self.client, settings.clickhouse_database, settings.retention_days)
        ensure_topics(settings)
        self.spool = Spool(settings.spool_dir, settings.spool_max_bytes)
        # the writer thread takes back the spans this process spooled instead of decoding them
        recent = RecentSpanMessages() if settings.run_writer else None
        self.publisher = SpanPublisher(
            self.spool, settings.kafka_bootstrap, settings.spans_topic, settings.consumer_group, self.metrics,
            retain_until_committed=settings.spool_retain_until_committed, recent=recent,
            ensure_topics=lambda: ensure_topics(settings),
        ).start()
        self.writer = Writer(settings, self.client, self.metrics, recent).start() if settings.run_writer else None
        self._to_stop: list = []
        try:
            self.app = create_app(settings, self.publisher, lambda: self.client, self.metrics)
            self._to_stop = mount_optional_parts(self.app, settings, lambda: self.client)
        except BaseException:
            # e.g. a broken rule file: stop the Kafka threads first, so that the error is the last
            # thing the operator reads, not their retries
            self.close()
            raise

    def close(self) -> None:
        for part in self._to_stop:
            try:
                part.stop()
            except Exception:
                logger.exception("stopping %r failed", part)
        self._to_stop = []
        if self.writer is not None:
            self.writer.close()
        self.publisher.close()


def run(argv: list[str]) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="meshscope serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--kafka-bootstrap")
    parser.add_argument("--clickhouse-url")
    parser.add_argument("--spool-dir")
    parser.add_argument("--no-writer", dest="run_writer", action="store_const", const=False)
    parser.add_argument("--no-dashboard", dest="dashboard", action="store_const", const=False)
    args = parser.parse_args(argv)
    settings = load(ServerSettings, **vars(args))
    collector = Collector(settings)
    tune_gc()
    try:
        uvicorn.run(collector.app, host=settings.host, port=settings.port, log_level="warning", access_log=False)
    finally:
        collector.close()
    return 0
