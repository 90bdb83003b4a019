"""The analysis JSON API (contract: docs/analysis-api.md), a FastAPI router for `meshscope serve`.

    app.include_router(analysis.api.router)          # routes under /api/meshscope/v1

Handlers get an ``AnalysisContext`` through the ``get_context`` dependency, resolved in order:
``app.dependency_overrides[get_context]`` (tests, other hosts); ``configure(settings, client)``;
``app.state.settings`` plus ``app.state.clickhouse()`` (what the collector's app sets); the
environment (``MESHSCOPE_*``). Alert states come from the scheduler running in this process, or
else from the rule file and the SQLite state file named in the settings.
"""

from __future__ import annotations

import logging
import threading
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from analysis import anomaly, metrics, scaling, schemas, versions
from analysis.alerts import scheduler as alert_scheduler
from analysis.alerts.rules import RuleSet, load_rules
from analysis.alerts.store import AlertStore
from analysis.context import AnalysisContext, Window
from analysis.errors import AnalysisError, BadRequest, RuleError, ServicesFileError
from analysis.red import QUANTILE_COLUMNS, clean, records
from meshscope.settings import ServerSettings
from storage.errors import StorageError

logger = logging.getLogger(__name__)

PREFIX = "/api/meshscope/v1"
router = APIRouter(prefix=PREFIX, tags=["analysis"])

_configured: AnalysisContext | None = None
_lock = threading.Lock()


def configure(settings: ServerSettings, client, database: str | None = None) -> AnalysisContext:
    """Set the context every handler uses (call once at server start)."""
    global _configured
    _configured = AnalysisContext(client, database or settings.clickhouse_database, settings)
    return _configured


def get_context(request: Request) -> AnalysisContext:
    if _configured is not None:
        return _configured
    state = request.app.state
    settings = getattr(state, "settings", None)
    clickhouse = getattr(state, "clickhouse", None)
    if settings is not None and clickhouse is not None:
        client = clickhouse() if callable(clickhouse) else clickhouse
        return AnalysisContext(client, settings.clickhouse_database, settings)
    with _lock:
        if _configured is None:
            from meshscope.settings import load
            from storage.client import connect

            settings = load(ServerSettings)
            configure(settings, connect(settings.clickhouse_url))
    return _configured


Context = Annotated[AnalysisContext, Depends(get_context)]
Start = Annotated[int | None, Query(description="Window start, epoch ms (default: end - 1 h).")]
End = Annotated[int | None, Query(description="Window end, epoch ms (default: now).")]
Step = Annotated[int | None, Query(description="Step of series in seconds (default: ~60 points).", gt=0)]
Service = Annotated[str, Query(description="Service name (exact).", min_length=1)]
OptionalService = Annotated[str | None, Query(description="Service name (exact); all services when absent.")]


def _window(start: int | None, end: int | None, step: int | None) -> Window:
    return Window.from_request(start, end, step)


