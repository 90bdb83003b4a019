"""MySQL sidecar benchmark: sysbench against MariaDB directly and through the agent, in one run.

    .venv/bin/python bench/bench_mysql.py [--seconds 10] [--threads 4] [--mysql-port 3306]

The agent runs as ``meshscope agent`` with an outbound ``/mysql`` listener in front of MariaDB
(the real proxy and the MySQL decoder, spans at the default sampling, per-statement metrics) and
publishes to a tansu broker started here. For sysbench ``oltp_point_select`` and
``oltp_read_only`` (server-side prepared statements, sysbench's default), direct and agent runs
alternate; measured:

- transactions/s ratio (agent / direct) and added p95 latency (sysbench's own percentiles);
- agent CPU seconds per second per 1,000 statements/s (psutil on the agent process, during the
  agent runs);
- agent RSS after the runs;
- the statements the agent published to Kafka, against the queries sysbench reports;
- with ``--tcp-baseline``: the same agent with a plain /tcp listener; with ``--bare-baseline``: the
  floor for a Python proxy, ``bench/bare_proxy.py`` (bare uvloop, no parsing, no telemetry); with
  ``--haproxy-baseline``: Debian's haproxy in TCP mode on one thread, a C proxy that does nothing
  but forward, to show what any proxy in the path costs on this machine.

Prints figures, then a last line ``tps_ratio=N added_p95_ms=N cpu_per_1000qps=N rss_mb=N`` (the
worst of the two workloads for each). Needs MariaDB on --mysql-host/--mysql-port (root, no
password) and Debian's sysbench. Figures on a shared 2-core machine are noisy.
"""

from __future__ import annotations

import argparse
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

DATABASE = "meshscope_bench"
WORKLOADS = ("oltp_point_select", "oltp_read_only")


def sysbench(host: str, port: int, *args: str, check: bool = True) -> str:
    command = ["sysbench", "--db-driver=mysql", f"--mysql-host={host}", f"--mysql-port={port}", "--mysql-user=root",
               f"--mysql-db={DATABASE}", "--tables=4", "--table-size=10000", *args]
    return subprocess.run(command, capture_output=True, text=True, check=check).stdout


def run_workload(host: str, port: int, workload: str, seconds: float, threads: int) -> dict[str, float]:
    output = sysbench(host, port, workload, f"--time={max(1, round(seconds))}", f"--threads={threads}",
                      "--report-interval=0", "run")
    return {
        "tps": float(re.search(r"transactions:\s+\d+\s+\(([\d.]+) per sec", output).group(1)),
        "qps": float(re.search(r"queries:\s+\d+\s+\(([\d.]+) per sec", output).group(1)),
        "queries": int(re.search(r"queries:\s+(\d+)", output).group(1)),
        "p95_ms": float(re.search(r"95th percentile:\s+([\d.]+)", output).group(1)),
    }


def start_agent(mysql_host: str, mysql_port: int, bootstrap: str, work: Path, protocol: str = "mysql",
                extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "meshscope.cli", "agent", "--service", f"bench-{protocol}", "--version", "v1",
         "--outbound", f"mariadb=127.0.0.1:{port}={mysql_host}:{mysql_port}/{protocol}",
         "--kafka-bootstrap", bootstrap, "--agent-spool-dir", str(work / f"spool-{protocol}"), *extra],
        stdout=subprocess.DEVNULL, stderr=open(work / f"agent-{protocol}.log", "wb"),
    )
    wait_for_port("127.0.0.1", port)
    return process, port


