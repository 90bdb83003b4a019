"""The dashboard inside the real `meshscope serve` (collector + analysis API + dashboard in one
process), over a store seeded with known traffic (tests/dashboard/store_seed.py), in headless
Chromium: the seeded numbers reach the pages, and no page logs a console error."""

from __future__ import annotations

import httpx
import pytest

from tests.dashboard import store_seed as seeded
from tests.dashboard.browser import console_errors, screenshot, table_rows, wait_for, wait_settled

WINDOW = f"range={seeded.WINDOW_MS[0]}-{seeded.WINDOW_MS[1]}"


@pytest.fixture
def page(browser, meshscope_server):
    console_errors(browser)

    def open_(path: str):
        separator = "&" if "?" in path else "?"
        browser.get(f"{meshscope_server.url}/dashboard/{path}{separator}{WINDOW}")
        return browser

    yield open_
    errors = console_errors(browser)
    assert not errors, "\n".join(e["message"] for e in errors)


def api(server, path: str) -> object:
    start, end = seeded.WINDOW_MS
    return httpx.get(f"{server.url}/api/meshscope/v1/{path}", params={"start": start, "end": end}, timeout=30).json()


def test_overview_shows_the_seeded_throughput(page, meshscope_server, screenshots):
    driver = page("")
    wait_for(driver, "#overview-table td", "checkout")
    wait_settled(driver)
    rows = {r[0]: r for r in table_rows(driver, "overview-table")}
    assert rows["checkout"][1] == "2.50"  # 9,000 requests in the hour
    assert rows["checkout"][2] == "1.00%" and rows["inventory"][1] == "1.00"
    screenshot(driver, screenshots / "overview.png")


def test_service_page_shows_the_seeded_service(page, screenshots):
    driver = page("service?service=checkout")
    wait_for(driver, "#service-rps", "2.50/s")
    wait_for(driver, "#endpoints-table td", "GET /cart")
    endpoints = {r[0]: r for r in table_rows(driver, "endpoints-table")}
    assert endpoints["GET /cart"][2] == str(seeded.CHECKOUT_REQUESTS) and endpoints["GET /cart"][3] == str(seeded.CHECKOUT_ERRORS)
    wait_for(driver, "#service-red .main-svg")
    wait_for(driver, "#service-resources .main-svg")
    wait_settled(driver)
    screenshot(driver, screenshots / "service.png")


def test_topology_shows_the_seeded_edges(page, meshscope_server, screenshots):
    driver = page("topology")
    wait_for(driver, "#topology-edges td", "mysql")
    shown = {(r[0], r[1]) for r in table_rows(driver, "topology-edges")}
    assert shown == seeded.EDGES == {(e["source"], e["target"]) for e in api(meshscope_server, "topology")["edges"]}
    wait_for(driver, "#topology-graph canvas")
    wait_settled(driver)
    screenshot(driver, screenshots / "topology.png")


def test_trace_search_and_view_show_the_seeded_trace(page, screenshots):
    driver = page("traces?service=checkout&limit=50")
    wait_for(driver, "#traces-table td", seeded.TRACE_ID)
    rows = {r[1]: r for r in table_rows(driver, "traces-table")}
    assert rows[seeded.TRACE_ID][4] == str(seeded.TRACE_SPANS)
    wait_settled(driver)
    screenshot(driver, screenshots / "traces.png")
    driver = page(f"trace?id={seeded.TRACE_ID}")
    wait_for(driver, "#trace-span-count", str(seeded.TRACE_SPANS))
    wait_for(driver, "#waterfall .scatterlayer .trace")
    wait_settled(driver)
    screenshot(driver, screenshots / "trace.png")


def test_ten_thousand_span_trace_from_the_store(page, screenshots):
    driver = page(f"trace?id={seeded.BIG_TRACE_ID}")
    wait_for(driver, "#trace-span-count", "10000", timeout=90)
    wait_for(driver, "#waterfall .scatterlayer .trace", timeout=60)
    wait_settled(driver, timeout=60)
    assert len(table_rows(driver, "span-table")) == 50
    screenshot(driver, screenshots / "trace-10k.png")


@pytest.mark.parametrize("path, marker", [("recommendations", "#recommendations-body"), ("alerts", "#alerts-body")])
def test_other_pages_load_cleanly(page, path, marker):
    driver = page(path)
    wait_for(driver, f"{marker} .empty, {marker} .card, {marker} table, {marker} .note")
    wait_settled(driver)
    assert "Traceback" not in driver.page_source
