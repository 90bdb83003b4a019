"""Prometheus Alertmanager's webhook payload, version "4", so receivers built for Alertmanager
(chat bridges, incident tools) accept meshscope's notifications as they are."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's endsAt of an alert still firing


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fingerprint(labels: dict[str, str]) -> str:
    """A stable id of a label set (Alertmanager uses a 64-bit hash of the sorted labels in hex)."""
    text = json.dumps(sorted(labels.items()), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def group_key(receiver: str, group_labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(group_labels.items()))
    return f'{{}}/{{receiver="{receiver}"}}:{{{inner}}}'


def alert_entry(status: str, labels: dict, annotations: dict, starts_at: float, ends_at: float | None,
                generator_url: str) -> dict:
    return {
        "status": status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": rfc3339(starts_at),
        "endsAt": rfc3339(ends_at) if ends_at else ZERO_TIME,
        "generatorURL": generator_url,
        "fingerprint": fingerprint(labels),
    }


def _common(dicts: list[dict]) -> dict:
    if not dicts:
        return {}
    common = dict(dicts[0])
    for d in dicts[1:]:
        common = {k: v for k, v in common.items() if d.get(k) == v}
    return common


def webhook_payload(receiver: str, group_labels: dict[str, str], alerts: list[dict], external_url: str) -> dict:
    return {
        "version": "4",
        "groupKey": group_key(receiver, group_labels),
        "truncatedAlerts": 0,
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": _common([a["labels"] for a in alerts]),
        "commonAnnotations": _common([a["annotations"] for a in alerts]),
        "externalURL": external_url,
        "alerts": alerts,
    }
