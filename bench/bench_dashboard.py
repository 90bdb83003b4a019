"""How fast the dashboard renders in Chromium, served by the real `meshscope serve`.

    python bench/bench_dashboard.py [--spans 10000000] [--runs 7]

Builds a store of its own: the known traffic of tests/dashboard/store_seed.py (agent metrics,
resources, traces, three 10,000-span traces) plus ``--spans`` generated spans (1 M traces of 10
spans over 20 services, in the same hour; ``INSERT ... SELECT FROM numbers()``), starts a tansu
broker and `meshscope serve` over it, and times in headless Chromium (Debian's chromium):

- overview: navigation until the services table shows the seeded service and no callback is in flight;
- service: the same for a service page (stats, the three-row figure, endpoint table, resources figure);
- trace10k: a 10,000-span trace never opened before (nothing cached) until its waterfall is drawn.

Each page is also compared with the API call behind it (the baseline: what no dashboard can beat):
/services for the overview, /service_page for the service page. The first /services on the fresh
store is timed apart: it computes the per-minute span sketches of the window (migration 0006).
Targets: overview and service p50 <= 1 s, trace10k <= 3 s. The last line is
``overview_p50_s=N service_p50_s=N trace10k_s=N``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.dashboard import store_seed as seeded  # noqa: E402
from tests.dashboard.browser import console_errors, wait_for, wait_settled  # noqa: E402
from tests.dashboard.conftest import free_port, start_chromium  # noqa: E402

BIG_TRACES = [f"c0ffee000000000000000000000b16a{n}" for n in range(1, 4)]
GENERATED_SERVICES = 20


def generate_spans(path: Path, database: str, count: int) -> None:
    """``count`` spans (traces of 10) in the seeded hour, written by the engine itself."""
    script = f"""
import sys
from storage.client import connect
from storage.writer import insert_spans
from tests.dashboard import store_seed as seeded
client = connect("chdb://{path}")
for trace_id in {BIG_TRACES!r}:
    insert_spans(client, "{database}", seeded.trace(trace_id, 10_000, (seeded.WINDOW_START_S + 900) * 1_000_000))
count, start_us, hour_us = {count}, seeded.WINDOW_START_S * 1_000_000, 3_600_000_000
batch = 2_000_000
for offset in range(0, count, batch):
    client.command(f'''
INSERT INTO {database}.spans (trace_id, id, parent_id, kind, name, ts_us, timestamp_us, duration_us, local_service,
                              local_ipv4, local_port, remote_service, tags)
SELECT leftPad(lower(hex(intDiv(number, 10) + 1)), 32, '0'),
       leftPad(lower(hex(number % 10 + 1)), 16, '0'),
       if(number % 10 = 0, '', leftPad('1', 16, '0')),
       if(number % 10 = 0, 'SERVER', 'CLIENT'),
       concat('get /api/', toString(number % 37)),
       {{start_us}} + intDiv(number, 10) * 10 * intDiv({{hour_us}}, {{count}}) + (number % 10) * 100,
       {{start_us}} + intDiv(number, 10) * 10 * intDiv({{hour_us}}, {{count}}) + (number % 10) * 100,
       1000 + cityHash64(number) % 200000,
       concat('svc-', toString(intDiv(number, 10) % {GENERATED_SERVICES})),
       '10.0.0.1', 8080,
       if(number % 10 = 0, '', concat('svc-', toString((intDiv(number, 10) + number % 10) % {GENERATED_SERVICES}))),
       if(cityHash64(number) % 100 = 0, map('error', '500'), map('http.path', '/api'))
FROM numbers({{offset}}, {{min(batch, count - offset)}})''')
    print(f"  {{min(offset + batch, count):,}} spans", flush=True)
print(client.command("SELECT count() FROM {database}.spans"))
# let the background merges of this bulk load finish here, as they would have during an hour of
# ingestion, rather than during the timed page loads (they take both cores for a while)
import time
started, idle = time.monotonic(), 0
while idle < 3 and time.monotonic() - started < 600:
    idle = idle + 1 if client.command("SELECT count() FROM system.merges") == 0 else 0
    time.sleep(1)
