"""The Zipkin v2 query API (zipkin2-api.yaml), served under /api/v2 and /zipkin/api/v2.

Behaviour of Zipkin's server beyond the spec file: names are lowercased, ``limit`` defaults to 10
and ``lookback`` to ``MESHSCOPE_QUERY_LOOKBACK_MS`` (86400000), ``maxDuration`` needs
``minDuration``, ``traceMany`` needs two or more distinct ids, an unknown trace is 404, and bad
parameters are 400 with a one-line message.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from storage import zipkin_queries
from storage.zipkin_queries import TraceQuery

router = APIRouter()

_MAX_I64 = 2**63 - 1
_MAX_MS = 2**53  # epoch milliseconds far past any span, and exact in JSON numbers
_HEX = frozenset("0123456789abcdef")


def _store(request: Request):
    state = request.app.state
    return state.clickhouse(), state.settings.clickhouse_database


def _json(value: object) -> JSONResponse:
    return JSONResponse(value)


def normalize_trace_id(value: str) -> str:
    """As Zipkin's Span.normalizeTraceId for a lookup: lower hex, padded to 16 or 32."""
    text = value.strip().lower()
    if not text or len(text) > 32 or not set(text) <= _HEX:
        raise HTTPException(400, f"{value!r} should be a 1 to 32 character lower-hex string with no prefix")
    if text.count("0") == len(text):
        raise HTTPException(400, f"traceId {value!r} is all zeros")
    text = text.rjust(16 if len(text) <= 16 else 32, "0")
    if len(text) == 32 and text.startswith("0" * 16):
        text = text[16:]
    return text


@router.get("/services", response_model=list[str])
def get_services(request: Request):
    client, database = _store(request)
    return _json(zipkin_queries.services(client, database))


@router.get("/spans", response_model=list[str])
def get_span_names(request: Request, serviceName: Annotated[str, Query(min_length=1)]):
    client, database = _store(request)
    return _json(zipkin_queries.span_names(client, database, serviceName.lower()))


@router.get("/remoteServices", response_model=list[str])
def get_remote_services(request: Request, serviceName: Annotated[str, Query(min_length=1)]):
    client, database = _store(request)
    return _json(zipkin_queries.remote_services(client, database, serviceName.lower()))


def _terms(annotation_query: str | None) -> list[tuple[str, str | None]]:
    terms: list[tuple[str, str | None]] = []
    for part in (annotation_query or "").split(" and "):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip()
        if not key:
            raise HTTPException(400, f"annotationQuery term {part!r} has no key")
        terms.append((key, value.strip() if sep else None))
    return terms


@router.get("/traces", response_model=list[list[dict]])
def get_traces(
    request: Request,
    serviceName: str | None = None,
    remoteServiceName: str | None = None,
    spanName: str | None = None,
    annotationQuery: str | None = None,
    minDuration: Annotated[int | None, Query(ge=1, le=_MAX_I64)] = None,
    maxDuration: Annotated[int | None, Query(ge=1, le=_MAX_I64)] = None,
    endTs: Annotated[int | None, Query(ge=1, le=_MAX_MS)] = None,
    lookback: Annotated[int | None, Query(ge=1, le=_MAX_MS)] = None,
    limit: Annotated[int, Query(ge=1, le=100000)] = 10,
):
    if maxDuration is not None and minDuration is None:
        raise HTTPException(400, "minDuration is required when specifying maxDuration")
    if maxDuration is not None and maxDuration < minDuration:
        raise HTTPException(400, "maxDuration should be >= minDuration")
    settings = request.app.state.settings
    end_ms = endTs or int(time.time() * 1000)
    lookback_ms = lookback or settings.query_lookback_ms
    span_name = (spanName or "").lower()
    query = TraceQuery(
        start_us=max(end_ms - lookback_ms, 0) * 1000,
        end_us=end_ms * 1000,
        limit=limit,
        service=(serviceName or "").lower() or None,
        remote_service=(remoteServiceName or "").lower() or None,
        span_name=None if span_name in ("", "all") else span_name,
        min_duration=minDuration,
        max_duration=maxDuration,
        terms=_terms(annotationQuery),
    )
    client, database = _store(request)
    trace_ids = zipkin_queries.search(client, database, query)
    found = zipkin_queries.traces(client, database, trace_ids)
    return _json([found[trace_id] for trace_id in trace_ids if trace_id in found])


@router.get("/trace/{traceId}", response_model=list[dict], responses={404: {"description": "traceId not found"}})
def get_trace(request: Request, traceId: str):
    trace_id = normalize_trace_id(traceId)
    client, database = _store(request)
    spans = zipkin_queries.traces(client, database, [trace_id]).get(trace_id)
    if not spans:
        raise HTTPException(404, f"{trace_id} not found")
    return _json(spans)


@router.get("/traceMany", response_model=list[list[dict]])
def get_trace_many(request: Request, traceIds: Annotated[str, Query(min_length=1)]):
    ids = [normalize_trace_id(part) for part in traceIds.split(",") if part.strip()]
    if len(ids) < 2:
        raise HTTPException(400, "traceIds should be at least two trace IDs, comma separated; use /trace/{traceId} for one")
    if len(set(ids)) != len(ids):
        raise HTTPException(400, f"redundant trace IDs in {traceIds!r}")
    client, database = _store(request)
    found = zipkin_queries.traces(client, database, ids)
    return _json([found[trace_id] for trace_id in ids if trace_id in found])


@router.get("/dependencies", response_model=list[dict])
def get_dependencies(
    request: Request,
    endTs: Annotated[int, Query(ge=1, le=_MAX_MS)],
    lookback: Annotated[int | None, Query(ge=1, le=_MAX_MS)] = None,
):
    lookback_ms = lookback or request.app.state.settings.query_lookback_ms
    client, database = _store(request)
    return _json(zipkin_queries.dependencies(client, database, max(endTs - lookback_ms, 0) * 1000, endTs * 1000))


@router.get("/autocompleteKeys", response_model=list[str])
def get_autocomplete_keys(request: Request):
    client, database = _store(request)
    return _json(zipkin_queries.autocomplete_keys(client, database))


@router.get("/autocompleteValues", response_model=list[str])
def get_autocomplete_values(request: Request, key: Annotated[str, Query(min_length=1)]):
    client, database = _store(request)
    return _json(zipkin_queries.autocomplete_values(client, database, key))