def _guard(function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except (BadRequest, ServicesFileError) as exc:
        raise HTTPException(400, str(exc)) from exc
    except StorageError as exc:
        logger.warning("analysis query failed: %s", exc)
        raise HTTPException(503, f"storage unavailable: {exc}") from exc
    except AnalysisError as exc:
        raise HTTPException(400, str(exc)) from exc


RED_FIELDS = ("rps", "count", "errors", "error_ratio", *QUANTILE_COLUMNS, "max", "apdex")


# ---------------------------------------------------------------------------------- alerts


def _alert_sources(ctx: AnalysisContext) -> tuple[RuleSet, AlertStore | None, bool]:
    """(rules, store, owned): the running scheduler's, or read from the files in the settings."""
    running = alert_scheduler.running()
    if running is not None:
        return running.rules, running.store, False
    rules = RuleSet()
    if ctx.settings.alert_rules:
        try:
            rules = load_rules(ctx.settings.alert_rules)
        except RuleError as exc:
            raise HTTPException(500, str(exc)) from exc
    path = ctx.settings.alert_state_path
    return rules, (AlertStore(path) if path.exists() else None), True


def _alerts_snapshot(ctx: AnalysisContext) -> dict:
    rules, store, owned = _alert_sources(ctx)
    try:
        return alert_scheduler.alerts_snapshot(rules, store)
    finally:
        if owned and store is not None:
            store.close()


# ---------------------------------------------------------------------------------- routes


@router.get("/services", summary="RED, resources, alerts and recommendations per service", response_model=list[schemas.ServiceRow])
def get_services(ctx: Context, start: Start = None, end: End = None, step: Step = None,
                 service: OptionalService = None) -> list[dict[str, Any]]:
    window = _guard(_window, start, end, step)
    return _guard(_services, ctx, window, service)[1]


def _services(ctx: AnalysisContext, window: Window, only: str | None = None) -> tuple[list[str], list[dict]]:
    """The names of every service in the window, and the rows of all (or of ``only``)."""
    from storage import metrics_queries as q

    if only is None:
        table = metrics.service_red(ctx, window)
        names = [str(name) for name in table["service"]] if not table.empty else []
    else:  # the figures of one service, the names of all
        table, names = metrics.service_red(ctx, window, only), metrics.service_names(ctx, window)
    if table.empty:
        return names, []
    filters: dict = {"kind": list(q.SERVER_KINDS)} | ({"service": only} if only is not None else {})
    spark = q.latency_distributions(ctx.client, ctx.database, window.start_s, window.end_s, group_by=["service"],
                                    step_s=window.step_s, filters=filters)
    first = window.start_s - window.start_s % window.step_s
    steps = list(range(first, window.end_s, window.step_s))
    sparklines: dict[str, list[float]] = {}
    if not spark.empty:
        counts = spark.groupby(["service", "ts"])["count"].sum()
        for (service, ts), count in counts.items():
            sparklines.setdefault(service, [0.0] * len(steps))
            index = (int(ts) - first) // window.step_s
            if 0 <= index < len(steps):
                sparklines[service][index] = float(count) / window.step_s
    usage = q.resource_usage(ctx.client, ctx.database, window.start_s, window.end_s, only)
    resources: dict[str, dict] = {}
    for row in usage.to_dict("records"):
        resources.setdefault(row["service"], {})[row["metric"]] = row
    open_alerts: dict[str, int] = {}
    for alert in _alerts_snapshot(ctx)["alerts"]:
        if alert["state"] == "firing":
            service = alert["labels"].get("service", "")
            open_alerts[service] = open_alerts.get(service, 0) + 1
    try:
        recommendations = scaling.recommend_all(ctx, window, only, with_anomalies=False, usage=usage)
        pending = {r.service: int(r.action != "none") for r in recommendations}
    except ServicesFileError:
        pending = {}
    out = []
    for row in table.to_dict("records"):
        service = row["service"]
        res = resources.get(service, {})
        cpu, rss, limit, up = (res.get(m) for m in ("process.cpu.utilization", "process.memory.rss",
                                                    "process.memory.limit", "health.up"))
        instances_total = max((int(r["instances"]) for r in res.values()), default=None)
        item = {"service": service, **{k: clean(row.get(k)) for k in RED_FIELDS}}
        item.update(
            instances_up=clean(up["latest_sum"]) if up is not None else None,
            instances_total=instances_total,
            cpu=_per_instance(cpu),
            memory_rss=clean(rss["latest_max"]) if rss is not None else None,
            memory_limit=clean(limit["latest_max"]) if limit is not None else None,
            open_alerts=open_alerts.get(service, 0),
            pending_recommendations=pending.get(service, 0),
            sparkline=sparklines.get(service, [0.0] * len(steps)),
            source_of_data=row.get("source_of_data"),
        )
        out.append(item)
    return names, out


def _per_instance(row: dict | None) -> float | None:
    """Mean of the instances' latest values (CPU: fraction of one core per instance)."""
    if row is None:
        return None
    total, instances = clean(row.get("latest_sum")), clean(row.get("instances_latest"))
    return total / instances if total is not None and instances else None


@router.get("/series", summary="RED per step, for one service, optionally per endpoint or version",
            response_model=list[schemas.SeriesPoint])
def get_series(ctx: Context, service: Service, start: Start = None, end: End = None, step: Step = None,
               group_by: Annotated[str, Query(pattern="^(none|endpoint|version)$")] = "none") -> list[dict[str, Any]]:
    window = _guard(_window, start, end, step)
    frame = _guard(metrics.series, ctx, service, window, group_by)
    rows = records(frame, ("ts", "key", *RED_FIELDS))
    for row in rows:
        row["ts"] = int(row["ts"]) * 1000
    return rows


@router.get("/endpoints", summary="Per endpoint (HTTP) or SQL statement: Rainbond's table plus percentiles",
            response_model=list[schemas.EndpointRow])
def get_endpoints(ctx: Context, service: Service, start: Start = None, end: End = None,
                  kind: Annotated[str, Query(pattern="^(http|sql)$")] = "http") -> list[dict[str, Any]]:
    window = _guard(_window, start, end, None)
    frame = _guard(metrics.endpoints, ctx, service, window, kind)
    return records(frame, ("endpoint", "method", "kind", "remote_service", "database", "count", "errors", "error_ratio",
                           "cumulative_ms", "avg_ms", "p50", "p95", "p99", "max", "rows"))


@router.get("/topology", summary="Services, databases and the calls between them", response_model=schemas.Topology)
def get_topology(ctx: Context, start: Start = None, end: End = None) -> dict[str, Any]:
    window = _guard(_window, start, end, None)
    graph = _guard(metrics.topology, ctx, window)
    return {"nodes": [{k: clean(v) for k, v in n.items()} for n in graph["nodes"]],
            "edges": [{k: clean(v) for k, v in e.items()} for e in graph["edges"]]}


@router.get("/resources", summary="CPU, memory and health per instance and step", response_model=list[schemas.ResourcePoint])
def get_resources(ctx: Context, service: Service, start: Start = None, end: End = None, step: Step = None) -> list[dict[str, Any]]:
    window = _guard(_window, start, end, step)
    rows = records(_guard(metrics.resources, ctx, service, window),
                   ("ts", "instance", "version", "cpu", "memory_rss", "memory_limit", "up", "probe_ms"))
    for row in rows:
        row["ts"] = int(row["ts"]) * 1000
    return rows


@router.get("/anomalies", summary="Throughput falls, p99 and error-ratio rises against the service's own baseline",
            response_model=list[schemas.AnomalyRow])
def get_anomalies(ctx: Context, service: OptionalService = None, start: Start = None, end: End = None,
                  step: Step = None) -> list[dict[str, Any]]:
    window = _guard(_window, start, end, step)
    services = [service] if service else list(_guard(metrics.service_red, ctx, window)["service"])
    out = []
    for name in services:
        out += _guard(anomaly.service_anomalies, ctx, name, window)
    return out


@router.get("/recommendations", summary="Scaling recommendations with their evidence and confidence",
            response_model=list[schemas.RecommendationRow])
def get_recommendations(ctx: Context, service: OptionalService = None, start: Start = None, end: End = None) -> list[dict[str, Any]]:
    window = _guard(_window, start, end, None)
    recommendations = _guard(scaling.recommend_all, ctx, window, service)
    return [{k: clean(v) if not isinstance(v, (list, dict)) else v for k, v in r.as_dict().items()} for r in recommendations]


@router.get("/versions", summary="RED per version and a verdict for the candidate against the baseline",
            response_model=schemas.VersionsAnswer)
def get_versions(ctx: Context, service: Service, start: Start = None, end: End = None,
                 baseline: Annotated[str | None, Query(description="Baseline version (default: most traffic).")] = None,
                 candidate: Annotated[str | None, Query(description="Candidate version (default: next most traffic).")] = None) -> dict[str, Any]:
    window = _guard(_window, start, end, None)
    result = _guard(versions.compare, ctx, service, window, baseline, candidate)
    result["versions"] = [{k: clean(v) for k, v in row.items()} for row in result["versions"]]
    result["details"] = {k: clean(v) for k, v in result["details"].items()}
    result["confidence"] = clean(result["confidence"])
    return result


@router.get("/service_page", summary="Everything the dashboard's service page shows, in one answer",
            response_model=schemas.ServicePage)
def get_service_page(ctx: Context, service: Service, start: Start = None, end: End = None, step: Step = None) -> dict[str, Any]:
    """/services (the names, and this service's row), /series, /anomalies, /endpoints (http and sql),
    /resources and /versions of one service: one request instead of seven, and the summary computed
    for this service only. A part that fails is null, with its reason in ``errors``."""
    _guard(_window, start, end, step)  # a bad window is a 400 for the whole page
    out: dict[str, Any] = {"service": service, "services": [], "errors": {}}
    parts = {
        "summary": lambda: _guard(_services, ctx, _window(start, end, step), service),
        "series": lambda: get_series(ctx, service, start, end, step, "none"),
        "anomalies": lambda: get_anomalies(ctx, service, start, end, step),
        "endpoints": lambda: get_endpoints(ctx, service, start, end, "http"),
        "sql": lambda: get_endpoints(ctx, service, start, end, "sql"),
        "resources": lambda: get_resources(ctx, service, start, end, step),
        "versions": lambda: get_versions(ctx, service, start, end, None, None),
    }
    for part, answer in parts.items():
        try:
            value = answer()
        except HTTPException as exc:
            out[part] = None
            out["errors"][part] = str(exc.detail)
            continue
        if part == "summary":
            out["services"], rows = value
            value = rows[0] if rows else None
        out[part] = value
    return out


@router.get("/alerts", summary="Alert rules and active alerts (pending or firing)", response_model=schemas.AlertsAnswer)
def get_alerts(ctx: Context) -> dict[str, Any]:
    return _alerts_snapshot(ctx)


@router.get("/alerts/history", summary="Notifications sent or pending, newest first", response_model=list[schemas.HistoryRow])
def get_alert_history(ctx: Context, limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> list[dict[str, Any]]:
    rules, store, owned = _alert_sources(ctx)
    if store is None:
        return []
    try:
        return store.history(limit)
    finally:
        if owned:
            store.close()
