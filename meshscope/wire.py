"""The wire model on Kafka: what agents and the collector publish, and how it is encoded.

Three topics (names from settings, defaults below):

- spans: OTLP ``TracesData`` protobuf holding one or more whole traces whose ids all map to one
  partition, keyed by the first trace's id, so that a trace's spans stay in one partition and in
  order (``docs/wire-model.md``; the agents send one trace per message).
- metrics: OTLP ``MetricsData`` with, per (service, instance, version) resource and per interval,
  one exponential histogram data point of latency per key (kind, remote service, endpoint, method,
  status class, database) and sums for errors, rows and request/response bytes with the same
  attributes. Keyed by service.
- resources: OTLP ``MetricsData`` gauges (CPU, memory, health, telemetry drops) per instance.

Inside meshscope a span is a Zipkin v2 JSON-shaped dict (``traceId``, ``id``, ``parentId``, ``kind``,
``name``, ``timestamp`` and ``duration`` in microseconds, ``localEndpoint``, ``remoteEndpoint``,
``annotations``, ``tags``, ``debug``, ``shared``), empty fields omitted as Zipkin does. The mapping to
OTLP keeps every Zipkin field: what OTLP has no field for travels as span attributes under the
reserved ``zipkin.`` prefix (documented in docs/wire-model.md).
"""

from __future__ import annotations

import struct
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from operator import methodcaller

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1 import trace_pb2

from meshscope.sketch import DEFAULT_SCALE, LatencySketch

SPANS_TOPIC = "meshscope.spans"
METRICS_TOPIC = "meshscope.metrics"
RESOURCES_TOPIC = "meshscope.resources"

# Reserved attribute keys, under RESERVED_PREFIX, for Zipkin fields OTLP has no place for.
RESERVED_PREFIX = "zipkin."
ATTR_TRACE_ID_64 = "zipkin.trace_id_64bit"
ATTR_DEBUG = "zipkin.debug"
ATTR_SHARED = "zipkin.shared"
ATTR_LOCAL_IPV4 = "zipkin.local.ipv4"
ATTR_LOCAL_IPV6 = "zipkin.local.ipv6"
ATTR_LOCAL_PORT = "zipkin.local.port"
ATTR_REMOTE_SERVICE = "zipkin.remote.service_name"
ATTR_REMOTE_IPV4 = "zipkin.remote.ipv4"
ATTR_REMOTE_IPV6 = "zipkin.remote.ipv6"
ATTR_REMOTE_PORT = "zipkin.remote.port"
ATTR_NO_DURATION = "zipkin.no_duration"
SERVICE_NAME = "service.name"
SERVICE_INSTANCE = "service.instance.id"
SERVICE_VERSION = "service.version"

_ZIPKIN_TO_OTLP_KIND = {
    None: trace_pb2.Span.SPAN_KIND_UNSPECIFIED,
    "SERVER": trace_pb2.Span.SPAN_KIND_SERVER,
    "CLIENT": trace_pb2.Span.SPAN_KIND_CLIENT,
    "PRODUCER": trace_pb2.Span.SPAN_KIND_PRODUCER,
    "CONSUMER": trace_pb2.Span.SPAN_KIND_CONSUMER,
}
_OTLP_TO_ZIPKIN_KIND = {v: k for k, v in _ZIPKIN_TO_OTLP_KIND.items()}
_OTLP_TO_ZIPKIN_KIND[trace_pb2.Span.SPAN_KIND_INTERNAL] = None

