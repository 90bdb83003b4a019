"""The sidecar agent: a transparent asyncio TCP proxy beside one service instance.

Owns the proxy, the HTTP/1.1 and MySQL wire decoders, trace-context propagation, per-endpoint and
per-statement metrics, process resource sampling, health probes and publishing to Kafka with an
on-disk spool. May import only `meshscope` (settings, wire model, sketch); never collector,
storage, analysis or dashboard.
"""
