"""Zipkin proto3 (``application/x-protobuf``): ``zipkin.proto3.ListOfSpans`` from zipkin.proto.

``zipkin_pb2`` is generated from ../shared/zipkin-api/zipkin.proto with grpcio-tools' protoc
(``python -m grpc_tools.protoc -I. --python_out=. zipkin.proto``) and committed.
"""

from __future__ import annotations

import ipaddress

from google.protobuf.message import DecodeError as ProtobufDecodeError

from collector.decoders import zipkin_pb2
from collector.decoders.normalize import Decoded
from collector.errors import DecodeError

_KINDS = {1: "CLIENT", 2: "SERVER", 3: "PRODUCER", 4: "CONSUMER"}


def _endpoint(endpoint: zipkin_pb2.Endpoint) -> dict | None:
    out: dict = {}
    if endpoint.service_name:
        out["serviceName"] = endpoint.service_name
    if len(endpoint.ipv4) == 4:
        out["ipv4"] = str(ipaddress.IPv4Address(endpoint.ipv4))
    if len(endpoint.ipv6) == 16:
        out["ipv6"] = str(ipaddress.IPv6Address(endpoint.ipv6))
    if endpoint.port:
        out["port"] = endpoint.port
    return out or None


def _span(span: zipkin_pb2.Span) -> dict:
    out: dict = {"traceId": span.trace_id.hex(), "id": span.id.hex()}
    if span.parent_id:
        out["parentId"] = span.parent_id.hex()
    if span.kind:
        out["kind"] = _KINDS.get(span.kind, f"unknown({span.kind})")
    if span.name:
        out["name"] = span.name
    if span.timestamp:
        out["timestamp"] = span.timestamp
    if span.duration:
        out["duration"] = span.duration
    if span.HasField("local_endpoint"):
        out["localEndpoint"] = _endpoint(span.local_endpoint)
    if span.HasField("remote_endpoint"):
        out["remoteEndpoint"] = _endpoint(span.remote_endpoint)
    if span.annotations:
        out["annotations"] = [{"timestamp": a.timestamp, "value": a.value} for a in span.annotations]
    if span.tags:
        out["tags"] = dict(span.tags)
    if span.debug:
        out["debug"] = True
    if span.shared:
        out["shared"] = True
    return out


def decode(body: bytes) -> Decoded:
    message = zipkin_pb2.ListOfSpans()
    try:
        message.ParseFromString(body)
    except (ProtobufDecodeError, RuntimeError, ValueError) as exc:
        raise DecodeError(f"malformed protobuf ListOfSpans: {exc}") from exc
    decoded = Decoded()
    for index, span in enumerate(message.spans):
        decoded.add(_span(span), index)
    return decoded