_LOCAL_ENDPOINT_ATTRS = ((SERVICE_NAME, "serviceName"), (ATTR_LOCAL_IPV4, "ipv4"), (ATTR_LOCAL_IPV6, "ipv6"), (ATTR_LOCAL_PORT, "port"))
_REMOTE_ENDPOINT_ATTRS = ((ATTR_REMOTE_SERVICE, "serviceName"), (ATTR_REMOTE_IPV4, "ipv4"), (ATTR_REMOTE_IPV6, "ipv6"), (ATTR_REMOTE_PORT, "port"))
# OpenTelemetry semantic conventions that also name a remote endpoint (spans from OTel SDKs).
_OTEL_REMOTE_FALLBACKS = (
    ("serviceName", ("peer.service",)),
    ("ipv4", ("net.peer.ip", "server.address", "network.peer.address")),
    ("port", ("net.peer.port", "server.port", "network.peer.port")),
)
_OTEL_REMOTE_TAGS = frozenset(tag for _, candidates in _OTEL_REMOTE_FALLBACKS for tag in candidates)


class WireError(ValueError):
    """A message on the wire that cannot be decoded (a poison message for the writer)."""


# --------------------------------------------------------------------------------------- spans


def _kv(key: str, value: object) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def _any_to_str(value: AnyValue) -> str:
    which = value.WhichOneof("value")
    if which is None:
        return ""
    if which == "string_value":
        return value.string_value
    if which == "bool_value":
        return "true" if value.bool_value else "false"
    if which == "int_value":
        return str(value.int_value)
    if which == "double_value":
        return repr(value.double_value)
    if which == "bytes_value":
        return value.bytes_value.hex()
    if which == "array_value":
        return ",".join(_any_to_str(v) for v in value.array_value.values)
    if which == "kvlist_value":
        return ",".join(f"{kv.key}={_any_to_str(kv.value)}" for kv in value.kvlist_value.values)
    return ""


def _id_bytes(hex_id: str, width) -> bytes:  # width: an int; typed in wire.pxd (a C integer)
    try:
        return _from_hex(hex_id if len(hex_id) == width * 2 else hex_id.rjust(width * 2, "0"))
    except ValueError as exc:
        raise WireError(f"invalid hex id {hex_id!r}") from exc


def _endpoint_key(endpoint: dict | None) -> tuple:
    if not endpoint:
        return ()
    return tuple((attr, endpoint[key]) for attr, key in _LOCAL_ENDPOINT_ATTRS if endpoint.get(key) not in (None, ""))


def zipkin_to_otlp_span(span: dict) -> trace_pb2.Span:
    """One Zipkin v2 span as an OTLP span (its localEndpoint goes to the resource, see encode_spans)."""
    out = trace_pb2.Span()
    out.ParseFromString(_span_bytes(span))
    return out


# encode_spans writes the protobuf wire format itself (field numbers from
# opentelemetry/proto/trace/v1/trace.proto and common/v1/common.proto), in field-number order as
# protobuf's own serializer does: building a message object per span and attribute costs more
# than the rest of ingestion. tests/meshscope/test_wire.py holds it byte-equal to that serializer.
_FIXED64 = struct.Struct("<Q").pack
_SMALL_VARINTS = [bytes((n,)) for n in range(128)]
_from_hex = bytes.fromhex
_KIND_FIELD = {kind: b"\x30" + bytes((value,)) for kind, value in _ZIPKIN_TO_OTLP_KIND.items() if value}
_ATTRIBUTE_CACHE: dict[tuple, bytes] = {}
_ATTRIBUTE_CACHE_MAX = 50_000
_TRUE = True


def _varint(n) -> bytes:  # n: an int in [0, 2**64) (wire.pxd: a C unsigned long long)
    if n < 128:
        return _SMALL_VARINTS[n]
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _int64_varint(n: int) -> bytes:
    return _varint(n if n >= 0 else n + (1 << 64))  # int64: two's complement, 10 bytes


def _length_delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


