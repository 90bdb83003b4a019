"""Zipkin's span rules, applied to every decoded span whatever its format.

As zipkin2.Span.Builder and zipkin2.Endpoint.Builder do: lowercase hex ids (trace id 16 or 32 hex,
a 128-bit id whose high half is zero becomes 16; span and parent ids 16 hex, never all zeros),
lowercase span and service names, zero timestamps/durations/ports dropped, IP addresses parsed
(an IPv4-mapped IPv6 address becomes ipv4), annotations sorted and de-duplicated, empty fields
omitted, and the Zipkin JSON field order. Normalized spans are read, never changed: the spans of
one endpoint share its normalized dict.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import lru_cache

from collector.errors import SpanError

try:  # Cython's own flag: True in the module setup.py builds, False in the plain .py
    import cython

    _COMPILED = cython.compiled
except ImportError:  # the plain .py where Cython is not installed
    _COMPILED = False

KINDS = frozenset(("CLIENT", "SERVER", "PRODUCER", "CONSUMER"))
_HEX_DIGITS = "0123456789abcdef"


@dataclass(slots=True)
class Decoded:
    """What a decoder read from one request: accepted spans and why others were rejected."""

    spans: list[dict] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    def add(self, raw: object, index: int) -> None:
        """Normalize ``raw`` (the ``index``-th span of the body) into ``spans`` or ``rejected``."""
        try:
            self.spans.append(normalize_span(raw))
        except SpanError as exc:
            self.rejected.append(f"span {index}: {exc}")


def _is_lower_hex(text: str) -> bool:
    """``text`` is non-empty lowercase hex. Compiled: a C loop over its characters. Plain Python:
    ``str.strip`` (what it leaves is not hex: it stops at the first other character from either
    end), the faster of the two there, but ~2,000 instructions per 32-character id compiled."""
    if _COMPILED:
        for char in text:
            if not ("0" <= char <= "9" or "a" <= char <= "f"):
                return False
        return len(text) > 0
    return bool(text) and not text.strip(_HEX_DIGITS)


def _hex(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise SpanError(f"{what} must be a hex string, got {value!r}")
    if _is_lower_hex(value):
        return value  # the usual case: no copy
    text = value.lower()
    if not _is_lower_hex(text):
        raise SpanError(f"{what} {value!r} is not lower-hex")
    return text


def normalize_trace_id(value: object) -> str:
    trace_id = _hex(value, "traceId")
    if len(trace_id) not in (16, 32):
        raise SpanError(f"traceId {value!r} must be 16 or 32 hex characters")
    if trace_id.count("0") == len(trace_id):
        raise SpanError("traceId is all zeros")
    if len(trace_id) == 32 and trace_id.startswith("0" * 16):
        trace_id = trace_id[16:]
    return trace_id


def normalize_span_id(value: object, what: str = "id") -> str:
    span_id = _hex(value, what)
    if len(span_id) != 16:
        raise SpanError(f"{what} {value!r} must be 16 hex characters")
    if span_id == "0" * 16:
        raise SpanError(f"{what} is all zeros")
    return span_id


def _int(value: object, what: str) -> int:
    if type(value) is int:  # the usual case, a JSON number
        return value if value > 0 else 0
    if value is None or value == "":
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise SpanError(f"{what} must be a number, got {value!r}")
    try:
        number = int(value)
    except ValueError as exc:
        raise SpanError(f"{what} must be a number, got {value!r}") from exc
    return max(number, 0)


def _ip(value: object, version: int) -> str | None:
    """Zipkin's Endpoint.ip(): an unparsable address is dropped, a mapped IPv4 address moves."""
    if not isinstance(value, str) or not value:
        return None
    return _parse_ip(value, version)


@lru_cache(maxsize=65536)  # a fleet has few addresses; parsing is most of an endpoint's cost
def _parse_ip(value: str, version: int) -> str | None:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address) if address.version == version or version == 0 else None


_endpoints: dict[tuple, dict | None] = {}  # a fleet has few endpoints: normalized once each
_ENDPOINTS_MAX = 100_000


