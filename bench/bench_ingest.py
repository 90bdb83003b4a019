"""Ingestion benchmark: Zipkin JSON v2 POSTs of 100 spans each into one `meshscope serve` process
(uvicorn, spool, Kafka producer, writer thread) -> tansu -> ClickHouse (chdb), until every span is
written and queryable. The clock starts once the writer has joined its consumer group.

    .venv/bin/python bench/bench_ingest.py [--spans 200000] [--clients 4]

Prints its figures, then as the last line ``spans_per_s=N``. ``serve_cpu_us_per_span`` (the serve
process's CPU time over the same clock, per span) moves little when other work shares the machine,
unlike the rate.
"""

from __future__ import annotations

import argparse
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import orjson
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_support import wait_healthy
from meshscope.devbroker import TansuBroker, free_port  # noqa: E402

SPANS_PER_REQUEST = 100
SPANS_PER_TRACE = 10


def make_bodies(total_spans: int) -> tuple[list[bytes], list[str]]:
    bodies, trace_ids = [], []
    now = int(time.time() * 1_000_000)
    services = [f"service-{i}" for i in range(20)]
    for request in range(total_spans // SPANS_PER_REQUEST):
        spans = []
        for _ in range(SPANS_PER_REQUEST // SPANS_PER_TRACE):
            trace_id = uuid.uuid4().hex
            trace_ids.append(trace_id)
            root = trace_id[:16]
            service = services[len(trace_ids) % 20]
            for index in range(SPANS_PER_TRACE):
                span = {"traceId": trace_id, "id": root if index == 0 else uuid.uuid4().hex[:16],
                        "kind": "SERVER" if index == 0 else "CLIENT", "name": f"get /api/{index % 5}",
                        "timestamp": now + request * 10 + index, "duration": 1000 + index * 37,
                        "localEndpoint": {"serviceName": service, "ipv4": "10.0.0.1", "port": 8080},
                        "tags": {"http.method": "GET", "http.status_code": "200"}}
                if index:
                    span["parentId"] = root
                    span["remoteEndpoint"] = {"serviceName": services[(len(trace_ids) + index) % 20]}
                spans.append(span)
        bodies.append(orjson.dumps(spans))
    return bodies, trace_ids


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
    bodies, trace_ids = make_bodies(args.spans)
    total = len(bodies) * SPANS_PER_REQUEST
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
                work: queue.Queue[bytes | None] = queue.Queue()
                for body in bodies:
                    work.put(body)
                failures: list[int] = []

                def sender() -> None:
                    with httpx.Client(base_url=base, timeout=60, headers={"content-type": "application/json"}) as session:
                        while (body := work.get_nowait() if not work.empty() else None) is not None:
                            response = session.post("/api/v2/spans", content=body)
                            if response.status_code != 202:
                                failures.append(response.status_code)

                serve_process = psutil.Process(server.pid)
                cpu_before = serve_process.cpu_times()
                client_before, machine_before = psutil.Process().cpu_times(), psutil.cpu_times()
                started = time.perf_counter()
                threads = [threading.Thread(target=sender) for _ in range(args.clients)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                accepted_at = time.perf_counter()
                if failures:
                    raise SystemExit(f"{len(failures)} requests failed: {failures[:5]}")
                while metric(client, "meshscope_spans_written_total") < total:
                    if time.perf_counter() - started > 600:
                        raise SystemExit("spans not all written after 600 s")
                    time.sleep(0.05)
                written_at = time.perf_counter()
                # queryable: the last trace posted is found through the API
                last = trace_ids[-1]
                while client.get(f"/api/v2/trace/{last}").status_code != 200:
                    time.sleep(0.05)
                queryable_at = time.perf_counter()
                cpu_after = serve_process.cpu_times()
                client_after, machine_after = psutil.Process().cpu_times(), psutil.cpu_times()
        finally:
            server.terminate()
            server.wait(30)
    elapsed = queryable_at - started
    print(f"spans={total} requests={len(bodies)} spans_per_request={SPANS_PER_REQUEST} clients={args.clients}")
    print(f"writer_joined_group_in_s={joined_in_s:.2f} (before the clock started)")
    print(f"accepted_in_s={accepted_at - started:.2f} accept_spans_per_s={total / (accepted_at - started):.0f}")
    serve_cpu_s = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    print(f"serve_cpu_s={serve_cpu_s:.2f} serve_cpu_us_per_span={serve_cpu_s / total * 1e6:.1f} "
          f"serve_cpu_percent={100 * serve_cpu_s / elapsed:.0f}")
    # where the machine's cores went: serve runs on one interpreter lock, so it can stay below the
    # machine's capacity while its clients and the broker leave cores idle
    client_cpu_s = (client_after.user + client_after.system) - (client_before.user + client_before.system)
    machine_idle_s = machine_after.idle - machine_before.idle
    print(f"load_client_cores={client_cpu_s / elapsed:.2f} machine_idle_cores={machine_idle_s / elapsed:.2f} "
          f"of {psutil.cpu_count()}")
    print(f"written_in_s={written_at - started:.2f} queryable_in_s={elapsed:.2f}")
    print(f"spans_per_s={total / elapsed:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