def _attribute_field(tag: bytes, key: str, value: object) -> bytes:
    """A KeyValue as the field ``tag`` (0x4A Span.attributes, 0x0A Resource.attributes), as _kv builds it."""
    cache_key = (tag, key, type(value), value)
    encoded = _ATTRIBUTE_CACHE.get(cache_key)
    if encoded is None:
        if isinstance(value, bool):
            any_value = b"\x10\x01" if value else b"\x10\x00"  # AnyValue.bool_value (2)
        elif isinstance(value, int):
            any_value = b"\x18" + _int64_varint(value)  # AnyValue.int_value (3)
        else:
            any_value = _length_delimited(b"\x0a", str(value).encode())  # AnyValue.string_value (1)
        # KeyValue.key (1), KeyValue.value (2)
        encoded = _length_delimited(tag, _length_delimited(b"\x0a", key.encode()) + _length_delimited(b"\x12", any_value))
        if len(_ATTRIBUTE_CACHE) >= _ATTRIBUTE_CACHE_MAX:
            _ATTRIBUTE_CACHE.clear()
        _ATTRIBUTE_CACHE[cache_key] = encoded
    return encoded


# Span attributes with a string value, by key then value (a tag's key and value recur across spans):
# two look-ups of strings instead of building and hashing a tuple per attribute
_SPAN_STRING_ATTRIBUTES: dict[str, dict[str, bytes]] = {}
_span_string_attribute_count = 0
# a span's name field by name (names recur too)
_NAME_FIELDS: dict[str, bytes] = {}


def _span_string_attribute(key: str, value: str) -> bytes:
    """``_attribute_field(b"\x4a", key, value)`` for a string ``value``, from its own cache."""
    global _span_string_attribute_count
    by_value = _SPAN_STRING_ATTRIBUTES.get(key)
    if by_value is None:
        by_value = _SPAN_STRING_ATTRIBUTES[key] = {}
    encoded = by_value.get(value)
    if encoded is None:
        if _span_string_attribute_count >= _ATTRIBUTE_CACHE_MAX:
            _SPAN_STRING_ATTRIBUTES.clear()
            _span_string_attribute_count = 0
            by_value = _SPAN_STRING_ATTRIBUTES[key] = {}
        encoded = by_value[value] = _attribute_field(b"\x4a", key, value)
        _span_string_attribute_count += 1
    return encoded


def _name_field(name: str) -> bytes:
    encoded = _NAME_FIELDS.get(name)
    if encoded is None:
        if len(_NAME_FIELDS) >= _ATTRIBUTE_CACHE_MAX:
            _NAME_FIELDS.clear()
        encoded = _NAME_FIELDS[name] = _length_delimited(b"\x2a", name.encode())  # Span.name (5)
    return encoded


def _span_bytes(span: dict) -> bytes:
    """One Zipkin v2 span as a serialized OTLP Span (what zipkin_to_otlp_span's message serializes to)."""
    trace_id = span["traceId"]  # normalized: lowercase (and bytes.fromhex reads either case)
    parts = [b"\x0a\x10", _id_bytes(trace_id, 16), b"\x12\x08", _id_bytes(span["id"], 8)]  # trace_id (1), span_id (2)
    parent_id = span.get("parentId")
    if parent_id:
        parts += (b"\x22\x08", _id_bytes(parent_id, 8))  # parent_span_id (4)
    name = span.get("name")
    if name:
        parts.append(_name_field(name))
    kind = _KIND_FIELD.get(span.get("kind"))
    if kind:
        parts.append(kind)  # kind (6)
    timestamp = span.get("timestamp") or 0
    duration = span.get("duration")
    try:
        if timestamp:
            parts += (b"\x39", _FIXED64(timestamp * 1000))  # start_time_unix_nano (7)
        if duration and timestamp + duration:
            parts += (b"\x41", _FIXED64((timestamp + duration) * 1000))  # end_time_unix_nano (8)
    except struct.error as exc:
        raise WireError(f"timestamp or duration out of range: {exc}") from exc
    # attributes (9)
    if len(trace_id) == 16:
        parts.append(_attribute_field(b"\x4a", ATTR_TRACE_ID_64, _TRUE))
    tags = span.get("tags")
    if tags:
        for key, value in tags.items():
            parts.append(_span_string_attribute(key, str(value)))
    remote = span.get("remoteEndpoint")
    if remote:
        for attr, key in _REMOTE_ENDPOINT_ATTRS:
            value = remote.get(key)
            if value not in (None, ""):
                parts.append(_attribute_field(b"\x4a", attr, value))
    if span.get("debug"):
        parts.append(_attribute_field(b"\x4a", ATTR_DEBUG, _TRUE))
    if span.get("shared"):
        parts.append(_attribute_field(b"\x4a", ATTR_SHARED, _TRUE))
    for annotation in span.get("annotations") or ():
        # events (11): Event.time_unix_nano (1), Event.name (2)
        event = b"\x09" + _FIXED64(annotation["timestamp"] * 1000) if annotation["timestamp"] else b""
        if annotation["value"]:
            event += _length_delimited(b"\x12", annotation["value"].encode())
        parts.append(_length_delimited(b"\x5a", event))
    if tags and "error" in tags:
        # status (15): Status.message (2), Status.code (3) = STATUS_CODE_ERROR
        message = str(tags["error"])
        status = (_length_delimited(b"\x12", message.encode()) if message else b"") + b"\x18\x02"
        parts.append(_length_delimited(b"\x7a", status))
    return b"".join(parts)