def normalize_endpoint(raw: object) -> dict | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise SpanError(f"endpoint must be an object, got {raw!r}")
    fields = raw if type(raw) is dict else dict(raw)  # an exact dict: compiled, its look-ups are C calls
    service, ipv4, ipv6, port = fields.get("serviceName"), fields.get("ipv4"), fields.get("ipv6"), fields.get("port")
    # with the types: True == 1 == 1.0, yet they normalize apart
    key = (service, ipv4, ipv6, port, type(service), type(ipv4), type(ipv6), type(port))
    try:
        cached = _endpoints.get(key, False)
    except TypeError:  # an unhashable value (a list, an object): not cached
        return _normalize_endpoint(service, ipv4, ipv6, port)
    if cached is False:
        cached = _normalize_endpoint(service, ipv4, ipv6, port)
        if len(_endpoints) >= _ENDPOINTS_MAX:
            _endpoints.clear()
        _endpoints[key] = cached
    return cached  # shared by the spans naming this endpoint: nothing changes a span once normalized


def _normalize_endpoint(service: object, ipv4_raw: object, ipv6_raw: object, port_raw: object) -> dict | None:
    endpoint: dict = {}
    if service:
        endpoint["serviceName"] = str(service).lower()
    ipv4 = _ip(ipv4_raw, 4) or _ip(ipv6_raw, 4)
    if ipv4:
        endpoint["ipv4"] = ipv4
    ipv6 = _ip(ipv6_raw, 6)
    if ipv6:
        endpoint["ipv6"] = ipv6
    port = _int(port_raw, "port")
    if port > 0xFFFF:
        raise SpanError(f"invalid port {port}")
    if port:
        endpoint["port"] = port
    return endpoint or None


def _all_strings(tags: dict):  # -> bool (bint in normalize.pxd)
    """Every key and value is a string: the usual tags, kept as they are."""
    for key, value in tags.items():
        if type(key) is not str or type(value) is not str:
            return False
    return True


def normalize_span(raw: object) -> dict:
    """One span in Zipkin v2 shape -> Zipkin's normalized form; raises SpanError."""
    if not isinstance(raw, dict):
        raise SpanError(f"a span must be an object, got {type(raw).__name__}")
    fields = raw if type(raw) is dict else dict(raw)  # an exact dict: compiled, its look-ups are C calls
    trace_id, raw_span_id = fields.get("traceId"), fields.get("id")
    if trace_id is None or raw_span_id is None:
        raise SpanError("traceId and id are required")
    span: dict = {"traceId": normalize_trace_id(trace_id)}
    span_id = normalize_span_id(raw_span_id)
    parent = fields.get("parentId")
    if parent not in (None, "") and not (isinstance(parent, str) and parent.count("0") == len(parent)):
        parent_id = normalize_span_id(parent, "parentId")
        if parent_id != span_id:  # Zipkin undoes a circular reference
            span["parentId"] = parent_id
    span["id"] = span_id
    kind = fields.get("kind")
    if kind not in (None, ""):
        if kind not in KINDS:
            raise SpanError(f"kind {kind!r} is not one of {', '.join(sorted(KINDS))}")
        span["kind"] = kind
    name = fields.get("name")
    if name:
        span["name"] = name if type(name) is str and name.islower() else str(name).lower()
    timestamp = _int(fields.get("timestamp"), "timestamp")
    if timestamp:
        span["timestamp"] = timestamp
    duration = _int(fields.get("duration"), "duration")
    if duration:
        span["duration"] = duration
    for key in ("localEndpoint", "remoteEndpoint"):
        endpoint = normalize_endpoint(fields.get(key))
        if endpoint:
            span[key] = endpoint
    annotations = fields.get("annotations")
    if annotations:
        if not isinstance(annotations, list):
            raise SpanError("annotations must be a list")
        unique = set()
        for annotation in annotations:
            if not isinstance(annotation, dict) or annotation.get("value") is None or not annotation.get("timestamp"):
                raise SpanError(f"incomplete annotation {annotation!r}: timestamp and value are required")
            unique.add((_int(annotation["timestamp"], "annotation timestamp"), str(annotation["value"])))
        span["annotations"] = [{"timestamp": ts, "value": value} for ts, value in sorted(unique)]
    tags = fields.get("tags")
    if tags:
        if not isinstance(tags, dict):
            raise SpanError("tags must be an object")
        if type(tags) is dict and _all_strings(tags):
            span["tags"] = dict(tags)  # the usual case: nothing to convert
        else:
            clean = {}
            for key, value in tags.items():
                if isinstance(value, (dict, list)):
                    raise SpanError(f"tag {key!r} must have a string value")
                clean[str(key)] = "" if value is None else (str(value).lower() if isinstance(value, bool) else str(value))
            span["tags"] = clean
    if fields.get("debug") is True:
        span["debug"] = True
    if fields.get("shared") is True:
        span["shared"] = True
    return span
