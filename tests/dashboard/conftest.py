"""Fixtures of the dashboard tests: a real headless Chromium (Debian's chromium and chromedriver),
the dashboard served over real HTTP, and the API it reads from.

Two APIs: ``seeded_api_url`` is a test double (a small real FastAPI/uvicorn server answering the
API contract from tests/dashboard/seed.py, fast and deterministic, used to check every page and
failure display); ``meshscope_server`` is the real ``meshscope serve`` in a subprocess, over its own
embedded ClickHouse directory seeded through ``storage.writer`` (tests/dashboard/store_seed.py)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from meshscope.devbroker import free_port, wait_for_port
from tests.dashboard import seed

CHROMIUM = os.environ.get("MESHSCOPE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MESHSCOPE_CHROMEDRIVER", "/usr/bin/chromedriver")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def start_chromium(user_data_dir: Path, width: int = 1440, height: int = 1000):
    """A headless Chromium driven by chromedriver (never downloads a browser)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={user_data_dir}",
                 f"--window-size={width},{height}", "--hide-scrollbars"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


class ThreadedServer:
    """A WSGI or ASGI app on a loopback port in a thread of this process."""

    def __init__(self, app, kind: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if kind == "wsgi":
            from werkzeug.serving import make_server

            self._server = make_server("127.0.0.1", self.port, app, threaded=True)
            self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        else:
            import uvicorn

            self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
            self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._kind = kind
        self._thread.start()
        wait_for_port("127.0.0.1", self.port, timeout=30)

    def stop(self) -> None:
        if self._kind == "wsgi":
            self._server.shutdown()
        else:
            self._server.should_exit = True
        self._thread.join(timeout=10)


def seeded_api_app(api: seed.SeededApi):
    """The test double of meshscope's API: the contract's routes answered from seeded data."""
    app = FastAPI()

    @app.get("/api/v2/{resource:path}")
    def zipkin(resource: str, request: Request):
        code, body = api.answer("zipkin", resource, dict(request.query_params))
        return JSONResponse(body, status_code=code)

    @app.get("/api/meshscope/v1/{resource:path}")
    def analysis(resource: str, request: Request):
        code, body = api.answer("analysis", resource, dict(request.query_params))
        if resource in api.slow:
            time.sleep(api.slow[resource])
        return JSONResponse(body, status_code=code)

    return app


@pytest.fixture(scope="session")
def seeded_api():
    api = seed.SeededApi()
    api.slow = {}
    return api


@pytest.fixture(scope="session")
def seeded_api_url(seeded_api):
    server = ThreadedServer(seeded_api_app(seeded_api), "asgi")
    yield server.url
    server.stop()


def mounted(dash_app, prefix: str = "/dashboard"):
    """The Dash server under ``prefix`` as ``meshscope serve`` mounts it (SCRIPT_NAME = prefix)."""
    from werkzeug.exceptions import NotFound
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    return DispatcherMiddleware(NotFound(), {prefix: dash_app.server})


@pytest.fixture(scope="session")
def dashboard_url(seeded_api_url):
    """The dashboard against the seeded API double, served like `meshscope serve` mounts it."""
    from dashboard.app import create_app

    server = ThreadedServer(mounted(create_app(seeded_api_url)), "wsgi")
    yield server.url + "/dashboard/"
    server.stop()


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory):
    """Where the browser tests save their pages: docs/screenshots/ with MESHSCOPE_UPDATE_SCREENSHOTS=1
    (`make screenshots`), a temporary directory otherwise, so that a test run leaves the tree clean."""
    if os.environ.get("MESHSCOPE_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="session")
def meshscope_server(tmp_path_factory, kafka_broker):
    """The real `meshscope serve` (API + dashboard) over a store seeded with known traffic."""
    import subprocess
    import sys

    from tests.dashboard import store_seed

    if shutil.which("meshscope") is None and not (Path(sys.executable).parent / "meshscope").exists():
        pytest.skip("the meshscope command is not installed")
    workdir = tmp_path_factory.mktemp("meshscope-serve")
    store = workdir / "clickhouse"
    env = {**os.environ, "MESHSCOPE_CLICKHOUSE_URL": f"chdb://{store}", "MESHSCOPE_CLICKHOUSE_DATABASE": "meshscope",
           "MESHSCOPE_KAFKA_BOOTSTRAP": kafka_broker.bootstrap, "MESHSCOPE_SPOOL_DIR": str(workdir / "spool"),
           "MESHSCOPE_RETENTION_DAYS": "3650"}
    store_seed.seed(store, "meshscope", env=env)
    port = free_port()
    log = open(workdir / "serve.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "meshscope.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                               env=env, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        _wait_http(f"http://127.0.0.1:{port}/dashboard/", process, workdir / "serve.log")
        yield store_seed.Served(f"http://127.0.0.1:{port}", process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _wait_http(url: str, process, log: Path, timeout: float = 90.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"meshscope serve exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer in {timeout} s:\n{log.read_text()[-3000:]}")
