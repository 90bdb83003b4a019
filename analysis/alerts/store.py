"""Alert state and the notification outbox, in a local SQLite file (``MESHSCOPE_ALERT_STATE_PATH``).

Why SQLite and not ClickHouse: the outbox is a small, update-heavy queue (attempts, next attempt,
delivered) that must change atomically with the alert state it derives from; ClickHouse has no
transactions and rewrites whole parts on UPDATE. One SQLite transaction per evaluation writes the
new states and the notifications they cause together, so a crash either loses both (the next
evaluation redoes them) or keeps both (the delivery loop sends them): nothing is lost, nothing sent
twice by meshscope. The file survives restarts (WAL, synchronous=FULL). One scheduler owns a file:
a server replica that should not alert runs without ``MESHSCOPE_ALERT_RULES``.

Delivered notifications stay as the alert history (``/alerts/history``), pruned after HISTORY_DAYS.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

HISTORY_DAYS = 30

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    rule TEXT NOT NULL, fingerprint TEXT NOT NULL, labels TEXT NOT NULL, annotations TEXT NOT NULL,
    state TEXT NOT NULL, active_since REAL NOT NULL, fired_at REAL, last_notified REAL, value REAL,
    PRIMARY KEY (rule, fingerprint));
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, receiver TEXT NOT NULL,
    group_key TEXT NOT NULL, status TEXT NOT NULL, payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL, delivered_at REAL,
    given_up INTEGER NOT NULL DEFAULT 0, last_error TEXT);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (receiver, id) WHERE delivered_at IS NULL AND given_up = 0;
CREATE TABLE IF NOT EXISTS groups (receiver TEXT NOT NULL, group_key TEXT NOT NULL, last_notified REAL NOT NULL,
    PRIMARY KEY (receiver, group_key));
"""


@dataclass(slots=True)
class AlertRow:
    rule: str
    fingerprint: str
    labels: dict
    annotations: dict
    state: str  # pending | firing
    active_since: float
    fired_at: float | None
    last_notified: float | None
    value: float | None


@dataclass(slots=True)
class Notification:
    receiver: str
    group_key: str
    status: str
    payload: dict


@dataclass(slots=True)
class OutboxRow:
    id: int
    receiver: str
    group_key: str
    status: str
    payload: str
    attempts: int
    created_at: float


class AlertStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- alert state

    def alerts(self) -> list[AlertRow]:
        with self._lock:
            rows = self._db.execute("SELECT rule, fingerprint, labels, annotations, state, active_since, fired_at, "
                                    "last_notified, value FROM alerts ORDER BY rule, fingerprint").fetchall()
        return [AlertRow(r[0], r[1], json.loads(r[2]), json.loads(r[3]), *r[4:]) for r in rows]

    def group_notified(self) -> dict[tuple[str, str], float]:
        with self._lock:
            rows = self._db.execute("SELECT receiver, group_key, last_notified FROM groups").fetchall()
        return {(r[0], r[1]): r[2] for r in rows}

    def commit(self, upserts: list[AlertRow], deletes: list[tuple[str, str]], notifications: list[Notification],
               now: float) -> None:
        """New alert states and the notifications they cause, in one transaction."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                for a in upserts:
                    db.execute("INSERT OR REPLACE INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               (a.rule, a.fingerprint, json.dumps(a.labels, sort_keys=True), json.dumps(a.annotations, sort_keys=True),
                                a.state, a.active_since, a.fired_at, a.last_notified, a.value))
                for rule, fingerprint in deletes:
                    db.execute("DELETE FROM alerts WHERE rule = ? AND fingerprint = ?", (rule, fingerprint))
                for n in notifications:
                    db.execute("INSERT INTO outbox (created_at, receiver, group_key, status, payload, next_attempt_at) "
                               "VALUES (?, ?, ?, ?, ?, ?)", (now, n.receiver, n.group_key, n.status, json.dumps(n.payload), now))
                    db.execute("INSERT OR REPLACE INTO groups VALUES (?, ?, ?)", (n.receiver, n.group_key, now))
                db.execute("DELETE FROM outbox WHERE created_at < ? AND (delivered_at IS NOT NULL OR given_up = 1)",
                           (now - HISTORY_DAYS * 86_400,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    # ---- outbox

    def due(self, now: float) -> list[OutboxRow]:
        """Per receiver, its oldest undelivered notification if it is due: a receiver gets its
        notifications in order (a `resolved` never overtakes its `firing`)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, receiver, group_key, status, payload, attempts, created_at, next_attempt_at FROM outbox "
                "WHERE id IN (SELECT min(id) FROM outbox WHERE delivered_at IS NULL AND given_up = 0 GROUP BY receiver) "
                "ORDER BY id").fetchall()
        return [OutboxRow(*r[:7]) for r in rows if r[7] <= now]

    def delivered(self, row_id: int, now: float) -> None:
        with self._lock:
            self._db.execute("UPDATE outbox SET delivered_at = ?, attempts = attempts + 1, last_error = NULL WHERE id = ?",
                             (now, row_id))

    def failed(self, row_id: int, error: str, next_attempt_at: float | None) -> None:
        """Record a failed attempt; ``next_attempt_at`` None gives up (kept in the history)."""
        with self._lock:
            self._db.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, given_up = ? "
                             "WHERE id = ?", (error[:1000], next_attempt_at or 0, int(next_attempt_at is None), row_id))

    def history(self, limit: int = 500) -> list[dict]:
        with self._lock:
            rows = self._db.execute(
                "SELECT created_at, payload, status, receiver, attempts, delivered_at, last_error, given_up FROM outbox "
                "ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        out = []
        for created_at, payload, status, receiver, attempts, delivered_at, last_error, given_up in rows:
            body = json.loads(payload)
            rules = sorted({a["labels"].get("alertname", "") for a in body.get("alerts", [])})
            out.append({"ts": int(created_at * 1000), "rule": ",".join(rules), "status": status, "receiver": receiver,
                        "attempts": attempts, "delivered": delivered_at is not None, "given_up": bool(given_up),
                        "delivered_at": int(delivered_at * 1000) if delivered_at else None,
                        "last_error": last_error, "payload": body})
        return out

    def pending_count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND given_up = 0").fetchone()[0]
