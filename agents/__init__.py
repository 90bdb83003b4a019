"""The sidecar agent: a transparent asyncio TCP proxy beside one service instance.

Owns the proxy, the HTTP/1.1 and MySQL wire decoders, trace-context propagation, per-endpoint and
per-statement metrics, process resource sampling, health probes and publishing to Kafka with an
on-disk spool. May import only `meshscope` (settings, wire model, sketch); never collector,
storage, analysis or dashboard.

Modules: ``cli`` (``meshscope agent``) and ``config`` (flags/YAML -> settings and listeners);
``runtime`` (the running agent); ``proxy`` (listeners, forwarding, backpressure, observer registry);
``observer`` (the seam between proxy and decoders); ``http_parser`` (pure HTTP/1.1 exchange tracker
around httptools) and ``http_observer`` (its glue to telemetry, trace-context injection);
``tracecontext`` (B3/W3C headers); ``routes`` (endpoint normalization); ``tcp`` (pass-through);
``telemetry`` (the in-memory ``Recorder``); ``exporter`` (the export thread, Kafka publisher) and
``spool`` (on-disk spool); ``resources`` (CPU/memory) and ``health`` (probes); ``mysql/`` (MySQL).
"""