def encode_spans(spans: Iterable[dict]) -> bytes:
    """Zipkin v2 spans -> serialized OTLP TracesData (spans grouped by local endpoint)."""
    by_endpoint: defaultdict[tuple, list[bytes]] = defaultdict(list)
    endpoint_keys: dict[tuple, tuple] = {}  # a message's spans share a few endpoints: each keyed once
    for span in spans:
        local = span.get("localEndpoint")
        fields = (local.get("serviceName"), local.get("ipv4"), local.get("ipv6"), local.get("port")) if local else ()
        endpoint = endpoint_keys.get(fields)
        if endpoint is None:
            endpoint = endpoint_keys[fields] = _endpoint_key(local)
        by_endpoint[endpoint].append(_length_delimited(b"\x12", _span_bytes(span)))
    out = []
    for endpoint, span_fields in by_endpoint.items():
        # ResourceSpans.resource (1) = Resource.attributes (1); ResourceSpans.scope_spans (2) = ScopeSpans.spans (2)
        resource = _length_delimited(b"\x0a", b"".join([_attribute_field(b"\x0a", k, v) for k, v in endpoint]))
        out.append(_length_delimited(b"\x0a", resource + _length_delimited(b"\x12", b"".join(span_fields))))  # TracesData.resource_spans (1)
    return b"".join(out)


def spans_by_trace(spans: Iterable[dict]) -> Iterator[tuple[str, list[dict]]]:
    """Group spans by trace id (the key of the Kafka messages that carry them)."""
    groups: defaultdict[str, list[dict]] = defaultdict(list)
    for span in spans:
        groups[span["traceId"].lower()].append(span)
    return iter(groups.items())


# Kafka's default message.max.bytes is 1 MB: a partition's traces that encode larger go in several
# messages, split between traces, and a trace larger alone between its spans (same key, so same
# partition and order).
MAX_SPAN_MESSAGE_BYTES = 900_000


def partition_of(trace_id: bytes, partitions: int) -> int:
    """The index (among the sorted partitions) kafka-python's DefaultPartitioner gives this key."""
    return (murmur2(trace_id) & 0x7FFFFFFF) % partitions


_MURMUR2_SEED = 0x9747B28C
_MURMUR2_M = 0x5BD1E995
_MASK32 = 0xFFFFFFFF


