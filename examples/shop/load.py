"""The shop's load generator: an asyncio httpx client that tells stories in phases and records
exactly what it sent.

    python -m examples.shop.load --base http://127.0.0.1:9100 --duration 60 --report load.json \\
        --admin payment=http://127.0.0.1:9104 --admin carts=http://127.0.0.1:9102

Phases (shares of ``--duration``): ``steady`` traffic, a ``spike`` (4x the rate), ``slow`` (the
``--slow-target`` service, payment by default, is told ``/admin/slow?ms=--slow-ms``), ``failing``
(``--fail-target``, carts by default, answers 503 to ``--fail-ratio``, 0.3, of its requests), then
``recovery``. A phase's injection is switched on at its start and reset at its end, once all its
requests are answered (so the next phase may start a little late), through the target's admin URL (``--admin NAME=URL``); without one the phase runs without injection.

Requests go to the front-end only, open loop at ``--rate`` x ``--scale`` requests/s, at most
``--concurrency`` in flight and ``--max-requests`` in all, and only to 127.0.0.1. When it stops
(end of phases, ``--max-requests``, SIGINT or SIGTERM) it waits for the requests in flight and
writes the report (``Report.as_dict``): per front-end endpoint and per raw path, the number of
requests sent and of errors (status >= 500 or no response at all).

Like an ingress gateway, it starts a trace for every request (``--trace-headers``: B3
``x-b3-traceid/x-b3-spanid/x-b3-sampled`` and W3C ``traceparent``, the same ids in both, sampled)
and lists the first ``--trace-log`` trace ids in the report with their endpoint and outcome.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import os
import random
import secrets
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from examples.shop.service import KEEPALIVE_CLIENT_S, Counter

logger = logging.getLogger(__name__)

ALLOWED_HOST = "127.0.0.1"
TRACE_HEADER_STYLES = ("both", "b3", "w3c", "none")


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


class Crowd:
    """What a crowd of shoppers asks for next: a seeded, weighted mix of the front-end's requests.
    Like browsers with sessions, it mostly orders for customers whose cart it has seen filled
    (``answered``), so that most orders reach payment and shipping. The sequence of endpoints
    depends on the seed only; which customer orders also depends on the answers."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._filled_carts: list[int] = []
        # (weight, request maker)
        self._mix = ((10, self._home), (20, self._browse), (20, self._sock), (5, self._search), (8, self._cart),
                     (15, self._add_to_cart), (8, self._order), (4, self._orders), (5, self._customer),
                     (5, self._login))
        self._weights = [weight for weight, _ in self._mix]
        self._makers = [maker for _, maker in self._mix]

    def next_request(self) -> ShopRequest:
        return self._rng.choices(self._makers, self._weights)[0]()

    def answered(self, request: ShopRequest, outcome: int | str) -> None:
        if request.endpoint == "POST /cart/items" and outcome == 201:
            customer_id = request.params["customer_id"]
            if customer_id not in self._filled_carts:
                self._filled_carts.append(customer_id)

    def _customer_id(self) -> int:
        return self._rng.choice(CUSTOMER_IDS)

    def _home(self) -> ShopRequest:
        return ShopRequest("GET", "GET /", "/")

    def _browse(self) -> ShopRequest:
        tags = self._rng.choice(TAGS)
        params = {"page": self._rng.choice((1, 1, 2)), "size": 6}
        if tags:
            params["tags"] = tags
        return ShopRequest("GET", "GET /catalogue", "/catalogue", params=params)

    def _sock(self) -> ShopRequest:
        sock_id = self._rng.choice((*SOCK_IDS, 10))
        return ShopRequest("GET", "GET /catalogue/{sock_id}", f"/catalogue/{sock_id}")

    def _search(self) -> ShopRequest:
        return ShopRequest("GET", "GET /search", "/search", params={"q": self._rng.choice(SEARCH_WORDS)})

    def _cart(self) -> ShopRequest:
        return ShopRequest("GET", "GET /cart", "/cart", params={"customer_id": self._customer_id()})

    def _add_to_cart(self) -> ShopRequest:
        return ShopRequest("POST", "POST /cart/items", "/cart/items", params={"customer_id": self._customer_id()},
                           json={"sock_id": self._rng.choice(SOCK_IDS), "quantity": self._rng.randint(1, 3)})

    def _order(self) -> ShopRequest:
        # draw both whatever the state, so that the endpoint sequence depends on the seed only
        anyone, by_chance = self._customer_id(), self._rng.random() < 0.1
        # now and then a random customer, whose cart may be empty (400)
        customer_id = anyone if by_chance or not self._filled_carts else self._filled_carts[0]
        if customer_id in self._filled_carts:
            self._filled_carts.remove(customer_id)
        return ShopRequest("POST", "POST /orders", "/orders", params={"customer_id": customer_id})

    def _orders(self) -> ShopRequest:
        return ShopRequest("GET", "GET /orders", "/orders", params={"customer_id": self._customer_id()})

    def _customer(self) -> ShopRequest:
        customer_id = self._customer_id()
        return ShopRequest("GET", "GET /customers/{customer_id}", f"/customers/{customer_id}")

    def _login(self) -> ShopRequest:
        customer_id = self._customer_id()
        password = f"password{customer_id}" if self._rng.random() < 0.8 else "wrong"  # 401 now and then
        return ShopRequest("POST", "POST /login", "/login", json={"username": f"user{customer_id}", "password": password})


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
    endpoints: dict[str, Counter] = field(default_factory=lambda: collections.defaultdict(Counter))

    def as_dict(self) -> dict:
        return {"name": self.name, "rate": self.rate, "planned_s": round(self.planned_s, 3),
                "started_at": self.started_at, "stopped_at": self.stopped_at,
                "injection": self.injection, "injected": self.injected,
                "requests": self.counter.requests, "errors": self.counter.errors,
                "endpoints": {key: counter.as_dict() for key, counter in sorted(self.endpoints.items())}}


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
    traces: list[dict] = field(default_factory=list)
    traces_not_listed: int = 0

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
            "traces": self.traces,
            "traces_not_listed": self.traces_not_listed,
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
    rate: float = 10.0  # requests per second in the steady phases, before `scale`
    scale: float = 1.0
    phases: tuple[Phase, ...] = field(default_factory=default_phases)
    admin: dict[str, str] = field(default_factory=dict)  # service name -> its base URL for /admin/*
    concurrency: int = 64
    max_requests: int = 100_000
    timeout: float = 30.0
    seed: int = 1
    trace_headers: str = "both"  # one of TRACE_HEADER_STYLES
    trace_log: int = 10_000  # trace ids listed in the report, at most

    def __post_init__(self) -> None:
        if self.trace_headers not in TRACE_HEADER_STYLES:
            raise ValueError(f"trace_headers must be one of {TRACE_HEADER_STYLES}, not {self.trace_headers!r}")
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
        self._crowd = Crowd(config.seed)
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
        sent_tasks: list[asyncio.Task] = []
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
            request = self._crowd.next_request()
            task = asyncio.create_task(self._send(client, semaphore, request, record))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
            sent_tasks.append(task)
            sent += 1
        # wait out the phase's planned time (nothing more to send but it is not over yet)
        await self._stopped_within(end - loop.time())
        # and its last answers: its injection must last until all its requests are served
        pending = [task for task in sent_tasks if not task.done()]
        if pending:
            await asyncio.wait(pending)
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
        trace_id, headers = self._trace_headers()
        try:
            response = await client.request(request.method, request.path, params=request.params, json=request.json,
                                            headers=headers)
            outcome: int | str = response.status_code
        except httpx.HTTPError as exc:
            outcome = type(exc).__name__
        finally:
            semaphore.release()
        report = self.report
        report.endpoints[request.endpoint].add(outcome)
        report.paths[f"{request.method} {request.path}"].add(outcome)
        record.counter.add(outcome)
        record.endpoints[request.endpoint].add(outcome)
        self._crowd.answered(request, outcome)
        if trace_id is not None:
            if len(report.traces) < self.config.trace_log:
                report.traces.append({"trace_id": trace_id, "endpoint": request.endpoint, "path": request.path,
                                      "phase": record.name, "status": outcome})
            else:
                report.traces_not_listed += 1

    def _trace_headers(self) -> tuple[str | None, dict[str, str]]:
        style = self.config.trace_headers
        if style == "none":
            return None, {}
        trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
        headers = {}
        if style in ("both", "b3"):
            headers.update({"x-b3-traceid": trace_id, "x-b3-spanid": span_id, "x-b3-sampled": "1"})
        if style in ("both", "w3c"):
            headers["traceparent"] = f"00-{trace_id}-{span_id}-01"
        return trace_id, headers

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
    parser.add_argument("--rate", type=float, default=10.0, help="steady requests per second")
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
    parser.add_argument("--trace-headers", choices=TRACE_HEADER_STYLES, default="both",
                        help="trace context sent with each request (default both B3 and W3C)")
    parser.add_argument("--trace-log", type=int, default=10_000, help="trace ids listed in the report, at most")
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
                            timeout=args.timeout, seed=args.seed, trace_headers=args.trace_headers,
                            trace_log=args.trace_log)
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
