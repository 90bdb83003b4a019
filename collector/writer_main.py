"""`meshscope writer`: the Kafka -> ClickHouse writer alone, for scale-out (writers sharing one
consumer group share the partitions), with /metrics on ``MESHSCOPE_METRICS_PORT``.

    meshscope writer [--kafka-bootstrap HOST:PORT] [--clickhouse-url URL] [--metrics-port P]
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from collector.metrics import Metrics
from collector.writer import Writer, tune_gc
from meshscope.settings import WriterSettings, load
from meshscope.topics import ensure_topics
from storage import migrations
from storage.client import connect

logger = logging.getLogger(__name__)


def serve_metrics(metrics: Metrics, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body = metrics.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, name="writer-metrics", daemon=True).start()
    return server


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="meshscope writer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kafka-bootstrap")
    parser.add_argument("--clickhouse-url")
    parser.add_argument("--metrics-port", type=int)
    args = parser.parse_args(argv)
    settings = load(WriterSettings, **vars(args))
    client = connect(settings.clickhouse_url)
    migrations.apply(client, settings.clickhouse_database, settings.retention_days)
    ensure_topics(settings)
    metrics = Metrics()
    server = serve_metrics(metrics, settings.metrics_port) if settings.metrics_port else None
    tune_gc()
    writer = Writer(settings, client, metrics)
    signal.signal(signal.SIGTERM, lambda *_: writer.close(timeout=0))
    try:
        writer.run()
    finally:
        if server is not None:
            server.shutdown()
    return 0
