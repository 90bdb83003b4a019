"""Test-side encoders: Zipkin v2 spans into every format a client may send.

v2 -> v1 follows Zipkin's ``V2SpanConverter`` (core annotations from kind, timestamp and duration
left to the client side of a shared span, ``sa``/``ca``/``ma`` address annotations, ``lc`` for
local spans); v1 -> Thrift writes zipkinCore.thrift's ``list<Span>`` with thriftpy2.
"""

from __future__ import annotations

import base64
import ipaddress
import struct

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from thriftpy2.protocol import binary
from thriftpy2.thrift import TType
from thriftpy2.transport import TMemoryBuffer

from collector.decoders import zipkin_pb2
from collector.decoders.thrift import zipkin_core
from meshscope.wire import encode_spans

_BEGIN_END = {"CLIENT": ("cs", "cr"), "SERVER": ("sr", "ss"), "PRODUCER": ("ms", "ws"), "CONSUMER": ("wr", "mr")}
_ADDRESS = {"CLIENT": "sa", "SERVER": "ca", "PRODUCER": "ma", "CONSUMER": "ma"}


def to_v1(span: dict) -> dict:
    local = span.get("localEndpoint")
    v1: dict = {"traceId": span["traceId"], "id": span["id"], "name": span.get("name", "")}
    if span.get("parentId"):
        v1["parentId"] = span["parentId"]
    kind, ts, duration = span.get("kind"), span.get("timestamp"), span.get("duration")
    annotations, binary = [], []
    if kind:
        begin, end = _BEGIN_END[kind]
        if kind == "CONSUMER" and not duration:
            annotations.append({"timestamp": ts, "value": "mr", "endpoint": local})
        else:
            annotations.append({"timestamp": ts, "value": begin, "endpoint": local})
            if duration:
                annotations.append({"timestamp": ts + duration, "value": end, "endpoint": local})
    if not span.get("shared") and ts:
        v1["timestamp"] = ts
        if duration:
            v1["duration"] = duration
    for annotation in span.get("annotations", ()):
        annotations.append({**annotation, "endpoint": local})
    for key, value in span.get("tags", {}).items():
        binary.append({"key": key, "value": value, "endpoint": local})
    if not kind and local and not span.get("annotations"):
        binary.append({"key": "lc", "value": "", "endpoint": local})
    if kind and span.get("remoteEndpoint"):
        binary.append({"key": _ADDRESS[kind], "value": True, "endpoint": span["remoteEndpoint"]})
    if annotations:
        v1["annotations"] = annotations
    if binary:
        v1["binaryAnnotations"] = binary
    if span.get("debug"):
        v1["debug"] = True
    return v1


def _thrift_endpoint(endpoint: dict | None):
    if not endpoint:
        return None
    ipv4 = int(ipaddress.IPv4Address(endpoint["ipv4"])) if endpoint.get("ipv4") else 0
    return zipkin_core.Endpoint(
        ipv4=struct.unpack(">i", struct.pack(">I", ipv4))[0],
        port=struct.unpack(">h", struct.pack(">H", endpoint.get("port", 0)))[0],
        service_name=endpoint.get("serviceName", ""),
        ipv6=ipaddress.IPv6Address(endpoint["ipv6"]).packed if endpoint.get("ipv6") else None,
    )


def _i64(hex_id: str) -> int:
    return struct.unpack(">q", bytes.fromhex(hex_id))[0]


def to_thrift(v1_spans: list[dict]) -> bytes:
    spans = []
    for v1 in v1_spans:
        trace_id = v1["traceId"]
        spans.append(zipkin_core.Span(
            trace_id=_i64(trace_id[-16:]),
            trace_id_high=_i64(trace_id[:16]) if len(trace_id) == 32 else None,
            name=v1.get("name", ""),
            id=_i64(v1["id"]),
            parent_id=_i64(v1["parentId"]) if v1.get("parentId") else None,
            annotations=[zipkin_core.Annotation(timestamp=a["timestamp"], value=a["value"], host=_thrift_endpoint(a["endpoint"]))
                         for a in v1.get("annotations", ())],
            binary_annotations=[
                zipkin_core.BinaryAnnotation(
                    key=b["key"],
                    value=b"\x01" if b["value"] is True else str(b["value"]).encode(),
                    annotation_type=zipkin_core.AnnotationType.BOOL if b["value"] is True else zipkin_core.AnnotationType.STRING,
                    host=_thrift_endpoint(b["endpoint"]),
                )
                for b in v1.get("binaryAnnotations", ())
            ],
            debug=bool(v1.get("debug")),
            timestamp=v1.get("timestamp"),
            duration=v1.get("duration"),
        ))
    buffer = TMemoryBuffer()
    binary.write_val(buffer, TType.LIST, spans, (TType.STRUCT, zipkin_core.Span))
    return buffer.getvalue()


def _proto_endpoint(endpoint: dict, out: zipkin_pb2.Endpoint) -> None:
    out.service_name = endpoint.get("serviceName", "")
    if endpoint.get("ipv4"):
        out.ipv4 = ipaddress.IPv4Address(endpoint["ipv4"]).packed
    if endpoint.get("ipv6"):
        out.ipv6 = ipaddress.IPv6Address(endpoint["ipv6"]).packed
    out.port = endpoint.get("port", 0)


def to_proto3(spans: list[dict]) -> bytes:
    message = zipkin_pb2.ListOfSpans()
    kinds = {"CLIENT": 1, "SERVER": 2, "PRODUCER": 3, "CONSUMER": 4}
    for span in spans:
        out = message.spans.add()
        out.trace_id = bytes.fromhex(span["traceId"])
        out.id = bytes.fromhex(span["id"])
        if span.get("parentId"):
            out.parent_id = bytes.fromhex(span["parentId"])
        out.kind = kinds.get(span.get("kind"), 0)
        out.name = span.get("name", "")
        out.timestamp = span.get("timestamp", 0)
        out.duration = span.get("duration", 0)
        if span.get("localEndpoint"):
            _proto_endpoint(span["localEndpoint"], out.local_endpoint)
        if span.get("remoteEndpoint"):
            _proto_endpoint(span["remoteEndpoint"], out.remote_endpoint)
        for annotation in span.get("annotations", ()):
            out.annotations.add(timestamp=annotation["timestamp"], value=annotation["value"])
        for key, value in span.get("tags", {}).items():
            out.tags[key] = value
        out.debug = bool(span.get("debug"))
        out.shared = bool(span.get("shared"))
    return message.SerializeToString()


def to_otlp(spans: list[dict]) -> bytes:
    """OTLP protobuf (TracesData and ExportTraceServiceRequest share their wire form)."""
    return encode_spans(spans)


def to_otlp_json(spans: list[dict]) -> bytes:
    import orjson

    request = ExportTraceServiceRequest()
    request.ParseFromString(encode_spans(spans))
    document = json_format.MessageToDict(request)

    def hex_ids(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                    node[key] = base64.b64decode(value).hex()
                else:
                    hex_ids(value)
        elif isinstance(node, list):
            for item in node:
                hex_ids(item)

    hex_ids(document)
    return orjson.dumps(document)
