"""Zipkin JSON v2: a list of spans (zipkin2-api.yaml ListOfSpans); a lone span object is accepted too."""

from __future__ import annotations

import orjson

from collector.decoders.normalize import Decoded
from collector.errors import DecodeError


def parse_json(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"malformed JSON: {exc}") from exc


def json_list(body: bytes) -> list:
    document = parse_json(body)
    if isinstance(document, dict):
        return [document]
    if not isinstance(document, list):
        raise DecodeError(f"expected a JSON list of spans, got {type(document).__name__}")
    return document


def decode(body: bytes) -> Decoded:
    decoded = Decoded()
    for index, raw in enumerate(json_list(body)):
        decoded.add(raw, index)
    return decoded
