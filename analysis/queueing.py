"""M/M/c (Erlang C): how many servers keep a latency percentile under an objective.

Poisson arrivals at rate ``lam`` (1/s), exponential service at rate ``mu`` per server, ``c``
servers, first come first served. The response time T is the wait W plus the service S: W is 0
with probability 1 - C(c, a) (Erlang C, a = lam / mu) and otherwise exponential with rate
``c mu - lam``; S is exponential with rate ``mu``. So P(T > t) has a closed form and its
percentiles follow by bisection.
"""

from __future__ import annotations

import math


def erlang_c(c: int, offered: float) -> float:
    """Probability that an arrival waits (c servers, offered load a = lam / mu), 1 if unstable."""
    if offered <= 0:
        return 0.0
    if c <= offered:
        return 1.0
    # Erlang B by its stable recurrence, then C from B
    b = 1.0
    for k in range(1, c + 1):
        b = offered * b / (k + offered * b)
    rho = offered / c
    return b / (1 - rho + rho * b)


def mean_response_s(lam: float, mu: float, c: int) -> float:
    if lam >= c * mu:
        return math.inf
    return 1 / mu + erlang_c(c, lam / mu) / (c * mu - lam)


def response_survival(t: float, lam: float, mu: float, c: int) -> float:
    """P(T > t)."""
    if lam >= c * mu:
        return 1.0
    wait = erlang_c(c, lam / mu)
    theta = c * mu - lam
    if abs(theta - mu) < 1e-12 * mu:
        convolved = (1 + mu * t) * math.exp(-mu * t)
    else:
        convolved = (theta * math.exp(-mu * t) - mu * math.exp(-theta * t)) / (theta - mu)
    return (1 - wait) * math.exp(-mu * t) + wait * convolved


def response_quantile_s(q: float, lam: float, mu: float, c: int) -> float:
    if lam >= c * mu:
        return math.inf
    target = 1 - q
    low, high = 0.0, 1 / mu
    while response_survival(high, lam, mu, c) > target:
        high *= 2
    for _ in range(100):
        middle = (low + high) / 2
        if response_survival(middle, lam, mu, c) > target:
            low = middle
        else:
            high = middle
    return high


def smallest_servers(lam: float, mu: float, objective_s: float, q: float = 0.99, limit: int = 10_000) -> int | None:
    """The fewest servers whose q-quantile response time is within ``objective_s``; None when even
    an idle server is too slow (the service time alone breaks the objective: scale up, not out)."""
    if lam <= 0:
        return 1
    if -math.log(1 - q) / mu > objective_s:  # S's own quantile already exceeds it
        return None
    c = max(1, math.floor(lam / mu) + 1)
    while c <= limit:
        if response_quantile_s(q, lam, mu, c) <= objective_s:
            return c
        c += 1
    return None


def fit_service_rate(lam: float, mean_response: float, c: int) -> float | None:
    """The per-server service rate mu with which M/M/c at (lam, c) has the observed mean response
    time: the measured latency includes queueing, so 1/mean would overstate the service time under
    load. None when the observation is impossible for the model (mean_response <= 0)."""
    if mean_response <= 0 or c < 1:
        return None
    if lam <= 0:
        return 1 / mean_response
    low = lam / c * (1 + 1e-9)  # stability bound: response -> inf
    high = max(2 / mean_response, low * 2)
    while mean_response_s(lam, high, c) > mean_response:
        high *= 2
    for _ in range(200):
        middle = (low + high) / 2
        if mean_response_s(lam, middle, c) > mean_response:
            low = middle
        else:
            high = middle
    return high
