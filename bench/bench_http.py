"""HTTP sidecar benchmark: Debian nginx directly vs through the agent, in the same run.

    .venv/bin/python bench/bench_http.py [--wrk-seconds 5] [--rate-seconds 16] [--rate 1000] [--rounds 16]

The agent runs as ``meshscope agent`` with every feature on at its defaults (HTTP parsing, trace
context, spans at the default sampling, metrics, resource sampling, health probes) and publishes
to a tansu broker started here. Measured:

- throughput at saturation with wrk (ratio agent / direct);
- added latency p50 and p99 at a fixed request rate on keep-alive connections (an open-loop
  asyncio client: each of 10 connections sends on a fixed schedule; a request's latency runs from
  its send, or from its scheduled time when the previous response came after it, so queueing is
  not hidden, while the client's own timer lateness, up to a millisecond, which blurred the
  figures, is left out); direct, the agent and the references take turns
  (``--rounds`` slices each), so that a drift in the machine's speed falls on all of them alike;
- agent CPU seconds per 1,000 requests (psutil on the agent process) at saturation, during the
  wrk run: the condition under which the issue's floor figure (a bare uvloop proxy with httptools,
  ~0.014) is reproduced here; and, printed above the last line, at the fixed rate, where every
  request wakes an idle process and costs more (no batching of events);
- agent RSS after the runs;
- with ``perf`` (Debian's linux-perf), the instructions each process retires per request at
  saturation: CPU seconds on a shared machine move with its neighbours, instruction counts barely
  do, so ``instructions_vs_floor`` is the steadier comparison of the agent with the floor;
- for reference, in the same run: the same agent with a plain TCP listener (no HTTP parsing);
  the floor for a Python sidecar, ``bench/bare_proxy.py --httptools`` (a bare uvloop proxy that
  feeds httptools, no telemetry, no threads): its throughput and CPU per 1,000 requests in both
  conditions, and the agent's CPU as a multiple of it; and Debian's haproxy (C, TCP mode, one
  thread), whose added latency is what a proxy hop itself costs on this machine, whatever the
  proxy does.

Prints figures, then a last line
``throughput_ratio=N added_p50_ms=N added_p99_ms=N cpu_per_1000rps=N rss_mb=N floor_cpu_per_1000rps=N
cpu_vs_floor=N fixed_rate_cpu_per_1000rps=N floor_added_p50_ms=N floor_added_p99_ms=N haproxy_added_p50_ms=N
haproxy_added_p99_ms=N [instructions_vs_floor=N]`` (cpu_per_1000rps and the floor at saturation; the floor's and
haproxy's added latency at the fixed rate, in the same turns). Needs Debian packages nginx, wrk and haproxy.
Figures on a shared 2-core machine are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench_support import start_haproxy
from meshscope.devbroker import TansuBroker, free_port, wait_for_port

NGINX_CONF = """
worker_processes 1;
daemon off;
error_log {root}/error.log warn;
pid {root}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    server {{
        listen 127.0.0.1:{port};
        root {root}/www;
    }}
}}
"""
PATH = "/1k.bin"
CONNECTIONS = 10


def start_nginx(root: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    (root / "www").mkdir(parents=True)
    (root / "www" / "1k.bin").write_bytes(os.urandom(1024))
    # nginx's workers run as nobody when started by root: every directory down to the file must
    # be readable by them, or each request is a 403 and the benchmark measures error pages
    for directory in (root.parent, root, root / "www"):
        directory.chmod(0o755)
    (root / "nginx.conf").write_text(NGINX_CONF.format(root=root, port=port))
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    process = subprocess.Popen([binary, "-c", str(root / "nginx.conf"), "-p", str(root)], start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port("127.0.0.1", port)
    return process, port


def start_agent(upstream_port: int, bootstrap: str, spool: Path, protocol: str = "http") -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "meshscope.cli", "agent", "--service", f"bench-{protocol}", "--version", "v1",
         "--inbound", f"127.0.0.1:{port}=127.0.0.1:{upstream_port}/{protocol}",
         "--kafka-bootstrap", bootstrap, "--agent-spool-dir", str(spool)],
        stdout=subprocess.DEVNULL, stderr=open(spool.parent / f"agent-{protocol}.log", "wb"),
    )
    wait_for_port("127.0.0.1", port)
    return process, port


def start_bare_proxy(upstream_port: int) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("bare_proxy.py")), str(port), f"127.0.0.1:{upstream_port}", "--httptools"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_for_port("127.0.0.1", port)
    return process, port


def wrk(port: int, seconds: float, connections: int = 32) -> float:
    output = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(int(round(seconds)), 1)}s", f"http://127.0.0.1:{port}{PATH}"],
        capture_output=True, text=True, check=True,
    ).stdout
    if "Non-2xx" in output:
        raise SystemExit(f"bench_http: wrk got error responses through port {port}:\n{output}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))


class InstructionCount:
    """Instructions a process retires while the block runs (``perf stat``; None without perf or
    its counters). Unlike CPU seconds, the count barely moves with other work on the machine, so
    the agent and the floor compare fairly even on a busy shared machine."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.count: int | None = None

    def __enter__(self) -> InstructionCount:
        self._perf = None
        if shutil.which("perf"):
            self._perf = subprocess.Popen(
                ["perf", "stat", "-x", ",", "-e", "instructions", "-p", str(self.pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )
            time.sleep(0.2)  # perf attaches
        return self

    def __exit__(self, *exc_info) -> None:
        if self._perf is None:
            return
        self._perf.send_signal(signal.SIGINT)
        _, report = self._perf.communicate(timeout=10)
        match = re.search(r"^(\d+),[^,]*,instructions", report, re.MULTILINE)
        self.count = int(match.group(1)) if match else None


def cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU seconds the process has used so far."""
    return sum(process.cpu_times()[:2])


def wrk_with_cpu(process: subprocess.Popen, port: int, seconds: float) -> tuple[float, float, float | None]:
    """Requests per second at saturation, the process's CPU seconds per 1,000 requests and its
    instructions per request (None without perf)."""
    proc = psutil.Process(process.pid)
    with InstructionCount(process.pid) as instructions:
        before = cpu_seconds(proc)
        started = time.monotonic()
        rps = wrk(port, seconds)
        cpu = cpu_seconds(proc) - before
        elapsed = time.monotonic() - started
    requests = rps * elapsed
    per_request = instructions.count / requests if instructions.count else None
    return rps, cpu / requests * 1000, per_request


class _Client(asyncio.Protocol):
    """One keep-alive connection; a response is complete when ``response_size`` bytes arrived
    (nginx answers a static file with a response of constant size)."""

    def __init__(self, response_size: int) -> None:
        self.response_size = response_size
        self.received = 0
        self.waiter: asyncio.Future | None = None
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        if self.received >= self.response_size and self.waiter is not None and not self.waiter.done():
            self.received -= self.response_size
            self.waiter.set_result(None)

    def connection_lost(self, exc) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("closed"))


REQUEST = f"GET {PATH} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()


def response_size(port: int) -> int:
    import socket

    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(REQUEST.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status_line = data.partition(b"\r\n")[0].decode(errors="replace")
    if not status_line.startswith("HTTP/1.1 200 "):
        raise SystemExit(f"bench_http: nginx did not serve {PATH}: {status_line}")
    # the benchmark's requests are keep-alive: same response without "Connection: close"
    return len(data) - len(b"Connection: close\r\n")


async def fixed_rate(port: int, rate: float, seconds: float, size: int) -> list[float]:
    loop = asyncio.get_running_loop()
    clients = []
    for _ in range(CONNECTIONS):
        _, protocol = await loop.create_connection(lambda: _Client(size), "127.0.0.1", port)
        clients.append(protocol)
    latencies: list[float] = []
    interval = CONNECTIONS / rate
    # perf_counter, not loop.time(): uvloop's clock has millisecond resolution
    clock = time.perf_counter
    start = clock() + 0.05

    async def run(index: int, client: _Client) -> None:
        due = start + index * interval / CONNECTIONS
        end = start + seconds
        while due < end:
            delay = due - clock()
            if delay > 0:
                await asyncio.sleep(delay)
                # the loop's timers wake up to a millisecond late: that lateness is the client's,
                # so the request's time runs from when it was sent
                sent = clock()
            else:
                # the previous response came after this request was due: the wait is the target's
                sent = due
            client.waiter = loop.create_future()
            client.transport.write(REQUEST)
            await client.waiter
            latencies.append(clock() - sent)
            due += interval

    await asyncio.gather(*(run(i, c) for i, c in enumerate(clients)))
    for client in clients:
        client.transport.close()
    return latencies


def _count(instructions: float | None) -> str:
    return f"{instructions:,.0f}" if instructions else "(no perf)"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * (len(ordered) - 1)), len(ordered) - 1)]


def measure_fixed_rate(port: int, rate: float, seconds: float, size: int) -> list[float]:
    import uvloop

    return uvloop.run(fixed_rate(port, rate, seconds, size))


class FixedRateResult:
    """One target's latencies (seconds) and CPU seconds over the turns of a fixed-rate run."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.cpu = 0.0

    def ms(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000

    def cpu_per_1000(self) -> float:
        return self.cpu / len(self.latencies) * 1000


def interleaved_fixed_rate(
    targets: dict[str, tuple[int, psutil.Process | None]], rate: float, seconds: float, rounds: int, size: int
) -> dict[str, FixedRateResult]:
    """Each target's results over ``rounds`` slices of a fixed-rate run, the targets taking turns:
    a drift in the machine's speed over the run (other work, a noisy neighbour) then falls on every
    target alike instead of on whichever ran during it."""
    results = {name: FixedRateResult() for name in targets}
    for _ in range(rounds):
        for name, (port, process) in targets.items():
            before = cpu_seconds(process) if process is not None else 0.0
            results[name].latencies += measure_fixed_rate(port, rate, seconds / rounds, size)
            if process is not None:
                results[name].cpu += cpu_seconds(process) - before
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wrk-seconds", type=float, default=5)
    # 16 turns of 1 s: with 4 turns of 2 s, the added p50 of the same code moved 0.02-0.23 ms
    # from run to run on a noisy machine; with 16, 0.15-0.20 (0.27 in a run the machine stalled)
    parser.add_argument("--rate-seconds", type=float, default=16)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--rounds", type=int, default=16, help="turns the fixed-rate targets take (default 16)")
    args = parser.parse_args()
    for tool in ("nginx", "wrk", "haproxy"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            print(f"bench_http: {tool} not found (apt-get install nginx wrk haproxy, or make system-deps)", file=sys.stderr)
            return 2
    work = Path(tempfile.mkdtemp(prefix="bench-http-"))
    broker = TansuBroker(log_path=work / "tansu.log").start()
    nginx, nginx_port = start_nginx(work / "nginx")
    agent, agent_port = start_agent(nginx_port, broker.bootstrap, work / "spool")
    tcp_agent, tcp_port = start_agent(nginx_port, broker.bootstrap, work / "spool", protocol="tcp")
    floor, floor_port = start_bare_proxy(nginx_port)
    haproxy, haproxy_port = start_haproxy("127.0.0.1", nginx_port, work)
    try:
        agent_process = psutil.Process(agent.pid)
        size = response_size(nginx_port)
        if response_size(agent_port) != size or response_size(floor_port) != size:
            raise SystemExit("bench_http: the agent changed the response")
        # warm-up: a sidecar runs for days; its first seconds (connections to Kafka, the first
        # samples and exports, code paths run for the first time) cost more and are not measured
        wrk(nginx_port, 1)
        for port in (agent_port, tcp_port, floor_port):
            wrk(port, args.wrk_seconds)
        direct_rps = wrk(nginx_port, args.wrk_seconds)
        agent_rps, cpu_per_1000, agent_instructions = wrk_with_cpu(agent, agent_port, args.wrk_seconds)
        tcp_rps, tcp_per_1000, tcp_instructions = wrk_with_cpu(tcp_agent, tcp_port, args.wrk_seconds)
        floor_rps, floor_per_1000, floor_instructions = wrk_with_cpu(floor, floor_port, args.wrk_seconds)
        instructions_vs_floor = agent_instructions / floor_instructions if agent_instructions and floor_instructions else None
        print(f"wrk saturation ({args.wrk_seconds:g}s, 32 connections, {PATH}), req/s, CPU-seconds per 1,000 requests"
              " and instructions per request (perf):")
        print(f"  direct                                   {direct_rps:9,.0f}")
        print(f"  through the agent                        {agent_rps:9,.0f}  {cpu_per_1000:.4f}  {_count(agent_instructions)}")
        print(f"  the agent as a plain TCP proxy (no HTTP) {tcp_rps:9,.0f}  {tcp_per_1000:.4f}  {_count(tcp_instructions)}")
        print(f"  floor, bench/bare_proxy.py --httptools   {floor_rps:9,.0f}  {floor_per_1000:.4f}  {_count(floor_instructions)}"
              f"  (agent = {cpu_per_1000 / floor_per_1000:.2f} x floor in CPU seconds"
              + (f", {instructions_vs_floor:.2f} x in instructions)" if instructions_vs_floor else ")"))

        # let the agent finish what the saturation run left (its interval flush and span export)
        # so the fixed-rate run measures the steady state, not the aftermath of a storm
        time.sleep(12)
        for port in (nginx_port, agent_port, tcp_port, floor_port, haproxy_port):  # warm-up
            measure_fixed_rate(port, args.rate, 1, size)
        fixed = interleaved_fixed_rate(
            {
                "direct": (nginx_port, None),
                "agent": (agent_port, agent_process),
                "tcp": (tcp_port, psutil.Process(tcp_agent.pid)),
                "floor": (floor_port, psutil.Process(floor.pid)),
                "haproxy": (haproxy_port, psutil.Process(haproxy.pid)),
            },
            args.rate, args.rate_seconds, args.rounds, size,
        )
        rss_mb = agent_process.memory_info().rss / 1e6
        direct, through_agent, tcp, floor_fixed, haproxy_fixed = (
            fixed[name] for name in ("direct", "agent", "tcp", "floor", "haproxy"))
        direct_p50, direct_p99 = direct.ms(0.5), direct.ms(0.99)
        agent_p50, agent_p99 = through_agent.ms(0.5), through_agent.ms(0.99)
        floor_p50, floor_p99 = floor_fixed.ms(0.5), floor_fixed.ms(0.99)
        haproxy_p50, haproxy_p99 = haproxy_fixed.ms(0.5), haproxy_fixed.ms(0.99)
        fixed_per_1000, fixed_floor_per_1000 = through_agent.cpu_per_1000(), floor_fixed.cpu_per_1000()
        print(f"fixed rate {args.rate:g} req/s on {CONNECTIONS} keep-alive connections, {args.rate_seconds:g}s per target "
              f"in {args.rounds} turns:")
        print(f"  direct        p50 {direct_p50:.3f} ms  p99 {direct_p99:.3f} ms")
        print(f"  through agent p50 {agent_p50:.3f} ms  p99 {agent_p99:.3f} ms  ({len(through_agent.latencies)} requests)")
        print(f"  agent CPU {through_agent.cpu:.2f} s = {fixed_per_1000:.4f} CPU-seconds per 1,000 requests; agent RSS {rss_mb:.1f} MB")
        print(f"  the agent as a plain TCP proxy: {tcp.cpu_per_1000():.4f} CPU-seconds per 1,000 "
              f"requests, p50 {tcp.ms(0.5):.3f} ms p99 {tcp.ms(0.99):.3f} ms")
        print(f"  floor: {fixed_floor_per_1000:.4f} CPU-seconds per 1,000 requests, p50 {floor_p50:.3f} ms "
              f"p99 {floor_p99:.3f} ms; agent = {fixed_per_1000 / fixed_floor_per_1000:.2f} x floor")
        print(f"  haproxy (C, TCP mode): {haproxy_fixed.cpu_per_1000():.4f} CPU-seconds per 1,000 requests, "
              f"p50 {haproxy_p50:.3f} ms p99 {haproxy_p99:.3f} ms: what a proxy hop itself adds here")
        print(f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: figures are noisy on a shared machine")
        print(
            f"throughput_ratio={agent_rps / direct_rps:.3f} added_p50_ms={agent_p50 - direct_p50:.3f} "
            f"added_p99_ms={agent_p99 - direct_p99:.3f} cpu_per_1000rps={cpu_per_1000:.4f} rss_mb={rss_mb:.1f} "
            f"floor_cpu_per_1000rps={floor_per_1000:.4f} cpu_vs_floor={cpu_per_1000 / floor_per_1000:.2f} "
            f"fixed_rate_cpu_per_1000rps={fixed_per_1000:.4f} floor_added_p50_ms={floor_p50 - direct_p50:.3f} "
            f"floor_added_p99_ms={floor_p99 - direct_p99:.3f} haproxy_added_p50_ms={haproxy_p50 - direct_p50:.3f} "
            f"haproxy_added_p99_ms={haproxy_p99 - direct_p99:.3f}"
            + (f" instructions_vs_floor={instructions_vs_floor:.2f}" if instructions_vs_floor else "")
        )
        return 0
    finally:
        for process in (agent, tcp_agent, floor, haproxy):
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        nginx.terminate()
        nginx.wait(5)
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
