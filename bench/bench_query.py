"""Query benchmark: a store of 10 million spans (1 million traces of 10 spans, 20 services, spread
over the last 24 h), generated directly in ClickHouse with INSERT ... SELECT FROM numbers(), then
served by `meshscope serve --no-writer`; trace by id, search, services and dependencies timed
through the HTTP API (p50 and p99), and the store size on disk per million spans.

    .venv/bin/python bench/bench_query.py [--spans 10000000] [--runs 50]

The last line is ``trace_by_id_p50_ms=N search_p50_ms=N services_p50_ms=N dependencies_p50_ms=N``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_support import wait_healthy
from meshscope.devbroker import free_port  # noqa: E402

DATABASE = "meshscope"
SPANS_PER_TRACE = 10

# Runs in its own process: chdb allows one data directory per process, and the server owns it next.
GENERATE = textwrap.dedent("""
    import sys, time
    from storage import migrations
    from storage.client import connect
    path, spans, now_us, db = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    client = connect("chdb://" + path)
    migrations.apply(client, db, 15)
    per_trace = %(per_trace)d
    traces = spans // per_trace
    started = time.perf_counter()
    # span n: trace t = n / per_trace, position i = n %% per_trace (0 = the SERVER root)
    client.command(f'''
        INSERT INTO {db}.spans (trace_id, id, parent_id, kind, name, ts_us, timestamp_us, duration_us,
            local_service, local_ipv4, local_port, remote_service, tags)
        SELECT
            lower(leftPad(hex(cityHash64(t, 1)), 16, '0') || leftPad(hex(cityHash64(t, 2)), 16, '0')) AS trace_id,
            lower(leftPad(hex(cityHash64(t, i, 3)), 16, '0')) AS id,
            if(i = 0, '', lower(leftPad(hex(cityHash64(t, 0, 3)), 16, '0'))) AS parent_id,
            if(i = 0, 'SERVER', 'CLIENT') AS kind,
            concat('get /api/', toString(i %% 5)) AS name,
            toInt64({now_us} - intDiv(t * 86400000000, {traces}) + i * 100) AS ts_us,
            toUInt64(ts_us) AS timestamp_us,
            toUInt64(1000 + cityHash64(n) %% 200000) AS duration_us,
            concat('service-', toString(t %% 20)) AS local_service,
            '10.0.0.1' AS local_ipv4, toUInt16(8080) AS local_port,
            if(i = 0, '', concat('service-', toString((t + i) %% 20))) AS remote_service,
            if(cityHash64(n, 7) %% 100 = 0,
               map('http.method', 'GET', 'http.status_code', '500', 'error', 'true'),
               map('http.method', 'GET', 'http.status_code', '200')) AS tags
        FROM (SELECT number AS n, intDiv(number, {per_trace}) AS t, number %% {per_trace} AS i FROM numbers({spans}))
    ''', settings={"max_insert_threads": 2, "max_threads": 2})
    # the links the writer would have computed: each CLIENT span, root service -> its remote
    client.command(f'''
        INSERT INTO {db}.dependency_links (trace_id, ts_us, version, parents, children, calls, errors)
        SELECT
            lower(leftPad(hex(cityHash64(t, 1)), 16, '0') || leftPad(hex(cityHash64(t, 2)), 16, '0')),
            toInt64({now_us} - intDiv(t * 86400000000, {traces})), 1,
            arrayMap(i -> concat('service-', toString(t %% 20)), range(1, {per_trace})),
            arrayMap(i -> concat('service-', toString((t + i) %% 20)), range(1, {per_trace})),
            arrayMap(i -> toUInt32(1), range(1, {per_trace})),
            arrayMap(i -> toUInt32(cityHash64(t * {per_trace} + i, 7) %% 100 = 0), range(1, {per_trace}))
        FROM (SELECT number AS t FROM numbers({traces}))
    ''')
    client.command(f"OPTIMIZE TABLE {db}.dependency_links FINAL")
    client.command(f'''
        INSERT INTO {db}.dependency_links_hourly (hour, parent, child, calls, errors)
        SELECT toStartOfHour(fromUnixTimestamp64Micro(ts_us)) AS hour, parent, child, sum(c), sum(e)
        FROM {db}.dependency_links ARRAY JOIN parents AS parent, children AS child, calls AS c, errors AS e
        GROUP BY hour, parent, child
    ''')
    generated = time.perf_counter() - started
    sample = [row[0] for row in client.query(
        f"SELECT trace_id FROM {db}.trace_link_spans WHERE cityHash64(trace_id) %% 5000 = 0 LIMIT 1 BY trace_id LIMIT 200").result_rows]
    parts = client.query(
        "SELECT table, sum(bytes_on_disk), sum(rows) FROM system.parts WHERE database = {d:String} AND active GROUP BY table",
        parameters={"d": db}).result_rows
    print("generated_s", round(generated, 1))
    for table, size, rows in parts:
        print("table", table, size, rows)
    print("sample", ",".join(sample))
