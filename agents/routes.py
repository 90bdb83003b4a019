"""Route normalization: collapse ids in paths so that endpoint cardinality stays bounded.

``/users/42/orders/7f1c...`` -> ``/users/{id}/orders/{id}``. The query string is dropped. Results
are memoised per raw path in a bounded dict (cleared when full) so the hot path is one lookup.
"""

from __future__ import annotations

import re

_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_HEXISH = re.compile(r"^[0-9a-fA-F]{16,}$")
# a long token mixing letters and digits (base64/base62 ids, hashes, session tokens)
_TOKEN = re.compile(r"^(?=.*\d)(?=.*[A-Za-z])[A-Za-z0-9_\-=.~]{20,}$")
_NUMBER = re.compile(r"^[+-]?\d+([.,]\d+)?$")
_MAX_SEGMENTS = 12
_MEMO_LIMIT = 4096
memo: dict[bytes, str] = {}  # raw target -> route; callers may look up here first


def _segment(segment: str) -> str:
    if not segment:
        return segment
    if _NUMBER.match(segment):
        return "{id}"
    if _UUID.match(segment):
        return "{uuid}"
    if _HEXISH.match(segment) or _TOKEN.match(segment):
        return "{id}"
    # ids embedded after a prefix such as "item-123" or "v2.3.1" style versions stay readable
    if len(segment) > 64:
        return "{id}"
    return segment


def normalize(target: bytes) -> str:
    """The normalized route of a request-target (origin form, absolute form or ``*``)."""
    route = memo.get(target)
    if route is not None:
        return route
    text = target.decode("latin-1")
    path = text.split("?", 1)[0].split("#", 1)[0]
    if "://" in path:  # absolute form (proxy requests): keep the path only
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    if not path.startswith("/"):
        route = path if path == "*" else "{authority}"
    else:
        segments = path.split("/")[1:]
        collapsed = [_segment(s) for s in segments[:_MAX_SEGMENTS]]
        if len(segments) > _MAX_SEGMENTS:
            collapsed.append("{rest}")
        route = "/" + "/".join(collapsed)
    if len(memo) >= _MEMO_LIMIT:
        memo.clear()
    memo[target] = route
    return route


def path_of(target: bytes) -> str:
    """The path of a request-target without its query (Zipkin's ``http.path``), truncated."""
    return target.decode("latin-1").split("?", 1)[0][:256]
