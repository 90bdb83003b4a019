"""Ingestion endpoints: Zipkin v2 (JSON, proto3), Zipkin v1 (JSON, Thrift) and OTLP/HTTP.

Success is 202 with an empty body, as Zipkin answers. If some spans of a batch break Zipkin's rules,
the others are accepted (202) and the body lists what was rejected; if none is valid, 400. A
body that cannot be parsed is 400, an unknown content type 415, a body over
``MESHSCOPE_MAX_BODY_BYTES`` (after gzip decompression) 413, a full spool 503 with Retry-After.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from collector.decoders import json_v1, json_v2, otlp, proto3, thrift
from collector.decoders.normalize import Decoded
from collector.errors import DecodeError, SpoolFullError

logger = logging.getLogger(__name__)

_JSON = ("application/json", "text/plain", "")
_PROTOBUF = ("application/x-protobuf", "application/protobuf")
_THRIFT = ("application/x-thrift", "application/vnd.apache.thrift.binary")
RETRY_AFTER_S = "5"

router = APIRouter()


class BodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, gunzipped if ``Content-Encoding: gzip``; BodyError(413) past ``limit``."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyError(413, f"body of {declared} bytes is over the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyError(413, f"body over the limit of {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise BodyError(415, f"unsupported Content-Encoding {encoding!r} (gzip is accepted)")
    decompressor = zlib.decompressobj(zlib.MAX_WBITS | 32 if encoding != "deflate" else zlib.MAX_WBITS)
    try:
        out = decompressor.decompress(body, limit + 1)
    except zlib.error as exc:
        raise BodyError(400, f"malformed {encoding} body: {exc}") from exc
    if len(out) > limit or decompressor.unconsumed_tail:
        raise BodyError(413, f"decompressed body over the limit of {limit} bytes")
    if not decompressor.eof:
        raise BodyError(400, f"truncated {encoding} body")
    return out


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _ingest(request: Request, decoders: dict[tuple[str, ...], Callable[[bytes], Decoded]], state=None) -> Response:
    state = state if state is not None else request.app.state
    metrics = state.metrics
    media_type = _media_type(request)
    decoder = next((d for types, d in decoders.items() if media_type in types), None)
    try:
        if decoder is None:
            accepted = ", ".join(t for types in decoders for t in types if t)
            raise BodyError(415, f"unsupported Content-Type {media_type!r}; use one of {accepted}")
        body = await read_body(request, state.settings.max_body_bytes)
        try:
            decoded = decoder(body)
        except DecodeError as exc:
            raise BodyError(400, str(exc)) from exc
        metrics.inc("meshscope_spans_rejected_total", len(decoded.rejected))
        if not decoded.spans:
            if decoded.rejected:
                raise BodyError(400, "no valid span: " + "; ".join(decoded.rejected[:20]))
            return Response(status_code=202)
        try:
            state.publisher.publish(decoded.spans)
        except SpoolFullError as exc:
            metrics.inc("meshscope_requests_rejected_total")
            return JSONResponse({"error": f"{exc}; retry later"}, status_code=503, headers={"Retry-After": RETRY_AFTER_S})
    except BodyError as exc:
        metrics.inc("meshscope_requests_rejected_total")
        return JSONResponse({"error": str(exc)}, status_code=exc.status)
    metrics.inc("meshscope_spans_received_total", len(decoded.spans))
    if decoded.rejected:
        return JSONResponse(
            {"accepted": len(decoded.spans), "rejected": decoded.rejected[:100], "rejectedCount": len(decoded.rejected)},
            status_code=202,
        )
    return Response(status_code=202)


_V2 = {_JSON: json_v2.decode, _PROTOBUF: proto3.decode}
_V1 = {_JSON: json_v1.decode, _THRIFT: thrift.decode}
_OTLP = {_PROTOBUF: otlp.decode_protobuf, _JSON: otlp.decode_json}
DECODERS_BY_PATH = {"/api/v2/spans": _V2, "/api/v1/spans": _V1, "/v1/traces": _OTLP}

_SPANS_BODY = {"requestBody": {"content": {
    "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
    "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
}}}


@router.post("/api/v2/spans", status_code=202, openapi_extra=_SPANS_BODY, summary="Zipkin v2 spans (JSON or proto3)")
async def post_spans_v2(request: Request) -> Response:
    return await _ingest(request, _V2)


@router.post("/api/v1/spans", status_code=202, summary="Zipkin v1 spans (JSON or Thrift)", openapi_extra={"requestBody": {"content": {
    "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
    "application/x-thrift": {"schema": {"type": "string", "format": "binary"}},
}}})
async def post_spans_v1(request: Request) -> Response:
    return await _ingest(request, _V1)


@router.post("/v1/traces", status_code=202, summary="OTLP/HTTP traces (protobuf or JSON)", openapi_extra={"requestBody": {"content": {
    "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
    "application/json": {"schema": {"type": "object"}},
}}})
async def post_otlp(request: Request) -> Response:
    return await _ingest(request, _OTLP)


class IngestFastPath:
    """ASGI middleware: a POST to an ingestion path is answered here, as the routes above would
    answer it, without FastAPI's routing, dependency and exception layers, which cost as much
    CPU as decoding 100 spans. Everything else, and the OpenAPI description of these routes,
    stays with the app. ``authorized(request)`` is the app's bearer-token check: None to go on,
    else the response refusing the request."""

    def __init__(self, app, state, authorized: Callable[[Request], Response | None]) -> None:
        self.app = app
        self.state = state
        self.authorized = authorized

    async def __call__(self, scope, receive, send) -> None:
        decoders = DECODERS_BY_PATH.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if decoders is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        response = self.authorized(request)
        if response is None:
            response = await _ingest(request, decoders, self.state)
        await response(scope, receive, send)
