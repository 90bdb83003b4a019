"""A view's state lives in its URL's query string, so that any view can be linked and reloaded.

Shared parameters: ``range`` (a key of ``RANGES``, or ``START-END`` in epoch ms for a fixed
window) and ``refresh`` (seconds between automatic refreshes, 0 = off). Pages add their own
(``service``, ``sort``, ``filter``, trace search fields, ``id`` of a trace...).
"""

from __future__ import annotations

import time
from urllib.parse import parse_qsl, urlencode

from dashboard.data import TimeWindow

RANGES = {"5m": 300, "15m": 900, "1h": 3600, "3h": 3 * 3600, "6h": 6 * 3600, "12h": 12 * 3600, "24h": 86400, "7d": 7 * 86400}
RANGE_LABELS = {"5m": "last 5 minutes", "15m": "last 15 minutes", "1h": "last hour", "3h": "last 3 hours",
                "6h": "last 6 hours", "12h": "last 12 hours", "24h": "last 24 hours", "7d": "last 7 days"}
DEFAULT_RANGE = "1h"
REFRESH_CHOICES = {0: "no auto-refresh", 10: "every 10 s", 30: "every 30 s", 60: "every minute", 300: "every 5 minutes"}
DEFAULT_REFRESH = 30
SHARED = ("range", "refresh")


def parse_query(search: str | None) -> dict[str, str]:
    return dict(parse_qsl((search or "").lstrip("?"), keep_blank_values=False))


def encode_query(params: dict[str, object]) -> str:
    """``?a=1&b=2`` without empty values and defaults, shared parameters first; "" when nothing is left."""
    clean = {k: str(v) for k, v in params.items() if v not in (None, "", [])}
    if clean.get("range") == DEFAULT_RANGE:
        del clean["range"]
    if clean.get("refresh") == str(DEFAULT_REFRESH):
        del clean["refresh"]
    ordered = {k: clean[k] for k in SHARED if k in clean} | {k: v for k, v in clean.items() if k not in SHARED}
    return "?" + urlencode(ordered) if ordered else ""


def range_key(params: dict[str, str]) -> str:
    value = params.get("range", DEFAULT_RANGE)
    return value if value in RANGES or _fixed_window(value) else DEFAULT_RANGE


def refresh_seconds(params: dict[str, str]) -> int:
    try:
        value = int(params.get("refresh", DEFAULT_REFRESH))
    except ValueError:
        return DEFAULT_REFRESH
    return value if value in REFRESH_CHOICES else DEFAULT_REFRESH


def window(params: dict[str, str], now_ms: int | None = None) -> TimeWindow:
    key = range_key(params)
    fixed = _fixed_window(key)
    if fixed:
        return fixed
    return TimeWindow.last(RANGES[key], now_ms if now_ms is not None else int(time.time() * 1000))


def _fixed_window(value: str) -> TimeWindow | None:
    start, sep, end = value.partition("-")
    if sep and start.isdigit() and end.isdigit() and int(start) < int(end):
        return TimeWindow(int(start), int(end))
    return None
