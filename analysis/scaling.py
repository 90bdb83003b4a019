"""Scaling recommendations per service, each with the numbers behind it and a confidence.

Starting point (Rainbond's practice): scale when an instance's memory passes 80% of its limit, or
when throughput falls or response time rises abnormally; horizontally for stateless services,
vertically for those marked ``stateful`` in the services file.

How many instances, the largest of (as HPA does with several metrics):
- HPA on CPU: ``ceil(current x cpu / cpu_target)``, unchanged within a 0.1 tolerance;
- HPA on throughput per instance, when ``rps_per_instance_target`` is set;
- the queueing model: arrival rate = the busiest step of the stabilisation window, per-server
  service time fitted so that M/M/c reproduces the measured mean latency at the measured load,
  then the fewest instances keeping the objective percentile (p99) under the objective;
- memory over its threshold or an abnormal latency rise under real load: at least one more.
Scale-in only when the window covers the stabilisation period and nothing argues against it.

Sizes (VPA / KRR "simple"): CPU request = p90 of per-instance CPU usage x 1.15, memory request =
peak RSS x 1.15 (+20% over the limit when the threshold is passed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from analysis import queueing
from analysis.anomaly import service_anomalies
from analysis.context import AnalysisContext, Window
from analysis.red import red_table
from analysis.services import ServiceCatalog, ServiceSpec, load_services
from storage import metrics_queries as q

HPA_TOLERANCE = 0.1
SAFETY_MARGIN = 1.15
MEMORY_PRESSURE_HEADROOM = 1.2


@dataclass(slots=True)
class Recommendation:
    service: str
    action: str  # scale_out | scale_in | scale_up | none
    direction: str  # horizontal | vertical
    current_instances: int
    recommended_instances: int
    cpu_request: float | None
    memory_request: float | None
    confidence: float
    reasons: list[str]
    evidence: dict[str, float | None]

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.__slots__}


def hpa_desired(current: int, metric: float, target: float) -> int:
    ratio = metric / target
    if abs(ratio - 1) <= HPA_TOLERANCE:
        return current
    return max(1, math.ceil(current * ratio))


def recommend_all(ctx: AnalysisContext, window: Window, service: str | None = None,
                  catalog: ServiceCatalog | None = None, with_anomalies: bool = True,
                  usage=None) -> list[Recommendation]:
    """Recommendations for every service (or ``service``) in ``window``; ``usage``: the window's
    ``resource_usage`` frame when the caller has it already (one query less)."""
    catalog = catalog or load_services(ctx.settings.services_file)
    filters: dict = {"kind": list(q.SERVER_KINDS)}
    if service:
        filters["service"] = service
    step = min(window.step_s, 60)
    per_step = q.latency_distributions(ctx.client, ctx.database, window.start_s, window.end_s, group_by=["service", "instance"],
                                       step_s=step, filters=filters)
    if usage is None:
        usage = q.resource_usage(ctx.client, ctx.database, window.start_s, window.end_s, service)
    elif service and not usage.empty:
        usage = usage[usage["service"] == service]
    names = sorted(set(per_step["service"]) | set(usage["service"])) if not per_step.empty or not usage.empty else []
    out = []
    for name in names:
        traffic = per_step[per_step["service"] == name] if not per_step.empty else per_step
        resources = {row["metric"]: row for row in usage[usage["service"] == name].to_dict("records")} if not usage.empty else {}
        anomalies = service_anomalies(ctx, name, window) if with_anomalies else []
        out.append(recommend(name, catalog.spec(name), traffic, resources, anomalies, window, step, ctx.apdex_t_ms))
    return out


def recommend(service: str, spec: ServiceSpec, traffic, resources: dict, anomalies: list[dict], window: Window,
              step_s: int, apdex_t_ms: float) -> Recommendation:
    """The decision for one service from its per-(step, instance) traffic, its resource usage
    (metric -> row of ``resource_usage``) and its anomalies in the window."""
    reasons: list[str] = []
    evidence: dict[str, float | None] = {"latency_objective_ms": spec.latency_objective_ms,
                                         "objective_quantile": spec.objective_quantile}
    stabilisation_start = window.end_s - max(spec.stabilisation_s, step_s)
    recent = traffic[traffic["ts"] >= stabilisation_start] if len(traffic) else traffic
    instances = set(recent["instance"]) if len(recent) else set(traffic["instance"]) if len(traffic) else set()
    cpu = resources.get("process.cpu.utilization")
    rss = resources.get("process.memory.rss")
    limit = resources.get("process.memory.limit")
    up = resources.get("health.up")
    current = len(instances) or int(_num(up, "instances_latest") or _num(cpu, "instances_latest") or 0)
    desired: list[int] = []  # instance counts each signal asks for; the largest wins

    # traffic and the queueing model
    count = int(traffic["count"].sum()) if len(traffic) else 0
    seconds_covered = traffic["ts"].nunique() * step_s if len(traffic) else 0
    queue_confident = False
    if count and current:
        totals = red_table(traffic.assign(all=""), ["all"], window.seconds, apdex_t_ms).iloc[0]
        per_step_rps = traffic.groupby("ts")["count"].sum() / step_s
        peak_rps = float(per_step_rps[per_step_rps.index >= stabilisation_start].max()) if len(recent) else 0.0
        mean_rps = count / window.seconds
        lam_for_model = count / max(seconds_covered, step_s)  # load while the service was seen
        mean_ms = float(totals["mean"])
        servers = current * spec.workers_per_instance
        mu = queueing.fit_service_rate(lam_for_model, mean_ms / 1000, servers)
        evidence.update(rps_mean=mean_rps, rps_peak_recent=peak_rps, mean_latency_ms=mean_ms,
                        observed_p99_ms=_float(totals["p99"]), requests=count)
        if mu:
            utilisation = lam_for_model / (servers * mu)
            objective_s = spec.latency_objective_ms / 1000
            need_servers = queueing.smallest_servers(max(peak_rps, lam_for_model), mu, objective_s, spec.objective_quantile)
            evidence.update(service_time_ms=1000 / mu, utilisation=utilisation,
                            wait_probability=queueing.erlang_c(servers, lam_for_model / mu),
                            model_p99_ms_now=_ms(queueing.response_quantile_s(spec.objective_quantile, max(peak_rps, lam_for_model), mu, servers)))
            queue_confident = True
            if need_servers is None:
                reasons.append(f"service time {1000 / mu:.0f} ms alone breaks the {spec.latency_objective_ms:.0f} ms "
                               "objective: more instances cannot help; make requests cheaper or the instance faster")
            else:
                queue_instances = math.ceil(need_servers / spec.workers_per_instance)
                evidence["queue_model_instances"] = queue_instances
                evidence["model_p99_ms_at_recommended"] = _ms(queueing.response_quantile_s(
                    spec.objective_quantile, max(peak_rps, lam_for_model), mu, queue_instances * spec.workers_per_instance))
                desired.append(queue_instances)
                if queue_instances != current:
                    reasons.append(f"M/M/c: {max(peak_rps, lam_for_model):.1f} req/s at {1000 / mu:.1f} ms per request needs "
                                   f"{queue_instances} instance(s) for p{spec.objective_quantile * 100:g} <= {spec.latency_objective_ms:.0f} ms")
        if spec.rps_per_instance_target:
            rps_desired = hpa_desired(current, peak_rps / current, spec.rps_per_instance_target)
            evidence["hpa_rps_instances"] = rps_desired
            desired.append(rps_desired)
            if rps_desired > current:
                reasons.append(f"throughput {peak_rps / current:.1f} req/s per instance over the target {spec.rps_per_instance_target:g}")

    # CPU (HPA) and memory (Rainbond's 80%)
    cpu_now = None
    if cpu is not None and current:
        cpu_now = _num(cpu, "latest_sum") / max(_num(cpu, "instances_latest") or 1, 1) if _num(cpu, "latest_sum") is not None else _num(cpu, "mean")
        cpu_desired = hpa_desired(current, cpu_now, spec.cpu_target)
        evidence.update(cpu_utilisation=cpu_now, cpu_target=spec.cpu_target, hpa_cpu_instances=cpu_desired)
        desired.append(cpu_desired)
        if cpu_desired > current:
            reasons.append(f"CPU {cpu_now:.0%} per instance over the {spec.cpu_target:.0%} target (HPA formula)")
    memory_ratio = None
    if rss is not None and limit is not None and (_num(limit, "latest_max") or 0) > 0:
        memory_ratio = (_num(rss, "latest_max") or 0) / _num(limit, "latest_max")
        evidence["memory_ratio"] = memory_ratio
        if memory_ratio > spec.memory_threshold:
            reasons.append(f"memory at {memory_ratio:.0%} of the limit (threshold {spec.memory_threshold:.0%})")
            desired.append(current + 1)

    # abnormal throughput fall or latency rise (Rainbond), acted on only under real load: a slow
    # dependency raises latency too, and more instances would not fix that
    # busy by either measure: the queue model's utilisation or the CPU
    utilisation = max(evidence.get("utilisation") or 0.0, cpu_now or 0.0)
    for anomaly in anomalies:
        if anomaly["metric"] in ("latency_p99", "throughput"):
            evidence[f"anomaly_{anomaly['metric']}_score"] = anomaly["score"]
            if utilisation >= 0.5:
                reasons.append(f"abnormal {anomaly['metric']} (score {anomaly['score']:.1f}) at {utilisation:.0%} utilisation")
                desired.append(current + 1)
            else:
                reasons.append(f"abnormal {anomaly['metric']} (score {anomaly['score']:.1f}) but utilisation only "
                               f"{utilisation:.0%}: look at dependencies before scaling")

    target = min(max(max(desired, default=current), spec.min_instances, 1 if current else 0), spec.max_instances)
    if target < current:
        covered = window.seconds >= spec.stabilisation_s and seconds_covered >= min(spec.stabilisation_s, window.seconds)
        pressure = memory_ratio is not None and memory_ratio > spec.memory_threshold
        if not covered or pressure:
            reasons.append(f"scale-in withheld: needs {spec.stabilisation_s} s of calm data (stabilisation window)")
            target = current
        else:
            reasons.append(f"the highest need over the last {spec.stabilisation_s} s fits in {target} instance(s)")

    cpu_request, memory_request = _sizes(cpu, rss, limit, memory_ratio, spec)
    if spec.stateful:
        direction = "vertical"
        action = "scale_up" if target > current else "none"
        if target > current and current:
            factor = target / current
            reasons.append(f"stateful: grow each instance x{factor:.2f} instead of adding instances")
            cpu_request = cpu_request * factor if cpu_request else cpu_request
            target = current
    else:
        direction = "horizontal"
        action = "scale_out" if target > current else "scale_in" if target < current else "none"
    confidence = _confidence(count, seconds_covered, window, resources, queue_confident)
    return Recommendation(service, action, direction, current, target, cpu_request, memory_request, confidence,
                          reasons, {k: _float(v) for k, v in evidence.items()})


def _sizes(cpu, rss, limit, memory_ratio, spec: ServiceSpec) -> tuple[float | None, float | None]:
    cpu_request = _num(cpu, "p90") * SAFETY_MARGIN if cpu is not None else None
    memory_request = None
    if rss is not None:
        memory_request = _num(rss, "max") * SAFETY_MARGIN
        if memory_ratio is not None and memory_ratio > spec.memory_threshold:
            memory_request = max(memory_request, _num(limit, "latest_max") * MEMORY_PRESSURE_HEADROOM)
    return cpu_request, memory_request


def _confidence(count: int, seconds_covered: int, window: Window, resources: dict, queue_fit: bool) -> float:
    """0..1: grows with requests measured (1,000 for full weight), with the share of the window
    covered and with resource samples (30 per instance); halved without a queueing fit."""
    traffic = min(1.0, count / 1000)
    history = min(1.0, seconds_covered / max(window.seconds, 1))
    cpu = resources.get("process.cpu.utilization")
    samples = min(1.0, (_num(cpu, "samples") or 0) / (30 * max(_num(cpu, "instances") or 1, 1))) if cpu is not None else 0.0
    score = 0.5 * traffic + 0.25 * history + 0.25 * samples
    return round(score if queue_fit else score / 2, 3)


def _num(row, key: str) -> float | None:
    if row is None:
        return None
    value = row.get(key)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _float(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _ms(seconds: float) -> float | None:
    return seconds * 1000 if math.isfinite(seconds) else None
