"""Where the dashboard's data comes from: meshscope's JSON APIs, behind a two-method interface.

- ``zipkin(resource, params)``: the Zipkin v2 query API under ``/api/v2/`` (services, spans,
  remoteServices, traces, trace/{id}, dependencies, autocompleteKeys).
- ``analysis(resource, params)``: the analysis API under ``/api/meshscope/v1/`` whose contract is
  docs/analysis-api.md (services, series, endpoints, topology, resources, anomalies,
  recommendations, versions, alerts, alerts/history).

``HttpDataSource`` is the implementation the app runs with (the API of ``meshscope serve`` or of
any server speaking it); tests substitute an in-memory source with seeded contract-shaped data.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from dashboard.errors import DataSourceError, DataSourceTimeout

logger = logging.getLogger(__name__)

ZIPKIN_PREFIX = "/api/v2/"
ANALYSIS_PREFIX = "/api/meshscope/v1/"
DEFAULT_TIMEOUT_S = 15.0


class DataSource(Protocol):
    def zipkin(self, resource: str, params: Mapping[str, Any] | None = None) -> Any:
        """The decoded JSON answer of ``GET /api/v2/{resource}``."""

    def analysis(self, resource: str, params: Mapping[str, Any] | None = None) -> Any:
        """The decoded JSON answer of ``GET /api/meshscope/v1/{resource}``."""


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """A query window in epoch milliseconds, as both APIs take it."""

    start_ms: int
    end_ms: int

    @classmethod
    def last(cls, seconds: float, now_ms: int | None = None) -> TimeWindow:
        end = int(time.time() * 1000) if now_ms is None else now_ms
        return cls(end - int(seconds * 1000), end)

    @property
    def seconds(self) -> float:
        return (self.end_ms - self.start_ms) / 1000

    def analysis_params(self, **extra: Any) -> dict[str, Any]:
        return {"start": self.start_ms, "end": self.end_ms, **extra}

    def zipkin_params(self, **extra: Any) -> dict[str, Any]:
        return {"endTs": self.end_ms, "lookback": self.end_ms - self.start_ms, **extra}


class HttpDataSource:
    """Both APIs over HTTP at ``base_url`` (e.g. ``http://127.0.0.1:9411``).

    ``auth_token`` is sent as a bearer token (the server's ``MESHSCOPE_AUTH_TOKEN``). A query slower
    than ``timeout_s`` raises ``DataSourceTimeout``; any other failure ``DataSourceError`` with a
    one-line message fit to show an operator.
    """

    def __init__(self, base_url: str, auth_token: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 transport: httpx.BaseTransport | None = None) -> None:
        headers = {"Accept": "application/json"}
        if auth_token:
            headers["Authorization"] = f"Bearer {auth_token}"
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s, transport=transport)

    def zipkin(self, resource: str, params: Mapping[str, Any] | None = None) -> Any:
        return self._get(ZIPKIN_PREFIX + resource, params)

    def analysis(self, resource: str, params: Mapping[str, Any] | None = None) -> Any:
        return self._get(ANALYSIS_PREFIX + resource, params)

    def close(self) -> None:
        self._client.close()

    def _get(self, path: str, params: Mapping[str, Any] | None) -> Any:
        query = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        started = time.monotonic()
        try:
            response = self._client.get(path, params=query)
        except httpx.TimeoutException as exc:
            raise DataSourceTimeout(f"{path} did not answer within {self.timeout_s:g} s") from exc
        except httpx.HTTPError as exc:
            raise DataSourceError(f"cannot reach the API at {self.base_url}: {exc}") from exc
        logger.debug("GET %s %s -> %s in %.3f s", path, query, response.status_code, time.monotonic() - started)
        if response.status_code >= 400:
            raise DataSourceError(f"{path} answered {response.status_code}: {_detail(response)}", response.status_code)
        try:
            return response.json()
        except ValueError as exc:
            raise DataSourceError(f"{path} answered something that is not JSON") from exc


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])[:200]
    return str(body)[:200]