def published_statements(bootstrap: str) -> int:
    """sql.client statements in the latency records the agent published (count of every sketch)."""
    from kafka import KafkaConsumer, TopicPartition

    from meshscope.wire import decode_latency

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             consumer_timeout_ms=3000, auto_offset_reset="earliest")
    try:
        partitions = consumer.partitions_for_topic("meshscope.metrics") or set()
        consumer.assign([TopicPartition("meshscope.metrics", p) for p in partitions])
        consumer.seek_to_beginning()
        total = 0
        for message in consumer:
            total += sum(r.sketch.count for r in decode_latency(message.value) if r.kind == "sql.client"
                         and r.method not in ("PREPARE", "STMT_RESET", "PING", "SET"))
        return total
    finally:
        consumer.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="length of each sysbench run")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1, help="direct/agent pairs per workload")
    parser.add_argument("--mysql-host", default="127.0.0.1")
    parser.add_argument("--mysql-port", type=int, default=3306)
    parser.add_argument("--tcp-baseline", action="store_true",
                        help="also run through an agent whose listener is plain /tcp (the proxy's own cost)")
    parser.add_argument("--bare-baseline", action="store_true",
                        help="also run through bench/bare_proxy.py, a bare uvloop proxy (the floor for Python)")
    parser.add_argument("--haproxy-baseline", action="store_true",
                        help="also run through Debian's haproxy (TCP mode, one thread): what any proxy costs here")
    parser.add_argument("--sample-rate", default=None, help="the agent's --sample-rate (default: its own default)")
    args = parser.parse_args()
    if not shutil.which("sysbench"):
        print("bench_mysql: sysbench not found (apt-get install sysbench)", file=sys.stderr)
        return 2
    import pymysql

    with pymysql.connect(host=args.mysql_host, port=args.mysql_port, user="root", password="") as conn:
        conn.cursor().execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    sysbench(args.mysql_host, args.mysql_port, "oltp_read_only", "cleanup", check=False)
    sysbench(args.mysql_host, args.mysql_port, "oltp_read_only", "prepare")

    work = Path(tempfile.mkdtemp(prefix="bench-mysql-"))
    # first: a missing haproxy stops the run before anything else was started
    haproxy, haproxy_port = start_haproxy(args.mysql_host, args.mysql_port, work) if args.haproxy_baseline else (None, 0)
    broker = TansuBroker(log_path=work / "tansu.log").start()
    extra = ("--sample-rate", args.sample_rate) if args.sample_rate is not None else ()
    agent, agent_port = start_agent(args.mysql_host, args.mysql_port, broker.bootstrap, work, extra=extra)
    tcp_agent, tcp_port = (start_agent(args.mysql_host, args.mysql_port, broker.bootstrap, work, "tcp")
                           if args.tcp_baseline else (None, 0))
    bare, bare_port = None, 0
    if args.bare_baseline:
        bare_port = free_port()
        bare = subprocess.Popen([sys.executable, str(Path(__file__).with_name("bare_proxy.py")), str(bare_port),
                                 f"{args.mysql_host}:{args.mysql_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port("127.0.0.1", bare_port)
    agent_process = psutil.Process(agent.pid)
    results: dict[str, dict[str, float]] = {}
    sysbench_queries = 0
    try:
        run_workload(args.mysql_host, args.mysql_port, "oltp_point_select", 1, args.threads)  # warm-up
        sysbench_queries += run_workload("127.0.0.1", agent_port, "oltp_point_select", 1, args.threads)["queries"]
        for workload in WORKLOADS:
            direct_runs, agent_runs, tcp_runs, bare_runs, haproxy_runs = [], [], [], [], []
            cpu_seconds = agent_seconds = 0.0
            for _ in range(args.rounds):
                direct_runs.append(run_workload(args.mysql_host, args.mysql_port, workload, args.seconds, args.threads))
                before = agent_process.cpu_times()
                started = time.monotonic()
                agent_runs.append(run_workload("127.0.0.1", agent_port, workload, args.seconds, args.threads))
                agent_seconds += time.monotonic() - started
                after = agent_process.cpu_times()
                cpu_seconds += (after.user + after.system) - (before.user + before.system)
                sysbench_queries += agent_runs[-1]["queries"]
                if tcp_agent is not None:
                    tcp_runs.append(run_workload("127.0.0.1", tcp_port, workload, args.seconds, args.threads))
                if bare is not None:
                    bare_runs.append(run_workload("127.0.0.1", bare_port, workload, args.seconds, args.threads))
                if haproxy is not None:
                    haproxy_runs.append(run_workload("127.0.0.1", haproxy_port, workload, args.seconds, args.threads))
            direct = {k: sum(r[k] for r in direct_runs) / len(direct_runs) for k in direct_runs[0]}
            if tcp_runs:
                tcp_tps = sum(r["tps"] for r in tcp_runs) / len(tcp_runs)
                print(f"{workload} through a /tcp (pass-through) agent: {tcp_tps:,.0f} tps, ratio {tcp_tps / direct['tps']:.3f}")
            if bare_runs:
                bare_tps = sum(r["tps"] for r in bare_runs) / len(bare_runs)
                print(f"{workload} through bench/bare_proxy.py (the floor): {bare_tps:,.0f} tps, ratio {bare_tps / direct['tps']:.3f}")
            if haproxy_runs:
                haproxy_tps = sum(r["tps"] for r in haproxy_runs) / len(haproxy_runs)
                print(f"{workload} through haproxy (C, TCP mode, one thread): {haproxy_tps:,.0f} tps, "
                      f"ratio {haproxy_tps / direct['tps']:.3f}")
            through = {k: sum(r[k] for r in agent_runs) / len(agent_runs) for k in agent_runs[0]}
            cpu_per_second = cpu_seconds / agent_seconds
            results[workload] = {
                "tps_ratio": through["tps"] / direct["tps"],
                "added_p95_ms": through["p95_ms"] - direct["p95_ms"],
                "cpu_per_1000qps": cpu_per_second / (through["qps"] / 1000),
            }
            print(f"{workload} ({args.threads} threads, {args.seconds:g}s x {args.rounds}): "
                  f"direct {direct['tps']:,.0f} tps / {direct['qps']:,.0f} qps / p95 {direct['p95_ms']:.2f} ms; "
                  f"through agent {through['tps']:,.0f} tps / {through['qps']:,.0f} qps / p95 {through['p95_ms']:.2f} ms; "
                  f"ratio {results[workload]['tps_ratio']:.3f}, agent CPU {cpu_per_second:.2f} cores "
                  f"= {results[workload]['cpu_per_1000qps']:.3f} CPU-s/s per 1,000 statements/s")
        rss_mb = agent_process.memory_info().rss / 2**20
    finally:
        for process in (agent, tcp_agent, bare, haproxy):
            if process is None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
    try:
        published = published_statements(broker.bootstrap)
        print(f"statements published by the agent: {published:,} (sysbench queries through the agent: {sysbench_queries:,})")
    except Exception as exc:  # the figures above stand without this cross-check
        print(f"could not read back published statements: {exc!r}")
    broker.stop()
    sysbench(args.mysql_host, args.mysql_port, "oltp_read_only", "cleanup", check=False)
    shutil.rmtree(work, ignore_errors=True)
    print(f"agent RSS after the runs: {rss_mb:.1f} MB")
    print(f"tps_ratio={min(r['tps_ratio'] for r in results.values()):.3f} "
          f"added_p95_ms={max(r['added_p95_ms'] for r in results.values()):.2f} "
          f"cpu_per_1000qps={max(r['cpu_per_1000qps'] for r in results.values()):.3f} rss_mb={rss_mb:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
