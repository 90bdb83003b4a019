"""Span decoders, one module per wire format. Each returns a ``Decoded``: the spans in Zipkin v2
shape, normalized as Zipkin does (``collector.decoders.normalize``), and the reasons any span
was rejected. A body that cannot be parsed at all raises ``DecodeError``.

Formats: ``json_v2`` and ``proto3`` (POST /api/v2/spans), ``json_v1`` and ``thrift``
(POST /api/v1/spans, converted to v2 as Zipkin's V1SpanConverter does), ``otlp`` (POST /v1/traces,
protobuf or JSON).
"""
