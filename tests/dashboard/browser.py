"""Driving the dashboard in Chromium: wait for content, read console errors, take screenshots."""

from __future__ import annotations

import time
from pathlib import Path

from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

# what the browser may log that is not the dashboard's fault
IGNORED_CONSOLE = ("favicon.ico",)


_MATCHING = """
const [css, text, count] = arguments;
const found = Array.from(document.querySelectorAll(css)).filter(e => text === null || e.textContent.includes(text));
return found.length >= count ? found : null;
"""


def wait_for(driver, css: str, contains: str | None = None, timeout: float = 20.0, count: int = 1):
    """The elements matching ``css`` once at least ``count`` exist (each containing ``contains``),
    checked in the page (one round trip per poll, so that timings measure the page, not the driver)."""
    def ready(d):
        try:
            return d.execute_script(_MATCHING, css, contains, count) or False
        except StaleElementReferenceException:
            return False

    return WebDriverWait(driver, timeout, poll_frequency=0.02).until(ready, f"{css} containing {contains!r}")


def wait_settled(driver, timeout: float = 20.0) -> None:
    """Until no Dash callback is in flight."""
    WebDriverWait(driver, timeout, poll_frequency=0.02).until(
        lambda d: not d.find_elements(By.CSS_SELECTOR, "[data-dash-is-loading='true']"), "callbacks to finish")


def console_errors(driver) -> list[dict]:
    """Severe console entries since the last call (reading the log empties it)."""
    try:
        entries = driver.get_log("browser")
    except WebDriverException:
        return []
    return [e for e in entries if e["level"] == "SEVERE" and not any(s in e["message"] for s in IGNORED_CONSOLE)]


def screenshot(driver, path: Path, max_height: int = 2600) -> None:
    """The whole page (up to ``max_height`` px tall) as a PNG."""
    width, height = driver.get_window_size()["width"], driver.get_window_size()["height"]
    full = driver.execute_script("return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)")
    driver.set_window_size(width, min(max(full + 20, height), max_height))
    time.sleep(0.3)  # let plotly re-lay out to the new size
    driver.save_screenshot(str(path))
    driver.set_window_size(width, height)


def click(driver, element) -> None:
    """Click ``element`` after scrolling it to the middle of the window (clear of the sticky header)."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def table_rows(driver, table_id: str) -> list[list[str]]:
    """The text of each body row's cells, read in the page in one go (no stale element between reads)."""
    return driver.execute_script("""
        return Array.from(document.querySelectorAll(`#${arguments[0]} tr`))
            .map(row => Array.from(row.querySelectorAll('td')).map(cell => cell.innerText.trim()))
            .filter(cells => cells.length > 0);""", table_id)
