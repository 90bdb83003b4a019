"""A discrete-event M/M/c simulation: the known truth the scaling recommender is checked against."""

from __future__ import annotations

import heapq
import random


def simulate(lam: float, mu: float, servers: int, requests: int, seed: int = 0, start_s: float = 0.0):
    """Response times (s) of ``requests`` Poisson arrivals served FCFS by ``servers`` exponential
    servers; with ``start_s`` given, yields (arrival time, response time, server) instead."""
    return [r for _, r, _ in simulate_timed(lam, mu, servers, requests, seed, start_s)]


def simulate_timed(lam: float, mu: float, servers: int, requests: int, seed: int = 0, start_s: float = 0.0):
    rng = random.Random(seed)
    free_at = [(start_s, server) for server in range(servers)]  # (time the server frees up, id)
    heapq.heapify(free_at)
    now = start_s
    out = []
    for _ in range(requests):
        now += rng.expovariate(lam)
        free, server = heapq.heappop(free_at)
        begin = max(now, free)
        end = begin + rng.expovariate(mu)
        heapq.heappush(free_at, (end, server))
        out.append((now, end - now, server))
    return out
