"""Self-metrics: counters and gauges rendered as Prometheus text at ``/metrics``."""

from __future__ import annotations

import threading

_HELP = {
    "meshscope_spans_received_total": ("counter", "Spans accepted by the ingestion endpoints (answered 202)."),
    "meshscope_spans_rejected_total": ("counter", "Spans rejected at ingestion (invalid ids, kinds, endpoints)."),
    "meshscope_requests_rejected_total": ("counter", "Ingestion requests answered 4xx or 503."),
    "meshscope_spans_spooled_total": ("counter", "Spans accepted while Kafka was unreachable (held in the spool)."),
    "meshscope_spool_bytes": ("gauge", "Bytes in the collector's spool (sent or not, until the writers commit them)."),
    "meshscope_messages_published_total": ("counter", "Span messages acknowledged by Kafka."),
    "meshscope_publish_errors_total": ("counter", "Failed attempts to publish to Kafka."),
    "meshscope_publish_rewinds_total": ("counter", "Times the broker lost its log and the spool was sent again."),
    "meshscope_spans_written_total": ("counter", "Spans inserted into ClickHouse by the writer."),
    "meshscope_latency_records_written_total": ("counter", "Latency records inserted by the writer."),
    "meshscope_resource_samples_written_total": ("counter", "Resource samples inserted by the writer."),
    "meshscope_messages_parked_total": ("counter", "Messages the writer could not decode, parked in dead_letters."),
    "meshscope_span_messages_taken_back_total": ("counter", "Span messages the writer did not decode: their spans came back from this process's own publisher."),
    "meshscope_writer_batches_total": ("counter", "Batches the writer inserted and committed."),
    "meshscope_writer_errors_total": ("counter", "Writer failures (insert or commit), retried."),
    "meshscope_writer_partitions": ("gauge", "Partitions assigned to this process's writer (0 until it has joined its consumer group)."),
    "meshscope_consumer_lag": ("gauge", "Messages behind the fetch high-water mark, summed over assigned partitions."),
}


class Metrics:
    """Thread-safe named values; ``render()`` gives the Prometheus text exposition format."""

    def __init__(self) -> None:
        self._values: dict[str, float] = {name: 0 for name in _HELP}
        self._lock = threading.Lock()

    def inc(self, name: str, amount: float = 1) -> None:
        with self._lock:
            self._values[name] = self._values.get(name, 0) + amount

    def set(self, name: str, value: float) -> None:
        with self._lock:
            self._values[name] = value

    def get(self, name: str) -> float:
        with self._lock:
            return self._values.get(name, 0)

    def render(self) -> str:
        with self._lock:
            values = dict(self._values)
        lines = []
        for name, value in sorted(values.items()):
            kind, text = _HELP.get(name, ("gauge", name))
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", f"{name} {value:g}"]
        return "\n".join(lines) + "\n"
