"""Erlang C closed forms against textbook values and a discrete-event simulation."""

from __future__ import annotations

import math

import pytest

from analysis import queueing
from tests.analysis.mmc import simulate


def test_erlang_c_textbook_values():
    # a = 2 Erlang on 3 servers: C = 4/9 (P_wait of the classic call-centre example)
    assert queueing.erlang_c(3, 2.0) == pytest.approx(4 / 9)
    assert queueing.erlang_c(1, 0.5) == pytest.approx(0.5)  # M/M/1: P(wait) = rho
    assert queueing.erlang_c(2, 2.0) == 1.0


def test_mm1_response_time_is_exponential():
    lam, mu = 30.0, 50.0
    assert queueing.response_quantile_s(0.99, lam, mu, 1) == pytest.approx(math.log(100) / (mu - lam), rel=1e-6)
    assert queueing.mean_response_s(lam, mu, 1) == pytest.approx(1 / (mu - lam))


def test_fit_service_rate_inverts_the_mean_response():
    mu = queueing.fit_service_rate(80.0, queueing.mean_response_s(80.0, 25.0, 4), 4)
    assert mu == pytest.approx(25.0, rel=1e-6)


@pytest.mark.parametrize("lam,mu,c", [(40.0, 10.0, 5), (90.0, 20.0, 5), (8.0, 10.0, 1)])
def test_p99_matches_a_discrete_event_simulation(lam, mu, c):
    durations = sorted(simulate(lam, mu, c, 60_000, seed=5))
    simulated = durations[int(0.99 * len(durations))]
    assert queueing.response_quantile_s(0.99, lam, mu, c) == pytest.approx(simulated, rel=0.08)
