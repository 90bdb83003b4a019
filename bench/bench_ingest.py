"""Ingestion benchmark: Zipkin JSON v2 POSTs of 100 spans each into one `meshscope serve` process
(uvicorn, spool, Kafka producer, writer thread) -> tansu -> ClickHouse (chdb), until every span is
written and queryable. The clock starts once the writer has joined its consumer group.

The load is wrk (C, from Debian) running ``bench/ingest_load.lua``: each of ``--clients``
connections posts bodies of 100 spans never sent before, one request at a time. A Python load
client took a quarter to half of this 2-core machine's CPU from the process it measured.

    .venv/bin/python bench/bench_ingest.py [--spans 200000] [--clients 4]

Prints its figures, then as the last line ``spans_per_s=N``. ``serve_cpu_us_per_span`` (the serve
process's CPU time over the same clock, per span) moves little when other work shares the machine,
unlike the rate.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import NamedTuple

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_support import wait_healthy
from meshscope.devbroker import TansuBroker, free_port  # noqa: E402

SPANS_PER_REQUEST = 100
LOAD_SCRIPT = Path(__file__).with_name("ingest_load.lua")


class LoadResult(NamedTuple):
    answered: int
    failed: int
    last_traces: list[str]
    cpu_s: float


def run_load(base: str, clients: int, requests_per_client: int, work: Path) -> LoadResult:
    """wrk (C) posting ``requests_per_client`` bodies of 100 new spans on each of ``clients``
    connections (bench/ingest_load.lua), one at a time per connection; with the CPU it used."""
    done = work / "load-done"
    done.mkdir()
    wrk = subprocess.Popen(
        ["wrk", f"-t{clients}", f"-c{clients}", "-d600s", "--timeout", "60s", "-s", str(LOAD_SCRIPT), base,
         "--", uuid.uuid4().hex[:8], str(requests_per_client), str(done)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    while len(list(done.iterdir())) < clients and wrk.poll() is None:
        time.sleep(0.01)
    wrk.send_signal(signal.SIGINT)  # wrk's own clock would run on for its whole -d
    output = wrk.stdout.read()
    _, status, usage = os.wait4(wrk.pid, 0)
    wrk.returncode = os.waitstatus_to_exitcode(status)
    threads = [dict(field.split("=", 1) for field in line.split()) for line in output.splitlines() if line.startswith("thread=")]
    if wrk.returncode != 0 or len(threads) != clients:
        raise SystemExit(f"wrk failed (exit {wrk.returncode}):\n{output[-2000:]}")
    return LoadResult(sum(int(t["answered"]) for t in threads), sum(int(t["failed"]) for t in threads),
                      [t["last_trace"] for t in threads], usage.ru_utime + usage.ru_stime)


def metric(client: httpx.Client, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    requests_per_client = max(1, args.spans // SPANS_PER_REQUEST // args.clients)
    requests = requests_per_client * args.clients
    total = requests * SPANS_PER_REQUEST
    with tempfile.TemporaryDirectory(prefix="meshscope-bench-ingest-") as tmp, TansuBroker(log_path=Path(tmp) / "tansu.log") as broker:
        port = free_port()
        env = {**os.environ, "MESHSCOPE_PORT": str(port), "MESHSCOPE_KAFKA_BOOTSTRAP": broker.bootstrap,
               "MESHSCOPE_CLICKHOUSE_URL": f"chdb://{tmp}/chdb", "MESHSCOPE_SPOOL_DIR": f"{tmp}/spool",
               "MESHSCOPE_DASHBOARD": "false", "MESHSCOPE_WRITER_BATCH_SIZE": "50000", "MESHSCOPE_WRITER_BATCH_MS": "500"}
        log = open(Path(tmp) / "serve.log", "wb")
        server = subprocess.Popen([sys.executable, "-m", "meshscope.cli", "serve"], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(base_url=base, timeout=30) as client:
                wait_healthy(client, server, Path(tmp) / "serve.log", timeout=60)
                # steady state: the clock starts once the writer has joined its consumer group
                # (a one-time start-up cost of a few seconds with tansu, printed apart)
                joining = time.perf_counter()
                while metric(client, "meshscope_writer_partitions") < 1:
                    if time.perf_counter() - joining > 60:
                        raise SystemExit("the writer did not join its consumer group within 60 s")
                    time.sleep(0.05)
                joined_in_s = time.perf_counter() - joining
                serve_process = psutil.Process(server.pid)
                cpu_before = serve_process.cpu_times()
                machine_before = psutil.cpu_times()
                started = time.perf_counter()
                load = run_load(base, args.clients, requests_per_client, Path(tmp))
                accepted_at = time.perf_counter()
                if load.failed or load.answered != requests:
                    raise SystemExit(f"{load.failed} of {load.answered} requests failed ({requests} sent)")
                while metric(client, "meshscope_spans_written_total") < total:
                    if time.perf_counter() - started > 600:
                        raise SystemExit("spans not all written after 600 s")
                    time.sleep(0.05)
                written_at = time.perf_counter()
                # queryable: the last trace each client posted is found through the API
                for last in load.last_traces:
                    while client.get(f"/api/v2/trace/{last}").status_code != 200:
                        time.sleep(0.05)
                queryable_at = time.perf_counter()
                cpu_after = serve_process.cpu_times()
                machine_after = psutil.cpu_times()
        finally:
            server.terminate()
            server.wait(30)
    elapsed = queryable_at - started
    print(f"spans={total} requests={requests} spans_per_request={SPANS_PER_REQUEST} clients={args.clients}")
    print(f"writer_joined_group_in_s={joined_in_s:.2f} (before the clock started)")
    print(f"accepted_in_s={accepted_at - started:.2f} accept_spans_per_s={total / (accepted_at - started):.0f}")
    serve_cpu_s = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    print(f"serve_cpu_s={serve_cpu_s:.2f} serve_cpu_us_per_span={serve_cpu_s / total * 1e6:.1f} "
          f"serve_cpu_percent={100 * serve_cpu_s / elapsed:.0f}")
    # where the machine's cores went: serve runs on one interpreter lock, so it can stay below the
    # machine's capacity while its clients and the broker leave cores idle
    machine_idle_s = machine_after.idle - machine_before.idle
    print(f"load_client_cores={load.cpu_s / elapsed:.2f} machine_idle_cores={machine_idle_s / elapsed:.2f} "
          f"of {psutil.cpu_count()}")
    print(f"written_in_s={written_at - started:.2f} queryable_in_s={elapsed:.2f}")
    print(f"spans_per_s={total / elapsed:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