""" % {"per_trace": SPANS_PER_TRACE})


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    now_us = int(time.time() * 1_000_000)
    with tempfile.TemporaryDirectory(prefix="meshscope-bench-query-") as tmp:
        out = subprocess.run([sys.executable, "-c", GENERATE, f"{tmp}/chdb", str(args.spans), str(now_us), DATABASE],
                             cwd=REPO, capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(out.stderr[-3000:])
        sizes, sample, generated_s = {}, [], 0.0
        for line in out.stdout.splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "table":
                table, size, rows = rest.split()
                sizes[table] = (int(size), int(rows))
            elif kind == "sample":
                sample = rest.split(",")
            elif kind == "generated_s":
                generated_s = float(rest)
        port = free_port()
        env = {**os.environ, "MESHSCOPE_PORT": str(port), "MESHSCOPE_CLICKHOUSE_URL": f"chdb://{tmp}/chdb",
               "MESHSCOPE_SPOOL_DIR": f"{tmp}/spool", "MESHSCOPE_DASHBOARD": "false", "MESHSCOPE_RUN_WRITER": "false",
               "MESHSCOPE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}  # no broker needed to read
        log = open(Path(tmp) / "serve.log", "wb")
        server = subprocess.Popen([sys.executable, "-m", "meshscope.cli", "serve"], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        timings: dict[str, list[float]] = {}
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                wait_healthy(client, server, Path(tmp) / "serve.log", timeout=90)
                end_ms = now_us // 1000 + 1000
                requests = {
                    "trace_by_id": lambda run: ("/api/v2/trace/" + sample[run % len(sample)], {}),
                    "search": lambda run: ("/api/v2/traces", {"serviceName": f"service-{run % 20}", "spanName": f"get /api/{run % 5}",
                                                               "minDuration": 150000, "endTs": end_ms, "limit": 10}),
                    "services": lambda run: ("/api/v2/services", {}),
                    "dependencies": lambda run: ("/api/v2/dependencies", {"endTs": end_ms, "lookback": 86400000}),
                }
                for name, make in requests.items():
                    for run in range(args.runs + 3):
                        path, params = make(run)
                        started = time.perf_counter()
                        response = client.get(path, params=params)
                        elapsed = (time.perf_counter() - started) * 1000
                        if response.status_code != 200 or not response.json():
                            raise SystemExit(f"{name}: {response.status_code} {response.text[:300]}")
                        if run >= 3:  # the first runs warm caches
                            timings.setdefault(name, []).append(elapsed)
                links = client.get("/api/v2/dependencies", params={"endTs": end_ms, "lookback": 86400000}).json()
        finally:
            server.terminate()
            server.wait(30)
    spans_bytes, spans_rows = sizes.get("spans", (0, 0))
    total_bytes = sum(size for size, _ in sizes.values())
    print(f"spans={spans_rows} generated_in_s={generated_s} runs={args.runs} dependency_links={len(links)}")
    print(f"spans_table_mb_per_million_spans={spans_bytes / 1e6 / (spans_rows / 1e6):.1f} "
          f"all_tables_mb_per_million_spans={total_bytes / 1e6 / (spans_rows / 1e6):.1f}")
    for table, (size, rows) in sorted(sizes.items()):
        print(f"table {table}: {size / 1e6:.1f} MB, {rows} rows")
    for name, values in timings.items():
        print(f"{name}: p50={statistics.median(values):.1f} ms p99={percentile(values, 0.99):.1f} ms")
    print(" ".join(f"{name}_p50_ms={statistics.median(timings[name]):.1f}" for name in requests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
