"""Zipkin v1 spans -> v2, following Zipkin's ``zipkin2.v1.V1SpanConverter``.

A v1 span is the dict shape of Zipkin's v1 JSON (``traceId``, ``id``, ``parentId``, ``name``,
``timestamp``, ``duration``, ``debug``, ``annotations`` [{timestamp, value, endpoint}],
``binaryAnnotations`` [{key, value, endpoint}]); the Thrift decoder produces the same shape. One
v1 span may become two v2 spans: the client and server halves of an RPC that both sides reported
under one span id (the server half then has ``shared``).
"""

from __future__ import annotations

from collector.errors import SpanError

_CORE = frozenset(("cs", "sr", "ss", "cr", "ms", "mr", "ws", "wr"))
_KIND_OF = {"cs": "CLIENT", "cr": "CLIENT", "sr": "SERVER", "ss": "SERVER", "ms": "PRODUCER", "mr": "CONSUMER"}


def _service(endpoint: dict | None) -> str:
    return ((endpoint or {}).get("serviceName") or "").lower()


class _Converter:
    def __init__(self, source: dict) -> None:
        self.source = source
        self.timestamp = int(source.get("timestamp") or 0)
        self.duration = int(source.get("duration") or 0)
        self.first = self._new(None)
        self.spans = [self.first]
        self.core: dict[str, dict] = {}

    def _new(self, endpoint: dict | None) -> dict:
        source = self.source
        trace_id = source.get("traceId")
        if source.get("traceIdHigh"):
            trace_id = f"{source['traceIdHigh']}{trace_id}"
        span = {"traceId": trace_id, "id": source.get("id"), "parentId": source.get("parentId"), "name": source.get("name")}
        if source.get("debug") is True:
            span["debug"] = True
        if endpoint:
            span["localEndpoint"] = endpoint
        return span

    def for_endpoint(self, endpoint: dict | None) -> dict:
        """The v2 span of ``endpoint``'s service (Zipkin's forEndpoint/closeEnoughEndpoint)."""
        if not endpoint:
            return self.first
        for span in self.spans:
            local = span.get("localEndpoint")
            if local is None:
                span["localEndpoint"] = endpoint
                return span
            if _service(local) == _service(endpoint):
                return span
        span = self._new(endpoint)
        self.spans.append(span)
        return span

    def annotations(self) -> None:
        for annotation in self.source.get("annotations") or ():
            if not isinstance(annotation, dict):
                raise SpanError(f"annotation must be an object, got {annotation!r}")
            value, endpoint = annotation.get("value"), annotation.get("endpoint")
            span = self.for_endpoint(endpoint)
            if value in _CORE and endpoint:
                self.core[value] = annotation
                if value in _KIND_OF:
                    span["kind"] = _KIND_OF[value]
            else:
                span.setdefault("annotations", []).append({"timestamp": annotation.get("timestamp"), "value": value})
        core = self.core
        cs, sr, ss, cr, ms, mr, ws, wr = (core.get(v) for v in ("cs", "sr", "ss", "cr", "ms", "mr", "ws", "wr"))
        # bridging from event models can lose a start annotation: recover it from the span timing
        if cs is None and cr is not None and self._end_reflects_duration(cr):
            cs = core["cs"] = {"timestamp": self.timestamp, "value": "cs", "endpoint": cr["endpoint"]}
        if sr is None and ss is not None and self._end_reflects_duration(ss):
            sr = core["sr"] = {"timestamp": self.timestamp, "value": "sr", "endpoint": ss["endpoint"]}
        if cs and sr:
            self._timing(cs, cr)
            client = self.for_endpoint(cs["endpoint"])
            if _service(cs["endpoint"]) == _service(sr["endpoint"]):  # loopback: two spans
                client["kind"] = "CLIENT"
                server = self._new(sr["endpoint"])
                self.spans.append(server)
            else:
                server = self.for_endpoint(sr["endpoint"])
            server["kind"] = "SERVER"
            server["shared"] = True
            server["timestamp"] = sr["timestamp"]
            if ss:
                server["duration"] = ss["timestamp"] - sr["timestamp"]
            if cr is None and not self.duration:
                client.pop("duration", None)
        elif cs and cr:
            self._timing(cs, cr)
        elif sr and ss:
            self._timing(sr, ss)
        else:
            self._incomplete_rpc(cs, sr, ss, cr)
        # v1 had no shared flag: by convention a server half without the span timestamp is shared
        if cs is None and sr is not None and (not self.timestamp or (ss is not None and not self.duration)):
            self.for_endpoint(sr["endpoint"])["shared"] = True
        if ms and mr:
            producer = self.for_endpoint(ms["endpoint"])
            if _service(ms["endpoint"]) == _service(mr["endpoint"]):
                producer["kind"] = "PRODUCER"
                consumer = self._new(mr["endpoint"])
                self.spans.append(consumer)
            else:
                consumer = self.for_endpoint(mr["endpoint"])
            consumer["kind"] = "CONSUMER"
            consumer["shared"] = True
            if wr:
                consumer["timestamp"] = wr["timestamp"]
                consumer["duration"] = mr["timestamp"] - wr["timestamp"]
            else:
                consumer["timestamp"] = mr["timestamp"]
            producer["timestamp"] = ms["timestamp"]
            if ws:
                producer["duration"] = ws["timestamp"] - ms["timestamp"]
        elif ms:
            self._timing(ms, ws)
        elif mr:
            if wr:
                self._timing(wr, mr)
            else:
                self._timing(mr, None)
        else:
            for annotation in (ws, wr):
                if annotation:
                    self.first.setdefault("annotations", []).append({"timestamp": annotation["timestamp"], "value": annotation["value"]})

    def _end_reflects_duration(self, end: dict) -> bool:
        return bool(self.timestamp and self.duration and end.get("timestamp") == self.timestamp + self.duration)

    def _timing(self, begin: dict, end: dict | None) -> None:
        span = self.for_endpoint(begin["endpoint"])
        if self.timestamp and self.duration:
            span["timestamp"], span["duration"] = self.timestamp, self.duration
        else:
            span["timestamp"] = begin["timestamp"]
            if end is not None:
                span["duration"] = end["timestamp"] - begin["timestamp"]

    def _incomplete_rpc(self, cs: dict | None, sr: dict | None, ss: dict | None, cr: dict | None) -> None:
        for begin, end, kind in ((cs, cr, "CLIENT"), (sr, ss, "SERVER")):
            if begin is not None:
                self.for_endpoint(begin["endpoint"])["timestamp"] = begin["timestamp"]
            elif end is not None:  # only the end event: keep it as an annotation, the kind is unknown
                span = self.for_endpoint(end["endpoint"])
                if span.get("kind") == kind:
                    del span["kind"]
                span.setdefault("annotations", []).append({"timestamp": end["timestamp"], "value": end["value"]})
        if self.timestamp and "timestamp" not in self.first:
            self.first["timestamp"] = self.timestamp
            if self.duration:
                self.first["duration"] = self.duration

    def binary_annotations(self) -> None:
        addresses: dict[str, dict] = {}
        for annotation in self.source.get("binaryAnnotations") or ():
            if not isinstance(annotation, dict) or not isinstance(annotation.get("key"), str):
                raise SpanError(f"binary annotation must be an object with a key, got {annotation!r}")
            key, value, endpoint = annotation["key"], annotation.get("value"), annotation.get("endpoint")
            if key in ("ca", "sa", "ma"):
                if endpoint:
                    addresses[key] = endpoint
                continue
            if key == "lc" and not value:  # marker for the local endpoint only
                self.for_endpoint(endpoint)
                continue
            if isinstance(value, bool):
                value = "true" if value else "false"
            self.for_endpoint(endpoint).setdefault("tags", {})[key] = "" if value is None else str(value)
        core = self.core
        ca, sa, ma = addresses.get("ca"), addresses.get("sa"), addresses.get("ma")
        cs, sr, ss, cr, ms, mr = (core.get(v) for v in ("cs", "sr", "ss", "cr", "ms", "mr"))
        if cs is None and sr is None and ca and sa:
            self.for_endpoint(ca)["remoteEndpoint"] = sa
            return
        if sa:
            if cs or cr:
                self.for_endpoint((cs or cr)["endpoint"])["remoteEndpoint"] = sa
            elif sr is None and ss is None:
                span = self.for_endpoint(None)
                span["kind"] = "CLIENT"
                span["remoteEndpoint"] = sa
        if ca:
            if sr or ss:
                self.for_endpoint((sr or ss)["endpoint"])["remoteEndpoint"] = ca
            elif cs is None and cr is None:
                span = self.for_endpoint(None)
                span["kind"] = "SERVER"
                span["remoteEndpoint"] = ca
        if ma:
            for annotation in (ms, mr):
                if annotation:
                    self.for_endpoint(annotation["endpoint"])["remoteEndpoint"] = ma

    def convert(self) -> list[dict]:
        self.annotations()
        self.binary_annotations()
        if not self.core and self.timestamp and "timestamp" not in self.first:  # a local span
            self.first["timestamp"] = self.timestamp
            if self.duration:
                self.first["duration"] = self.duration
        return self.spans


def v1_to_v2(source: dict) -> list[dict]:
    """One v1 span -> one or two v2 spans (not yet normalized); raises SpanError."""
    if not isinstance(source, dict):
        raise SpanError(f"a span must be an object, got {type(source).__name__}")
    if source.get("traceId") is None or source.get("id") is None:
        raise SpanError("traceId and id are required")
    return _Converter(source).convert()
