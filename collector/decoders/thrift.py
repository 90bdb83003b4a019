"""Zipkin Thrift (``application/x-thrift``, POST /api/v1/spans): a TBinaryProtocol list of
``Span`` from zipkinCore.thrift (copied here from ../shared/zipkin-api/thrift/), read with
thriftpy2 and converted to v1 JSON shape, then to v2 like JSON v1."""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

import thriftpy2
from thriftpy2.protocol import binary
from thriftpy2.thrift import TType
from thriftpy2.transport import TMemoryBuffer

from collector.decoders.json_v1 import decode_v1_spans
from collector.decoders.normalize import Decoded
from collector.errors import DecodeError

zipkin_core = thriftpy2.load(str(Path(__file__).with_name("zipkinCore.thrift")), module_name="zipkinCore_thrift")
# AnnotationType -> how to read the value bytes (big-endian, as Thrift writes numbers)
_BINARY_VALUE = {
    zipkin_core.AnnotationType.BOOL: lambda b: "true" if b and b[0] else "false",
    zipkin_core.AnnotationType.I16: lambda b: str(struct.unpack(">h", b)[0]),
    zipkin_core.AnnotationType.I32: lambda b: str(struct.unpack(">i", b)[0]),
    zipkin_core.AnnotationType.I64: lambda b: str(struct.unpack(">q", b)[0]),
    zipkin_core.AnnotationType.DOUBLE: lambda b: repr(struct.unpack(">d", b)[0]),
}


def _id(value: int | None) -> str | None:
    return None if value is None else format(value & 0xFFFFFFFFFFFFFFFF, "016x")


def _endpoint(host) -> dict | None:
    if host is None:
        return None
    endpoint: dict = {"serviceName": host.service_name or ""}
    if host.ipv4:
        endpoint["ipv4"] = str(ipaddress.IPv4Address(host.ipv4 & 0xFFFFFFFF))
    if host.ipv6 and len(host.ipv6) == 16:
        endpoint["ipv6"] = str(ipaddress.IPv6Address(host.ipv6))
    if host.port:
        endpoint["port"] = host.port & 0xFFFF
    return endpoint


def _binary_value(annotation) -> object:
    value = annotation.value or b""
    if annotation.key in ("ca", "sa", "ma"):
        return True
    reader = _BINARY_VALUE.get(annotation.annotation_type)
    if reader is None:  # STRING and BYTES
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    try:
        return reader(value)
    except struct.error:
        return value.hex()


def _v1(span) -> dict:
    return {
        "traceId": _id(span.trace_id),
        "traceIdHigh": _id(span.trace_id_high) if span.trace_id_high else None,
        "id": _id(span.id),
        "parentId": _id(span.parent_id) if span.parent_id else None,
        "name": span.name or "",
        "timestamp": span.timestamp,
        "duration": span.duration,
        "debug": bool(span.debug),
        "annotations": [
            {"timestamp": a.timestamp, "value": a.value or "", "endpoint": _endpoint(a.host)} for a in span.annotations or ()
        ],
        "binaryAnnotations": [
            {"key": b.key or "", "value": _binary_value(b), "endpoint": _endpoint(b.host)} for b in span.binary_annotations or ()
        ],
    }


def read_spans(body: bytes) -> list:
    """The list header is checked first (element type, a count the body can hold) so that
    garbage cannot make the reader spin on a huge or negative count."""
    if len(body) < 5:
        raise DecodeError("malformed Thrift list of Span: shorter than a list header")
    element_type, count = struct.unpack_from(">bi", body)
    if element_type != TType.STRUCT:
        raise DecodeError(f"malformed Thrift list of Span: element type {element_type}, expected a struct (12)")
    if count < 0 or count > len(body) - 5:
        raise DecodeError(f"malformed Thrift list of Span: {count} spans cannot fit in {len(body)} bytes")
    buffer = TMemoryBuffer(body[5:])
    spans = []
    try:
        for _ in range(count):
            spans.append(binary.read_val(buffer, TType.STRUCT, zipkin_core.Span, decode_response=True))
    except Exception as exc:  # thriftpy2 raises TProtocolException, struct.error, EOFError...
        raise DecodeError(f"malformed Thrift list of Span: {exc}") from exc
    return spans


def decode(body: bytes) -> Decoded:
    return decode_v1_spans([_v1(span) for span in read_spans(body)])
