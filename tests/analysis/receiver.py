"""A real HTTP webhook receiver on a free loopback port, for the alert tests: records every POST
(headers, JSON body), answers 200, or 503 while ``failing``, and can be stopped and restarted on the
same port (connection refused in between)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class WebhookReceiver:
    def __init__(self, port: int = 0) -> None:
        self.received: list[dict] = []
        self.attempts = 0
        self.failing = False
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/hook"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.attempts += 1
                    failing = receiver.failing
                    if not failing:
                        receiver.received.append({"headers": dict(self.headers), "raw": body, "body": json.loads(body)})
                self.send_response(503 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def statuses(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(r["body"]["status"], r["body"]["alerts"][0]["labels"]["alertname"]) for r in self.received]
