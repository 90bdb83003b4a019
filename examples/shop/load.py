"""The shop's load generator: an asyncio httpx client that tells stories in phases and records
exactly what it sent.

    python -m examples.shop.load --base http://127.0.0.1:9100 --duration 60 --report load.json \\
        --admin payment=http://127.0.0.1:9104 --admin carts=http://127.0.0.1:9102

Phases (shares of ``--duration``): ``steady`` traffic, a ``spike`` (4x the rate), ``slow`` (the
``--slow-target`` service, payment by default, is told ``/admin/slow?ms=--slow-ms``), ``failing``
(``--fail-target``, carts by default, answers 503 to ``--fail-ratio``, 0.3, of its requests), then
``recovery``. A phase's injection is switched on at its start and reset at its end through the
target's admin URL (``--admin NAME=URL``); without one the phase runs without injection.

Requests go to the front-end only, open loop at ``--rate`` x ``--scale`` requests/s, at most
``--concurrency`` in flight and ``--max-requests`` in all, and only to 127.0.0.1. When it stops
(end of phases, ``--max-requests``, SIGINT or SIGTERM) it waits for the requests in flight and
writes the report (``Report.as_dict``): per front-end endpoint and per raw path, the number of
requests sent and of errors (status >= 500 or no response at all).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from examples.shop.service import KEEPALIVE_CLIENT_S, Counter

logger = logging.getLogger(__name__)

ALLOWED_HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Injection:
    service: str
    action: str  # "slow" or "fail", an admin endpoint of every shop service
    params: dict


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    share: float  # of the whole duration
    rate_factor: float = 1.0
    injection: Injection | None = None


def default_phases(slow_target: str = "payment", slow_ms: int = 200,
                   fail_target: str = "carts", fail_ratio: float = 0.3) -> tuple[Phase, ...]:
    return (
        Phase("steady", 0.30),
        Phase("spike", 0.15, rate_factor=4.0),
        Phase("slow", 0.20, injection=Injection(slow_target, "slow", {"ms": slow_ms})),
        Phase("failing", 0.20, injection=Injection(fail_target, "fail", {"ratio": fail_ratio})),
        Phase("recovery", 0.15),
    )


@dataclass(frozen=True, slots=True)
class ShopRequest:
    method: str
    endpoint: str  # "METHOD /route/template", as the front-end names its routes
    path: str
    params: dict | None = None
    json: dict | None = None


SOCK_IDS = range(1, 10)  # the seeded socks; 10 answers 404
CUSTOMER_IDS = range(1, 21)
TAGS = ("", "", "", "blue", "formal", "geek", "sport")
SEARCH_WORDS = ("sock", "geek", "action", "classic", "blue", "xyz")


def _home(rng):
    return ShopRequest("GET", "GET /", "/")


def _browse(rng):
    tags = rng.choice(TAGS)
    params = {"page": rng.choice((1, 1, 2)), "size": 6}
    if tags:
        params["tags"] = tags
    return ShopRequest("GET", "GET /catalogue", "/catalogue", params=params)


def _sock(rng):
    sock_id = rng.choice((*SOCK_IDS, 10))
    return ShopRequest("GET", "GET /catalogue/{sock_id}", f"/catalogue/{sock_id}")


def _search(rng):
    return ShopRequest("GET", "GET /search", "/search", params={"q": rng.choice(SEARCH_WORDS)})


def _cart(rng):
    return ShopRequest("GET", "GET /cart", "/cart", params={"customer_id": rng.choice(CUSTOMER_IDS)})


def _add_to_cart(rng):
    return ShopRequest("POST", "POST /cart/items", "/cart/items", params={"customer_id": rng.choice(CUSTOMER_IDS)},
                       json={"sock_id": rng.choice(SOCK_IDS), "quantity": rng.randint(1, 3)})


def _order(rng):
    return ShopRequest("POST", "POST /orders", "/orders", params={"customer_id": rng.choice(CUSTOMER_IDS)})


def _orders(rng):
    return ShopRequest("GET", "GET /orders", "/orders", params={"customer_id": rng.choice(CUSTOMER_IDS)})


def _customer(rng):
    customer_id = rng.choice(CUSTOMER_IDS)
    return ShopRequest("GET", "GET /customers/{customer_id}", f"/customers/{customer_id}")


def _login(rng):
    customer_id = rng.choice(CUSTOMER_IDS)
    password = f"password{customer_id}" if rng.random() < 0.8 else "wrong"  # 401 now and then
    return ShopRequest("POST", "POST /login", "/login", json={"username": f"user{customer_id}", "password": password})


# (weight, request maker): what a crowd of shoppers does.
MIX = ((10, _home), (20, _browse), (20, _sock), (5, _search), (8, _cart), (15, _add_to_cart),
       (8, _order), (4, _orders), (5, _customer), (5, _login))


@dataclass(slots=True)
class PhaseRecord:
    name: str
    rate: float
    planned_s: float
    injection: dict | None
    injected: bool = False
    started_at: float = 0.0
    stopped_at: float = 0.0
    counter: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {"name": self.name, "rate": self.rate, "planned_s": round(self.planned_s, 3),
                "started_at": self.started_at, "stopped_at": self.stopped_at,
                "injection": self.injection, "injected": self.injected,
                "requests": self.counter.requests, "errors": self.counter.errors}


@dataclass(slots=True)
class Report:
    """What was sent. ``endpoints`` keys are "METHOD /route/template" of the front-end, ``paths``
    "METHOD /raw/path" (no query); each has ``requests``, ``errors`` and ``statuses`` (HTTP status,
    or the httpx exception name when no response came back)."""

    base: str
    started_at: float = 0.0
    stopped_at: float = 0.0
    stopped_because: str = "phases done"
    endpoints: dict[str, Counter] = field(default_factory=lambda: collections.defaultdict(Counter))
    paths: dict[str, Counter] = field(default_factory=lambda: collections.defaultdict(Counter))
    phases: list[PhaseRecord] = field(default_factory=list)
    admin_calls: list[dict] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(counter.requests for counter in self.endpoints.values())

    @property
    def errors(self) -> int:
        return sum(counter.errors for counter in self.endpoints.values())

    def as_dict(self) -> dict:
        return {
            "base": self.base,
            "started_at": self.started_at,
            "stopped_at": self.stopped_at,
            "stopped_because": self.stopped_because,
            "requests": self.requests,
            "errors": self.errors,
            "endpoints": {key: counter.as_dict() for key, counter in sorted(self.endpoints.items())},
            "paths": {key: counter.as_dict() for key, counter in sorted(self.paths.items())},
            "phases": [phase.as_dict() for phase in self.phases],
            "admin_calls": self.admin_calls,
        }

    def write(self, path: str | os.PathLike) -> None:
        path = Path(path)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(self.as_dict(), indent=2) + "\n")
        temporary.replace(path)


def local_url(url: str) -> str:
    """``url`` without a trailing slash, if it points at 127.0.0.1; the generator goes nowhere else."""
    parsed = httpx.URL(url)
    if parsed.scheme != "http" or parsed.host != ALLOWED_HOST:
        raise ValueError(f"the load generator only talks to http://{ALLOWED_HOST}: not {url!r}")
    return str(parsed).rstrip("/")


@dataclass(slots=True)
class LoadConfig:
    base: str
    duration: float = 60.0
    rate: float = 20.0  # requests per second in the steady phases, before `scale`
    scale: float = 1.0
    phases: tuple[Phase, ...] = field(default_factory=default_phases)
    admin: dict[str, str] = field(default_factory=dict)  # service name -> its base URL for /admin/*
    concurrency: int = 64
    max_requests: int = 100_000
    timeout: float = 30.0
    seed: int = 1

    def __post_init__(self) -> None:
        self.base = local_url(self.base)
        self.admin = {name: local_url(url) for name, url in self.admin.items()}
        if self.duration <= 0 or self.rate <= 0 or self.scale <= 0:
            raise ValueError("duration, rate and scale must be positive")
        if self.concurrency < 1 or self.max_requests < 1:
            raise ValueError("concurrency and max_requests must be at least 1")


class LoadGenerator:
    def __init__(self, config: LoadConfig) -> None:
        self.config = config
        self.report = Report(config.base)
        self.stopping = asyncio.Event()
        self._rng = random.Random(config.seed)
        self._weights = [weight for weight, _ in MIX]
        self._makers = [maker for _, maker in MIX]
        self._in_flight: set[asyncio.Task] = set()

    def stop(self) -> None:
        """Send nothing more; ``run`` returns once the requests in flight are answered."""
        if not self.stopping.is_set():
            self.report.stopped_because = "stopped"
            self.stopping.set()

    async def run(self) -> Report:
        config = self.config
        share_total = sum(phase.share for phase in config.phases)
        limits = httpx.Limits(max_connections=config.concurrency, max_keepalive_connections=config.concurrency,
                              keepalive_expiry=KEEPALIVE_CLIENT_S)
        async with httpx.AsyncClient(base_url=config.base, timeout=config.timeout, limits=limits,
                                     trust_env=False) as client, \
                httpx.AsyncClient(timeout=config.timeout, trust_env=False) as admin_client:
            self.report.started_at = time.time()
            semaphore = asyncio.Semaphore(config.concurrency)
            try:
                for phase in config.phases:
                    if self.stopping.is_set():
                        break
                    record = PhaseRecord(phase.name, config.rate * config.scale * phase.rate_factor,
                                         config.duration * phase.share / share_total,
                                         {"service": phase.injection.service, "action": phase.injection.action,
                                          **phase.injection.params} if phase.injection else None)
                    self.report.phases.append(record)
                    if phase.injection:
                        record.injected = await self._admin(admin_client, phase.injection.service,
                                                            phase.injection.action, phase.injection.params)
                    try:
                        await self._run_phase(client, semaphore, record)
                    finally:
                        if record.injected:
                            await self._admin(admin_client, phase.injection.service, "reset", {})
            finally:
                if self._in_flight:
                    await asyncio.wait(self._in_flight)
                self.report.stopped_at = time.time()
        return self.report

    async def _run_phase(self, client: httpx.AsyncClient, semaphore: asyncio.Semaphore, record: PhaseRecord) -> None:
        loop = asyncio.get_running_loop()
        record.started_at = time.time()
        start = loop.time()
        end = start + record.planned_s
        sent = 0
        while not self.stopping.is_set():
            due = start + sent / record.rate
            if due >= end:
                break
            if await self._stopped_within(due - loop.time()):
                break
            if self.report.requests + len(self._in_flight) >= self.config.max_requests:
                self.report.stopped_because = "max_requests"
                self.stopping.set()
                break
            await semaphore.acquire()
            request = self._rng.choices(self._makers, self._weights)[0](self._rng)
            task = asyncio.create_task(self._send(client, semaphore, request, record))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
            sent += 1
        # wait out the phase's planned time (nothing more to send but it is not over yet)
        await self._stopped_within(end - loop.time())
        record.stopped_at = time.time()

    async def _stopped_within(self, seconds: float) -> bool:
        if seconds > 0:
            try:
                await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
            except TimeoutError:
                pass
        return self.stopping.is_set()

    async def _send(self, client: httpx.AsyncClient, semaphore: asyncio.Semaphore, request: ShopRequest,
                    record: PhaseRecord) -> None:
        try:
            response = await client.request(request.method, request.path, params=request.params, json=request.json)
            outcome: int | str = response.status_code
        except httpx.HTTPError as exc:
            outcome = type(exc).__name__
        finally:
            semaphore.release()
        self.report.endpoints[request.endpoint].add(outcome)
        self.report.paths[f"{request.method} {request.path}"].add(outcome)
        record.counter.add(outcome)

    async def _admin(self, client: httpx.AsyncClient, service: str, action: str, params: dict) -> bool:
        base = self.config.admin.get(service)
        if base is None:
            logger.warning("no admin URL for %s: phase runs without %s", service, action)
            return False
        call = {"service": service, "url": f"{base}/admin/{action}", "params": params, "at": time.time()}
        try:
            response = await client.post(call["url"], params=params)
            call["status"] = response.status_code
        except httpx.HTTPError as exc:
            call["status"] = type(exc).__name__
        self.report.admin_calls.append(call)
        return call["status"] == 200


async def run(config: LoadConfig) -> Report:
    return await LoadGenerator(config).run()


def _admin_urls(pairs: list[str]) -> dict[str, str]:
    urls = {}
    for pair in pairs:
        name, separator, url = pair.partition("=")
        if not separator:
            raise argparse.ArgumentTypeError(f"--admin wants NAME=URL, not {pair!r}")
        urls[name] = url
    return urls


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.shop.load", description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the front-end's base URL, http://127.0.0.1:PORT")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds for all phases together")
    parser.add_argument("--rate", type=float, default=20.0, help="steady requests per second")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every phase's rate")
    parser.add_argument("--report", help="write the JSON report here when stopping (default: stdout)")
    parser.add_argument("--admin", action="append", default=[], metavar="NAME=URL",
                        help="a service's base URL for its /admin endpoints (repeatable)")
    parser.add_argument("--phases", default="steady,spike,slow,failing,recovery",
                        help="which phases, in order (default all)")
    parser.add_argument("--slow-target", default="payment")
    parser.add_argument("--slow-ms", type=int, default=200)
    parser.add_argument("--fail-target", default="carts")
    parser.add_argument("--fail-ratio", type=float, default=0.3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--max-requests", type=int, default=100_000)
    parser.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    available = {phase.name: phase for phase in default_phases(args.slow_target, args.slow_ms,
                                                               args.fail_target, args.fail_ratio)}
    names = [name.strip() for name in args.phases.split(",") if name.strip()]
    unknown = [name for name in names if name not in available]
    if unknown or not names:
        parser.error(f"unknown phases {unknown}; choose from {sorted(available)}")
    try:
        config = LoadConfig(base=args.base, duration=args.duration, rate=args.rate, scale=args.scale,
                            phases=tuple(available[name] for name in names), admin=_admin_urls(args.admin),
                            concurrency=args.concurrency, max_requests=args.max_requests,
                            timeout=args.timeout, seed=args.seed)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        parser.error(str(exc))
    report = asyncio.run(_run_until_signalled(config))
    if args.report:
        report.write(args.report)
        logger.info("%d requests, %d errors; report in %s", report.requests, report.errors, args.report)
    else:
        print(json.dumps(report.as_dict(), indent=2))


async def _run_until_signalled(config: LoadConfig) -> Report:
    generator = LoadGenerator(config)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, generator.stop)
    return await generator.run()


if __name__ == "__main__":
    main()
