"""Every page in a real headless Chromium against the seeded API double: the seeded numbers show,
nothing is logged as an error in the console, failures read plainly; screenshots for the docs."""

from __future__ import annotations

import json
import time

import pytest
from selenium.webdriver.common.by import By

from tests.dashboard import seed
from tests.dashboard.browser import click, console_errors, screenshot, table_rows, wait_for, wait_settled


@pytest.fixture
def page(browser, dashboard_url):
    console_errors(browser)  # start each test with an empty log

    def open_(path: str):
        browser.get(dashboard_url + path)
        return browser

    yield open_
    errors = console_errors(browser)
    assert not errors, "\n".join(e["message"] for e in errors)


def test_overview(page, screenshots):
    driver = page("")
    wait_for(driver, "#overview-table td", "frontend")
    wait_settled(driver)
    rows = {r[0]: r for r in table_rows(driver, "overview-table")}
    assert set(rows) == set(seed.SERVICES)
    assert rows["frontend"][1] == "12.50" and rows["orders"][1] == "7.25"
    assert rows["payments"][7] == "1/2" and "1 alert" in rows["payments"][-1]


def test_overview_sort_and_range_go_to_the_url(page):
    driver = page("?sort=rps:asc")
    wait_for(driver, "#overview-table td", "frontend")
    assert [r[0] for r in table_rows(driver, "overview-table")] == ["payments", "orders", "frontend"]
    driver.find_element(By.CSS_SELECTOR, "#range").click()
    wait_for(driver, ".dash-dropdown-option, [role=option]", "last 6 hours")[0].click()
    deadline = time.monotonic() + 10
    while "range=6h" not in driver.current_url and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "range=6h" in driver.current_url and "sort=rps%3Aasc" in driver.current_url


def test_service(page, screenshots):
    driver = page("service?service=orders")
    wait_for(driver, "#service-rps", "7.25/s")
    wait_for(driver, "#service-red .main-svg")
    wait_for(driver, "#endpoints-table td", "GET /orders/{id}")
    wait_for(driver, "#sql-table td", "SELECT")
    wait_for(driver, "#version-verdict", "worse")
    wait_settled(driver)


def test_service_runs_its_lazy_chunks_while_the_server_works(page, seeded_api):
    """dashboard/assets/chunks_early.js: the table, dropdown, highlighter and figure chunks are asked
    for once each, as soon as the page has asked for its data, not after the answer has arrived."""
    seeded_api.slow["service_page"] = 0.5
    try:
        driver = page("service?service=orders")
        wait_for(driver, "#endpoints-table td", "GET /orders/{id}")
        wait_for(driver, "#service-red .main-svg")
        wait_settled(driver)
        entries = driver.execute_script("""return performance.getEntriesByType('resource')
            .map(e => [e.name.split('?')[0].split('/').slice(-2).join('/'), e.startTime, e.responseEnd]);""")
    finally:
        del seeded_api.slow["service_page"]
    chunks = [e for e in entries if "/async-" in e[0]]
    assert sorted(name for name, _, _ in chunks) == ["dash_table/async-highlight.js", "dash_table/async-table.js",
                                                     "dcc/async-dropdown.js", "dcc/async-graph.js"]
    # the answer of the page's data callback, the one slowed down above (times in ms)
    answered = min(end for name, start, end in entries if name.endswith("_dash-update-component") and end - start > 400)
    assert all(start < answered for _, start, _ in chunks)


def test_service_shows_a_backend_error_plainly(page, seeded_api):
    seeded_api.broken.add("series")
    try:
        driver = page("service?service=payments")
        wait_for(driver, ".note-error", "series: seeded failure of series")
        wait_for(driver, "#service-red .main-svg")
        assert "Traceback" not in driver.page_source
    finally:
        seeded_api.broken.discard("series")


def test_slow_query_is_reported(page, seeded_api):
    seeded_api.slow["recommendations"] = 2.2
    try:
        driver = page("recommendations")
        wait_for(driver, ".note-slow", "recommendations took", timeout=30)
    finally:
        seeded_api.slow.clear()


def test_topology(page, screenshots):
    driver = page("topology")
    wait_for(driver, "#topology-edges td", "bank-api")
    edges = {(r[0], r[1]) for r in table_rows(driver, "topology-edges")}
    assert edges == {(a, b) for a, b, *_ in seed.EDGES}
    wait_for(driver, "#topology-graph canvas")
    wait_settled(driver)
    time.sleep(0.5)  # the graph's layout animates in


def _tap(driver, selector: str) -> None:
    """Tap a graph element as a user would, through cytoscape.js (registered on its container)."""
    driver.execute_script("""
        const host = Array.from(document.querySelectorAll('#topology-graph, #topology-graph *')).find(e => e._cyreg);
        host._cyreg.cy.$(arguments[0]).emit('tap');""", selector)