def murmur2(key: bytes) -> int:
    """Kafka's murmur2 hash of a record key, equal to kafka-python's (kafka.partitioner.default),
    which is pure Python and cost 4% of ingestion. Compiled (wire.pxd), the arithmetic is C's on
    32-bit unsigned integers and the masks cost nothing."""
    length = len(key)
    h = (_MURMUR2_SEED ^ length) & _MASK32
    tail = length - length % 4
    for i in range(0, tail, 4):
        k = key[i + 3]
        k = (k << 8) | key[i + 2]
        k = (k << 8) | key[i + 1]
        k = (k << 8) | key[i]
        k = (k * _MURMUR2_M) & _MASK32
        k ^= k >> 24
        k = (k * _MURMUR2_M) & _MASK32
        h = ((h * _MURMUR2_M) & _MASK32) ^ k
    extra = length - tail
    if extra >= 3:
        h ^= key[tail + 2] << 16
    if extra >= 2:
        h ^= key[tail + 1] << 8
    if extra >= 1:
        h = ((h ^ key[tail]) * _MURMUR2_M) & _MASK32
    h ^= h >> 13
    h = (h * _MURMUR2_M) & _MASK32
    return h ^ (h >> 15)


def span_messages(spans: list[dict], partitions: int | None) -> list[tuple[bytes, bytes, int]]:
    """(key, OTLP TracesData, span count) Kafka records for ``spans``, by the collector and the
    agents alike: the traces that map to one partition go together, keyed by the first one's id,
    so every trace lands in the partition it would alone with one record per partition instead of
    per trace; one record per trace while ``partitions`` is unknown (None)."""
    return [(key, value, len(group)) for key, value, group in span_message_groups(spans, partitions)]


def span_message_groups(spans: list[dict], partitions: int | None) -> list[tuple[bytes, bytes, list[dict]]]:
    """``span_messages`` with each record's spans instead of their count."""
    traces = [(trace_id.encode(), group) for trace_id, group in spans_by_trace(spans)]
    if partitions is None or len(traces) == 1:
        return [(key, value, encoded) for key, group in traces for value, encoded in _encode_trace(group)]
    by_partition: dict[int, list[tuple[bytes, list[dict]]]] = {}
    for key, group in traces:
        by_partition.setdefault(partition_of(key, partitions), []).append((key, group))
    return [
        (members[0][0], value, encoded)
        for members in by_partition.values()
        for value, encoded in _encode_traces([group for _, group in members])
    ]


def _encode_traces(traces: list[list[dict]]) -> list[tuple[bytes, list[dict]]]:
    """One message for whole traces, or several split between traces when one would be too large."""
    if len(traces) == 1:
        return _encode_trace(traces[0])
    spans = [span for trace in traces for span in trace]
    value = encode_spans(spans)
    if len(value) <= MAX_SPAN_MESSAGE_BYTES:
        return [(value, spans)]
    middle = len(traces) // 2
    return _encode_traces(traces[:middle]) + _encode_traces(traces[middle:])


def _encode_trace(spans: list[dict]) -> list[tuple[bytes, list[dict]]]:
    """One message for the spans of a trace, or several when one would be too large."""
    value = encode_spans(spans)
    if len(value) <= MAX_SPAN_MESSAGE_BYTES or len(spans) == 1:
        return [(value, spans)]
    middle = len(spans) // 2
    return _encode_trace(spans[:middle]) + _encode_trace(spans[middle:])


def round_trips(span: dict) -> bool:
    """True when ``decode_spans`` gives back this span (in Zipkin's normalized form) equal to itself
    from what ``encode_spans`` made of it. Two mappings break the round trip: tags under the
    reserved ``zipkin.`` prefix are read back as Zipkin fields, and a span without remote endpoint
    whose tags name one the OpenTelemetry way (_OTEL_REMOTE_FALLBACKS) gets it from them."""
    tags = span.get("tags")
    if not tags:
        return True
    if "remoteEndpoint" not in span and not _OTEL_REMOTE_TAGS.isdisjoint(tags):
        return False
    return not any(map(_is_reserved, tags))


_is_reserved = methodcaller("startswith", RESERVED_PREFIX)  # map() with it: no generator frame per span


def decode_spans(payload: bytes) -> list[dict]:
    """Serialized OTLP TracesData (ours or any OpenTelemetry SDK's) -> Zipkin v2 spans."""
    data = trace_pb2.TracesData()
    try:
        data.ParseFromString(payload)
    except Exception as exc:  # protobuf raises DecodeError or RuntimeWarning-derived errors
        raise WireError(f"not an OTLP TracesData message: {exc}") from exc
    return otlp_to_zipkin(data.resource_spans)


