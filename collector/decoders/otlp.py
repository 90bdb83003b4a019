"""OTLP/HTTP traces (POST /v1/traces): ``ExportTraceServiceRequest`` as protobuf or as OTLP JSON.

Spans are mapped to Zipkin v2 by ``meshscope.wire.otlp_to_zipkin`` (the same mapping the writer
uses), so OpenTelemetry SDK attributes such as ``peer.service`` become Zipkin endpoints. OTLP JSON
carries ids as hex strings (not base64 as protobuf's JSON mapping would), so they are converted
before parsing.
"""

from __future__ import annotations

import base64

from google.protobuf import json_format
from google.protobuf.message import DecodeError as ProtobufDecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.decoders.json_v2 import parse_json
from collector.decoders.normalize import Decoded
from collector.errors import DecodeError
from meshscope.wire import WireError, otlp_to_zipkin

_ID_FIELDS = {"traceId": 16, "spanId": 8, "parentSpanId": 8}

def decode_protobuf(body: bytes) -> Decoded:
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (ProtobufDecodeError, RuntimeError, ValueError) as exc:
        raise DecodeError(f"malformed OTLP protobuf: {exc}") from exc
    return _convert(request)

def _hex_ids_to_base64(node: object) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                try:
                    node[key] = base64.b64encode(bytes.fromhex(value)).decode() if value else ""
                except ValueError as exc:
                    raise DecodeError(f"OTLP JSON {key} {value!r} is not hex") from exc
            else:
                _hex_ids_to_base64(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids_to_base64(item)

def decode_json(body: bytes) -> Decoded:
    document = parse_json(body)
    if not isinstance(document, dict):
        raise DecodeError("expected an OTLP JSON object with resourceSpans")
    _hex_ids_to_base64(document)
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise DecodeError(f"malformed OTLP JSON: {exc}") from exc
    return _convert(request)

def _convert(request: ExportTraceServiceRequest) -> Decoded:
    decoded = Decoded()
    index = 0
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            valid = []
            for span in scope_spans.spans:
                if len(span.trace_id) != 16 or len(span.span_id) != 8 or len(span.parent_span_id) not in (0, 8):
                    decoded.rejected.append(f"span {index}: OTLP trace id must be 16 bytes, span ids 8 bytes")
                else:
                    valid.append(span)
                index += 1
            del scope_spans.spans[:]
            scope_spans.spans.extend(valid)
    try:
        spans = otlp_to_zipkin(request.resource_spans)
    except WireError as exc:  # pragma: no cover - ids were checked above
        raise DecodeError(str(exc)) from exc
    for position, span in enumerate(spans):
        decoded.add(span, position)
    return decoded

__all__ = ["decode_protobuf", "decode_json", "SpanError", "trace_pb2"]