def test_topology_click_through(page):
    driver = page("topology?range=6h")
    wait_for(driver, "#topology-graph canvas")
    wait_settled(driver)
    _tap(driver, "#orders")
    wait_for(driver, "#service-rps", "7.25/s")
    assert driver.current_url.endswith("/dashboard/service?range=6h&service=orders")
    driver.back()
    wait_for(driver, "#topology-graph canvas")
    wait_settled(driver)
    _tap(driver, "edge[source = 'orders'][target = 'payments']")
    wait_for(driver, "#q-service", "orders")
    assert driver.current_url.endswith("/dashboard/traces?range=6h&service=orders&remote=payments")


def test_traces_search(page, screenshots):
    driver = page("traces?service=frontend")
    wait_for(driver, "#traces-table td", seed.TRACE_ID)
    rows = {r[1]: r for r in table_rows(driver, "traces-table")}
    assert rows[seed.TRACE_ID][4] == str(seed.TRACE_SPANS)
    wait_for(driver, "#traces-scatter .main-svg")
    wait_settled(driver)
    driver.find_element(By.LINK_TEXT, seed.TRACE_ID).click()
    wait_for(driver, "#trace-span-count", str(seed.TRACE_SPANS))


def test_trace_search_form_writes_the_url(page):
    driver = page("traces?service=frontend")
    wait_for(driver, "#traces-table td", seed.TRACE_ID)
    driver.find_element(By.ID, "q-min").send_keys("1000")
    click(driver, driver.find_element(By.ID, "q-search"))
    wait_for(driver, "#traces-body .empty", "No traces match")
    assert "min_ms=1000" in driver.current_url and "service=frontend" in driver.current_url


def test_trace_waterfall(page, screenshots):
    driver = page(f"trace?id={seed.TRACE_ID}")
    wait_for(driver, "#trace-span-count", str(seed.TRACE_SPANS))
    wait_for(driver, "#waterfall .scatterlayer .trace")
    wait_for(driver, "#span-table td", "frontend")
    # select a span from the list: its details appear; then collapse its subtree
    click(driver, driver.find_element(By.CSS_SELECTOR, "#span-table td"))
    wait_for(driver, "#span-details-title", "frontend: get /orders/{id}")
    click(driver, driver.find_element(By.ID, "trace-toggle"))
    wait_for(driver, "#span-table td", "frontend")
    deadline = time.monotonic() + 10
    while len(table_rows(driver, "span-table")) != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(table_rows(driver, "span-table")) == 1  # the root's subtree is folded
    click(driver, driver.find_element(By.ID, "trace-expand-all"))
    wait_for(driver, "#span-table tr", count=seed.TRACE_SPANS + 1)
    wait_settled(driver)


def test_trace_json_download(page, tmp_path):
    driver = page(f"trace?id={seed.TRACE_ID}")
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
    click(driver, wait_for(driver, "#trace-download-button")[0])
    target = tmp_path / f"trace-{seed.TRACE_ID}.json"
    deadline = time.monotonic() + 15
    while not target.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert json.loads(target.read_text()) == seed.SeededApi().traces[seed.TRACE_ID]


def test_ten_thousand_span_trace_stays_usable(page, screenshots):
    driver = page(f"trace?id={seed.BIG_TRACE_ID}")
    started = time.monotonic()
    wait_for(driver, "#trace-span-count", str(seed.BIG_TRACE_SPANS), timeout=60)
    wait_for(driver, "#waterfall .scatterlayer .trace", timeout=60)
    wait_settled(driver, timeout=60)
    # one page of the span list in the DOM, not 10,000 rows
    assert len(table_rows(driver, "span-table")) == 50
    assert len(driver.find_elements(By.CSS_SELECTOR, "#waterfall *")) < 2000
    print(f"10k-span trace rendered in {time.monotonic() - started:.2f} s")


def test_recommendations(page, screenshots):
    driver = page("recommendations")
    wait_for(driver, ".card", "Scale out: 2 → 4 instances")
    wait_for(driver, ".card .evidence td", "0.92")
    wait_settled(driver)
    screenshot(driver, screenshots / "recommendations.png")


def test_alerts(page, screenshots):
    driver = page("alerts")
    wait_for(driver, "#alerts-summary", "1 firing")
    wait_for(driver, "#history-table td", "connection refused")
    wait_settled(driver)
    screenshot(driver, screenshots / "alerts.png")


def test_unknown_trace_and_page(page):
    driver = page("trace?id=" + "f" * 32)
    wait_for(driver, ".empty", "was not found")
    driver = page("nowhere")
    wait_for(driver, ".empty", "There is no page at /dashboard/nowhere")


def test_runs_alone_with_python_m_dashboard(browser, seeded_api_url, tmp_path):
    """`python -m dashboard --api URL`: the dashboard in a process of its own, against an API."""
    import subprocess
    import sys

    from meshscope.devbroker import free_port, wait_for_port

    port = free_port()
    log = open(tmp_path / "dashboard.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "dashboard", "--api", seeded_api_url, "--port", str(port)],
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port("127.0.0.1", port, timeout=30)
        console_errors(browser)
        browser.get(f"http://127.0.0.1:{port}/dashboard/")
        wait_for(browser, "#overview-table td", "frontend")
        assert console_errors(browser) == []
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