def otlp_to_zipkin(resource_spans_list: Iterable[trace_pb2.ResourceSpans]) -> list[dict]:
    spans: list[dict] = []
    for resource_spans in resource_spans_list:
        resource = {kv.key: kv.value for kv in resource_spans.resource.attributes}
        local = {}
        for attr, key in _LOCAL_ENDPOINT_ATTRS:
            if attr in resource:
                local[key] = _endpoint_value(key, resource[attr])
        for scope_spans in resource_spans.scope_spans:
            for otlp_span in scope_spans.spans:
                spans.append(_otlp_span_to_zipkin(otlp_span, local))
    return spans


def _endpoint_value(key: str, value: AnyValue) -> str | int:
    if key == "port":
        return value.int_value if value.WhichOneof("value") == "int_value" else int(_any_to_str(value) or 0)
    return _any_to_str(value)


_STRING_VALUE = "string_value"
_ERROR = trace_pb2.Status.STATUS_CODE_ERROR
_REMOTE_ATTR_FIELDS = {attr: key for attr, key in _REMOTE_ENDPOINT_ATTRS}


def _otlp_span_to_zipkin(otlp_span: trace_pb2.Span, local: dict) -> dict:
    # one pass over the attributes: this runs for every span the writer stores
    trace_id_bytes = otlp_span.trace_id
    if len(trace_id_bytes) != 16 or len(otlp_span.span_id) != 8:
        raise WireError("OTLP span with a trace id not 16 bytes or a span id not 8 bytes")
    tags: dict[str, str] = {}
    remote: dict = {}
    reserved: set[str] = set()
    for kv in otlp_span.attributes:
        key = kv.key
        if key.startswith(RESERVED_PREFIX):
            reserved.add(key)
            field_name = _REMOTE_ATTR_FIELDS.get(key)
            if field_name is not None:
                remote[field_name] = _endpoint_value(field_name, kv.value)
        else:
            value = kv.value
            text = value.string_value  # a non-empty string_value needs no WhichOneof: the usual case
            tags[key] = text if text or value.WhichOneof("value") == _STRING_VALUE else _any_to_str(value)
    trace_id = trace_id_bytes.hex()
    if ATTR_TRACE_ID_64 in reserved:
        trace_id = trace_id[16:]
    span: dict = {"traceId": trace_id}
    parent = otlp_span.parent_span_id
    if parent:
        span["parentId"] = parent.hex()
    span["id"] = otlp_span.span_id.hex()
    kind = _OTLP_TO_ZIPKIN_KIND.get(otlp_span.kind)
    if kind:
        span["kind"] = kind
    name = otlp_span.name
    if name:
        span["name"] = name
    start, end = otlp_span.start_time_unix_nano, otlp_span.end_time_unix_nano
    if start:
        span["timestamp"] = start // 1000
    if end and end > start:
        span["duration"] = max((end - start) // 1000, 1)
    if local:
        span["localEndpoint"] = dict(local)
    if not remote and tags:
        for key, candidates in _OTEL_REMOTE_FALLBACKS:
            for candidate in candidates:
                if candidate in tags:
                    remote[key] = int(tags[candidate] or 0) if key == "port" else tags[candidate]
                    break
    if remote:
        span["remoteEndpoint"] = remote
    if otlp_span.events:
        span["annotations"] = [{"timestamp": event.time_unix_nano // 1000, "value": event.name} for event in otlp_span.events]
    if otlp_span.status.code == _ERROR and "error" not in tags:
        tags["error"] = otlp_span.status.message or "true"
    if tags:
        span["tags"] = tags
    if ATTR_DEBUG in reserved:
        span["debug"] = True
    if ATTR_SHARED in reserved:
        span["shared"] = True
    return span


# ------------------------------------------------------------------------------------- metrics


@dataclass(slots=True)
class LatencyRecord:
    """One interval of one key's traffic from one instance: the row of the latency table.

    ``kind`` is ``http.server``/``http.client`` (endpoint = ``METHOD /normalized/route``) or
    ``sql.client``/``sql.server`` (endpoint = the statement digest, method = the statement type).
    Latencies are in milliseconds.
    """

    interval_start: int  # unix seconds, aligned to interval_s
    interval_s: int
    service: str
    instance: str
    version: str
    kind: str
    endpoint: str
    method: str = ""
    status_class: str = ""
    remote_service: str = ""
    database: str = ""
    sketch: LatencySketch = field(default_factory=LatencySketch)
    errors: int = 0
    rows: int = 0
    request_bytes: int = 0
    response_bytes: int = 0

    def key(self) -> tuple:
        return (self.kind, self.remote_service, self.endpoint, self.method, self.status_class, self.database)


@dataclass(slots=True)
class ResourceSample:
    """One gauge reading of one instance: ``metric`` is e.g. ``process.cpu.utilization``
    (fraction of one CPU), ``process.memory.rss`` and ``process.memory.limit`` (bytes),
    ``health.up`` (0/1), ``health.probe_ms``, ``telemetry.dropped`` (count since start)."""

    timestamp_ms: int
    service: str
    instance: str
    version: str
    metric: str
    value: float


_LATENCY_METRIC = "meshscope.latency"
_COUNTER_FIELDS = ("errors", "rows", "request_bytes", "response_bytes")
_KEY_ATTRS = ("kind", "remote_service", "endpoint", "method", "status_class", "database")


def _resource(service: str, instance: str, version: str) -> Resource:
    return Resource(attributes=[_kv(SERVICE_NAME, service), _kv(SERVICE_INSTANCE, instance), _kv(SERVICE_VERSION, version)])


def encode_latency(records: Iterable[LatencyRecord]) -> bytes:
    by_resource: defaultdict[tuple, list[LatencyRecord]] = defaultdict(list)
    for record in records:
        by_resource[(record.service, record.instance, record.version)].append(record)
    data = metrics_pb2.MetricsData()
    for (service, instance, version), group in by_resource.items():
        resource_metrics = data.resource_metrics.add()
        resource_metrics.resource.CopyFrom(_resource(service, instance, version))
        scope = resource_metrics.scope_metrics.add()
        histogram = scope.metrics.add(name=_LATENCY_METRIC, unit="ms").exponential_histogram
        histogram.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
        counters = {name: scope.metrics.add(name=f"meshscope.{name}").sum for name in _COUNTER_FIELDS}
        for counter in counters.values():
            counter.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
            counter.is_monotonic = True
        for record in group:
            attributes = [_kv(name, getattr(record, name)) for name in _KEY_ATTRS]
            start_ns = record.interval_start * 1_000_000_000
            end_ns = (record.interval_start + record.interval_s) * 1_000_000_000
            point = histogram.data_points.add(start_time_unix_nano=start_ns, time_unix_nano=end_ns)
            point.attributes.extend(attributes)
            sketch = record.sketch
            point.count = sketch.count
            point.sum = sketch.sum
            if sketch.count:
                point.min = sketch.min
                point.max = sketch.max
            point.scale = sketch.scale
            point.zero_count = sketch.zero_count
            if sketch.buckets:
                offset = min(sketch.buckets)
                point.positive.offset = offset
                counts = [0] * (max(sketch.buckets) - offset + 1)
                for index, n in sketch.buckets.items():
                    counts[index - offset] = n
                point.positive.bucket_counts.extend(counts)
            for name, counter in counters.items():
                value = getattr(record, name)
                if value:
                    number = counter.data_points.add(start_time_unix_nano=start_ns, time_unix_nano=end_ns, as_int=value)
                    number.attributes.extend(attributes)
    return data.SerializeToString()


def _parse_metrics(payload: bytes) -> metrics_pb2.MetricsData:
    data = metrics_pb2.MetricsData()
    try:
        data.ParseFromString(payload)
    except Exception as exc:
        raise WireError(f"not an OTLP MetricsData message: {exc}") from exc
    return data


def _resource_labels(resource: Resource) -> tuple[str, str, str]:
    attrs = {kv.key: _any_to_str(kv.value) for kv in resource.attributes}
    return attrs.get(SERVICE_NAME, ""), attrs.get(SERVICE_INSTANCE, ""), attrs.get(SERVICE_VERSION, "")


def decode_latency(payload: bytes) -> list[LatencyRecord]:
    data = _parse_metrics(payload)
    records: dict[tuple, LatencyRecord] = {}
    for resource_metrics in data.resource_metrics:
        service, instance, version = _resource_labels(resource_metrics.resource)
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                if metric.name == _LATENCY_METRIC:
                    for point in metric.exponential_histogram.data_points:
                        labels = {kv.key: _any_to_str(kv.value) for kv in point.attributes}
                        interval_start = point.start_time_unix_nano // 1_000_000_000
                        interval_s = max((point.time_unix_nano - point.start_time_unix_nano) // 1_000_000_000, 1)
                        buckets = {point.positive.offset + i: n for i, n in enumerate(point.positive.bucket_counts) if n}
                        sketch = LatencySketch.from_parts(
                            buckets, point.zero_count, point.count, point.sum, point.min, point.max, point.scale
                        )
                        if sketch.scale > DEFAULT_SCALE:  # keep every stored row at one scale so sumMap merges exactly
                            normalized = LatencySketch(DEFAULT_SCALE)
                            normalized.merge(sketch)
                            sketch = normalized
                        record = LatencyRecord(
                            interval_start, interval_s, service, instance, version,
                            sketch=sketch, **{name: labels.get(name, "") for name in _KEY_ATTRS},
                        )
                        records[(service, instance, version, interval_start, record.key())] = record
    for resource_metrics in data.resource_metrics:
        service, instance, version = _resource_labels(resource_metrics.resource)
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                name = metric.name.removeprefix("meshscope.")
                if name not in _COUNTER_FIELDS:
                    continue
                for point in metric.sum.data_points:
                    labels = {kv.key: _any_to_str(kv.value) for kv in point.attributes}
                    key = tuple(labels.get(attr, "") for attr in _KEY_ATTRS)
                    record = records.get((service, instance, version, point.start_time_unix_nano // 1_000_000_000, key))
                    if record is None:
                        raise WireError(f"counter {metric.name} without its latency data point")
                    setattr(record, name, point.as_int)
    return list(records.values())


def encode_resources(samples: Iterable[ResourceSample]) -> bytes:
    by_resource: defaultdict[tuple, list[ResourceSample]] = defaultdict(list)
    for sample in samples:
        by_resource[(sample.service, sample.instance, sample.version)].append(sample)
    data = metrics_pb2.MetricsData()
    for (service, instance, version), group in by_resource.items():
        resource_metrics = data.resource_metrics.add()
        resource_metrics.resource.CopyFrom(_resource(service, instance, version))
        scope = resource_metrics.scope_metrics.add()
        gauges: dict[str, metrics_pb2.Gauge] = {}
        for sample in group:
            gauge = gauges.get(sample.metric)
            if gauge is None:
                gauge = gauges[sample.metric] = scope.metrics.add(name=sample.metric).gauge
            gauge.data_points.add(time_unix_nano=sample.timestamp_ms * 1_000_000, as_double=sample.value)
    return data.SerializeToString()


def decode_resources(payload: bytes) -> list[ResourceSample]:
    data = _parse_metrics(payload)
    samples = []
    for resource_metrics in data.resource_metrics:
        service, instance, version = _resource_labels(resource_metrics.resource)
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                for point in metric.gauge.data_points:
                    value = point.as_double if point.WhichOneof("value") == "as_double" else float(point.as_int)
                    samples.append(ResourceSample(point.time_unix_nano // 1_000_000, service, instance, version, metric.name, value))
    return samples
