"""Scaling recommendations: validated against a discrete-event M/M/c simulation with known truth,
and the Rainbond/HPA/VPA rules on seeded resource samples."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import scaling
from analysis.context import Window
from analysis.errors import ServicesFileError
from analysis.services import ServiceCatalog, ServiceSpec, load_services
from tests.analysis.conftest import NOW, seed_latency, seed_resources
from tests.analysis.mmc import simulate, simulate_timed

WINDOW_S = 600
# (arrival rate /s, service rate per server /s, current instances, p99 objective ms)
SCENARIOS = [
    (150.0, 20.0, 10, 300.0),  # busy, about right
    (60.0, 10.0, 14, 600.0),   # over-provisioned: scale in
    (95.0, 25.0, 4, 250.0),    # saturated: scale out
    (40.0, 50.0, 1, 150.0),    # one instance at 80%
]


def true_minimum(lam, mu, objective_ms, seed=99):
    """The fewest servers whose simulated p99 meets the objective (the known truth)."""
    for c in range(int(lam // mu) + 1, 200):
        durations = np.array(simulate(lam, mu, c, 80_000, seed=seed)) * 1000
        if np.percentile(durations, 99) <= objective_ms:
            return c
    raise AssertionError("no count meets the objective")


def simulated_p99_ms(lam, mu, c, seed=123):
    return float(np.percentile(np.array(simulate(lam, mu, c, 80_000, seed=seed)) * 1000, 99))


def test_recommended_instance_counts_against_a_mmc_simulation(clickhouse, ctx):
    errors, actions = [], []
    for n, (lam, mu, current, objective) in enumerate(SCENARIOS):
        service = f"svc{n}"
        start = NOW - WINDOW_S
        samples = [(start + arrival, service, f"{service}-{server}", "", "http.server", "GET /work", response * 1000, False, "", "")
                   for arrival, response, server in simulate_timed(lam, mu, current, int(lam * WINDOW_S * 0.98), seed=n, start_s=0)
                   if arrival < WINDOW_S]
        seed_latency(clickhouse, samples)
        catalog = ServiceCatalog(services={service: ServiceSpec(latency_objective_ms=objective)})
        [rec] = scaling.recommend_all(ctx, Window(NOW - WINDOW_S, NOW, 60), service, catalog, with_anomalies=False)
        truth = true_minimum(lam, mu, objective)
        achieved = simulated_p99_ms(lam, mu, rec.recommended_instances)
        errors.append(rec.recommended_instances - truth)
        actions.append(rec.action)
        print(f"\nM/M/c lam={lam} mu={mu} c={current} objective={objective} ms: recommended "
              f"{rec.recommended_instances} ({rec.action}), true minimum {truth}, simulated p99 at the "
              f"recommendation {achieved:.0f} ms, fitted service time {rec.evidence['service_time_ms']:.1f} ms "
              f"(true {1000 / mu:.1f}), confidence {rec.confidence}")
        assert rec.evidence["service_time_ms"] == pytest.approx(1000 / mu, rel=0.1)
        assert abs(rec.recommended_instances - truth) <= 1
        assert achieved <= objective * 1.1  # meets the objective (simulation noise aside)
        assert rec.reasons and rec.confidence > 0.5
    print(f"\nscaling vs simulation: instance-count errors {errors}, mean absolute error "
          f"{np.mean(np.abs(errors)):.2f} instances")
    assert actions[1] == "scale_in" and actions[2] == "scale_out"


def _steady(service, instances, rps_each, cpu, rss, limit, seconds=600, latency_ms=20.0):
    traffic, resources = [], []
    for i in range(instances):
        instance = f"{service}-{i}"
        for second in range(NOW - seconds, NOW, 1):
            for k in range(rps_each):
                traffic.append((second + k / rps_each, service, instance, "", "http.server", "GET /", latency_ms, False, "", ""))
        for second in range(NOW - seconds, NOW, 10):
            resources += [((second) * 1000, service, instance, "", "process.cpu.utilization", cpu),
                          (second * 1000, service, instance, "", "process.memory.rss", rss),
                          (second * 1000, service, instance, "", "process.memory.limit", limit),
                          (second * 1000, service, instance, "", "health.up", 1.0)]
    return traffic, resources


def test_memory_over_80_percent_scales_out_stateless_and_up_stateful(clickhouse, ctx):
    traffic, resources = _steady("cart", 2, 2, 0.3, 900e6, 1000e6)
    traffic2, resources2 = _steady("db", 1, 2, 0.3, 900e6, 1000e6)
    seed_latency(clickhouse, traffic + traffic2)
    seed_resources(clickhouse, resources + resources2)
    catalog = ServiceCatalog(services={"db": ServiceSpec(stateful=True)})
    recs = {r.service: r for r in scaling.recommend_all(ctx, Window(NOW - 600, NOW, 60), catalog=catalog, with_anomalies=False)}
    cart, db = recs["cart"], recs["db"]
    assert (cart.action, cart.direction, cart.current_instances, cart.recommended_instances) == ("scale_out", "horizontal", 2, 3)
    assert any("memory at 90%" in r for r in cart.reasons)
    assert cart.evidence["memory_ratio"] == pytest.approx(0.9)
    assert (db.action, db.direction, db.recommended_instances) == ("scale_up", "vertical", 1)
    assert db.memory_request == pytest.approx(1.2e9)  # limit + 20%
    assert cart.cpu_request == pytest.approx(0.3 * 1.15)  # p90 usage + 15% (VPA)


def test_cpu_hpa_formula_and_scale_in_only_after_the_stabilisation_window(clickhouse, ctx):
    traffic, resources = _steady("api", 4, 1, 0.95, 100e6, 1000e6)
    traffic2, resources2 = _steady("idle", 6, 1, 0.05, 100e6, 1000e6)
    seed_latency(clickhouse, traffic + traffic2)
    seed_resources(clickhouse, resources + resources2)
    recs = {r.service: r for r in scaling.recommend_all(ctx, Window(NOW - 600, NOW, 60), with_anomalies=False)}
    api = recs["api"]
    assert api.evidence["hpa_cpu_instances"] == 6  # ceil(4 x 0.95 / 0.7)
    assert api.action == "scale_out" and api.recommended_instances == 6
    idle = recs["idle"]
    assert idle.action == "scale_in" and idle.recommended_instances == 1
    assert idle.memory_request == pytest.approx(115e6)
    # a window shorter than the stabilisation period never scales in
    short = {r.service: r for r in scaling.recommend_all(ctx, Window(NOW - 120, NOW, 60), with_anomalies=False)}["idle"]
    assert short.action == "none" and short.recommended_instances == 6
    assert any("withheld" in r for r in short.reasons)


def test_services_file_errors_name_file_and_line(tmp_path):
    good = tmp_path / "services.yaml"
    good.write_text("defaults:\n  latency_objective_ms: 250\nservices:\n  mysql:\n    stateful: true\n")
    catalog = load_services(good)
    assert catalog.spec("mysql").stateful and catalog.spec("mysql").latency_objective_ms == 250
    bad = tmp_path / "bad.yaml"
    bad.write_text("services:\n  orders:\n    stateful: true\n    cpu_target: 3\n")
    with pytest.raises(ServicesFileError, match=r"bad.yaml:4: services.orders.cpu_target must be a fraction"):
        load_services(bad)
    bad.write_text("services:\n  orders:\n    statefull: true\n")
    with pytest.raises(ServicesFileError, match=r"bad.yaml:3: .*unknown field 'statefull'"):
        load_services(bad)


def test_abnormal_latency_scales_out_only_under_real_load(clickhouse, ctx, monkeypatch):
    """Rainbond's "response time rises abnormally": acted on when the instances are busy, reported
    (look at dependencies) when they are idle."""
    busy_traffic, busy_resources = _steady("busy", 2, 2, 0.65, 100e6, 1000e6)
    idle_traffic, idle_resources = _steady("quiet", 2, 2, 0.05, 100e6, 1000e6)
    seed_latency(clickhouse, busy_traffic + idle_traffic)
    seed_resources(clickhouse, busy_resources + idle_resources)
    anomaly = {"metric": "latency_p99", "score": 9.0}
    monkeypatch.setattr(scaling, "service_anomalies", lambda ctx, service, window: [{**anomaly, "service": service}])
    recs = {r.service: r for r in scaling.recommend_all(ctx, Window(NOW - 600, NOW, 60))}
    assert recs["busy"].action == "scale_out" and recs["busy"].recommended_instances == 3
    assert recs["busy"].evidence["anomaly_latency_p99_score"] == 9.0
    assert recs["quiet"].recommended_instances <= 2
    assert any("look at dependencies" in r for r in recs["quiet"].reasons)