parts = client.command("SELECT count() FROM system.parts WHERE database = '{database}' AND table = 'spans' AND active")
print(f"  merges settled after {{time.monotonic() - started:.0f}} s; spans in {{parts}} parts", flush=True)
"""
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT, timeout=3600)


def timed(driver, url: str, ready) -> float:
    started = time.perf_counter()
    driver.get(url)
    ready(driver)
    wait_settled(driver, timeout=120)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=10_000_000, help="generated spans in the store (default %(default)s)")
    parser.add_argument("--runs", type=int, default=7, help="page loads per page (default %(default)s)")
    parser.add_argument("--keep", action="store_true", help="keep the store and logs (printed) instead of deleting them")
    args = parser.parse_args(argv)

    import httpx

    from meshscope.devbroker import TansuBroker

    work = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    print(f"working directory: {work}", flush=True)
    store, database = work / "clickhouse", "meshscope"
    started = time.perf_counter()
    os.environ[seeded.WINDOW_START_ENV] = str(seeded.WINDOW_START_S)  # generate_spans' process too: the same hour
    seeded.seed(store, database, big_trace_spans=10)
    generate_spans(store, database, args.spans)
    print(f"store: seeded traffic + {args.spans:,} generated spans in {time.perf_counter() - started:.0f} s", flush=True)

    broker = TansuBroker(log_path=work / "tansu.log").start()
    port = free_port()
    env = {**os.environ, "MESHSCOPE_CLICKHOUSE_URL": f"chdb://{store}", "MESHSCOPE_CLICKHOUSE_DATABASE": database,
           "MESHSCOPE_KAFKA_BOOTSTRAP": broker.bootstrap, "MESHSCOPE_SPOOL_DIR": str(work / "spool"), "MESHSCOPE_RETENTION_DAYS": "3650"}
    log = open(work / "serve.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "meshscope.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work)
    driver = None
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(base + "/dashboard/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"meshscope serve did not start; see {work / 'serve.log'}")
            time.sleep(0.2)
        window = f"range={seeded.WINDOW_MS[0]}-{seeded.WINDOW_MS[1]}"
        params = {"start": seeded.WINDOW_MS[0], "end": seeded.WINDOW_MS[1]}
        driver = start_chromium(work / "chromium")
        driver.set_page_load_timeout(120)

        def api_time(*calls: tuple[str, dict]) -> float:
            """Median time of the page's API calls made concurrently, as the page makes them."""
            from concurrent.futures import ThreadPoolExecutor

            def get(call):
                httpx.get(base + call[0], params=params | call[1], timeout=120).raise_for_status()

            times = []
            with ThreadPoolExecutor(len(calls)) as pool:
                for _ in range(args.runs):
                    t = time.perf_counter()
                    list(pool.map(get, calls))
                    times.append(time.perf_counter() - t)
            return statistics.median(times)

        def overview_ready(d):
            wait_for(d, "#overview-table td", "checkout", timeout=120)

        def service_ready(d):
            wait_for(d, "#service-rps", "2.50/s", timeout=120)
            wait_for(d, "#service-red .main-svg", timeout=120)
            wait_for(d, "#endpoints-table td", "GET /cart", timeout=120)
            wait_for(d, "#service-resources .main-svg", timeout=120)

        # the first summary of a fresh store computes the per-minute span sketches of the whole window
        # (migration 0006); every later one recomputes only the minutes whose spans changed
        t = time.perf_counter()
        httpx.get(base + "/api/meshscope/v1/services", params=params, timeout=300).raise_for_status()
        api_first_services = time.perf_counter() - t
        timed(driver, f"{base}/dashboard/?{window}", overview_ready)  # warm the browser's cache of the JS bundles
        overview = [timed(driver, f"{base}/dashboard/?{window}", overview_ready) for _ in range(args.runs)]
        service = [timed(driver, f"{base}/dashboard/service?service=checkout&{window}", service_ready) for _ in range(args.runs)]
        traces = []
        for trace_id in BIG_TRACES:
            def trace_ready(d):
                wait_for(d, "#trace-span-count", "10000", timeout=120)
                wait_for(d, "#waterfall .scatterlayer .trace", timeout=120)
            traces.append(timed(driver, f"{base}/dashboard/trace?id={trace_id}&{window}", trace_ready))
        errors = console_errors(driver)
        api_overview = api_time(("/api/meshscope/v1/services", {}))
        checkout = {"service": "checkout"}
        api_service = api_time(("/api/meshscope/v1/service_page", checkout))
        t = time.perf_counter()
        httpx.get(f"{base}/api/v2/trace/{BIG_TRACES[0]}", timeout=120).raise_for_status()
        api_trace = time.perf_counter() - t
        spans_total = httpx.get(f"{base}/api/v2/services", timeout=60).json()
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        broker.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    o50, s50, t50 = statistics.median(overview), statistics.median(service), statistics.median(traces)
    print(f"against: the real `meshscope serve` (chdb store, {args.spans:,} generated spans + seeded traffic; "
          f"{len(spans_total)} services in /api/v2/services), headless Chromium {args.runs} loads per page, 2-core machine")
    print(f"overview: p50 {o50:.3f} s (min {min(overview):.3f}, max {max(overview):.3f}); its API call alone {api_overview:.3f} s"
          f" -> page/API ratio {o50 / api_overview:.1f} (first /services on the fresh store: {api_first_services:.3f} s)")
    print(f"service:  p50 {s50:.3f} s (min {min(service):.3f}, max {max(service):.3f}); its API call (/service_page) alone {api_service:.3f} s"
          f" -> page/API ratio {s50 / api_service:.1f}")
    print(f"trace10k: median of {len(traces)} cold loads {t50:.3f} s ({', '.join(f'{t:.2f}' for t in traces)});"
          f" its API call alone {api_trace:.3f} s -> page/API ratio {t50 / api_trace:.1f}")
    print(f"targets: overview/service p50 <= 1 s: {'met' if max(o50, s50) <= 1 else 'NOT met'}; "
          f"trace10k <= 3 s: {'met' if t50 <= 3 else 'NOT met'}; console errors: {len(errors)}")
    print(f"overview_p50_s={o50:.3f} service_p50_s={s50:.3f} trace10k_s={t50:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
