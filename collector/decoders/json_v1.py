"""Zipkin JSON v1 (POST /api/v1/spans, zipkin-api.yaml): a list of v1 spans, converted to v2."""

from __future__ import annotations

from collector.decoders.json_v2 import json_list
from collector.decoders.normalize import Decoded
from collector.decoders.v1 import v1_to_v2
from collector.errors import SpanError


def decode_v1_spans(spans: list) -> Decoded:
    decoded = Decoded()
    for index, raw in enumerate(spans):
        try:
            converted = v1_to_v2(raw)
        except (SpanError, TypeError, KeyError, ValueError) as exc:
            decoded.rejected.append(f"span {index}: {exc}")
            continue
        for span in converted:
            decoded.add(span, index)
    return decoded


def decode(body: bytes) -> Decoded:
    return decode_v1_spans(json_list(body))
