"""Webhook delivery of outbox notifications: one POST per notification, a per-receiver timeout,
retries with exponential backoff and full jitter until ``max_retry_for``, and an optional
HMAC-SHA256 signature.

Signature (when the receiver has a secret): ``X-Meshscope-Timestamp: <unix seconds>`` and
``X-Meshscope-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``; a receiver
recomputes it over the raw body and rejects stale timestamps (replay). Every notification carries
``X-Meshscope-Notification-Id``: the same id on every retry, so a receiver that saw a request whose
answer got lost can drop the repeat.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
import time

import httpx

from analysis.alerts.rules import Receiver
from analysis.alerts.store import AlertStore, OutboxRow

logger = logging.getLogger(__name__)

BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 300.0


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def backoff_s(attempts: int, rng: random.Random, base: float = BACKOFF_BASE_S, cap: float = BACKOFF_CAP_S) -> float:
    """Delay before attempt ``attempts + 1``: full jitter over an exponential ceiling (receivers
    recovering from an outage are not hit by every sender at once)."""
    ceiling = min(cap, base * 2 ** max(attempts - 1, 0))
    return ceiling / 2 + rng.random() * ceiling / 2


class WebhookSender:
    def __init__(self, store: AlertStore, receivers: dict[str, Receiver], *, backoff_base_s: float = BACKOFF_BASE_S,
                 backoff_cap_s: float = BACKOFF_CAP_S, clock=time.time, rng: random.Random | None = None) -> None:
        self.store = store
        self.receivers = receivers
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.clock = clock
        self.rng = rng or random.Random()
        self._client = httpx.Client(follow_redirects=False)

    def close(self) -> None:
        self._client.close()

    def deliver_due(self) -> int:
        """Try each receiver's oldest due notification, repeatedly while they succeed; returns the
        number delivered."""
        delivered = 0
        while True:
            rows = self.store.due(self.clock())
            progress = False
            for row in rows:
                if self._send(row):
                    delivered += 1
                    progress = True
            if not progress:
                return delivered

    def _send(self, row: OutboxRow) -> bool:
        receiver = self.receivers.get(row.receiver)
        now = self.clock()
        if receiver is None:
            self.store.failed(row.id, f"receiver {row.receiver!r} no longer configured", None)
            return False
        body = row.payload.encode()
        headers = {"Content-Type": "application/json", "User-Agent": "meshscope-alerts",
                   "X-Meshscope-Notification-Id": str(row.id)}
        if receiver.secret:
            timestamp = str(int(now))
            headers["X-Meshscope-Timestamp"] = timestamp
            headers["X-Meshscope-Signature"] = signature(receiver.secret, timestamp, body)
        try:
            response = self._client.post(receiver.url, content=body, headers=headers, timeout=receiver.timeout_s)
            if 200 <= response.status_code < 300:
                self.store.delivered(row.id, self.clock())
                logger.info("delivered %s notification %d to %s", row.status, row.id, row.receiver)
                return True
            error = f"HTTP {response.status_code}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        attempts = row.attempts + 1
        if now - row.created_at >= receiver.max_retry_for_s:
            logger.error("giving up on notification %d to %s after %d attempts: %s", row.id, row.receiver, attempts, error)
            self.store.failed(row.id, error, None)
        else:
            delay = backoff_s(attempts, self.rng, self.backoff_base_s, self.backoff_cap_s)
            logger.warning("notification %d to %s failed (attempt %d, retry in %.1fs): %s", row.id, row.receiver, attempts, delay, error)
            self.store.failed(row.id, error, now + delay)
        return False
