"""Service dependency links of one trace, as Zipkin's ``DependencyLinker`` derives them.

The trace is first made a tree as Zipkin's ``SpanNode`` does: a shared (server) span hangs under
the client span of the same id; other spans under their parent id (preferring the shared server
half of that id on the same service). Then each RPC or messaging span gives one parent -> child
link: client -> remote for CLIENT/PRODUCER spans, remote (or the nearest RPC ancestor's service)
-> local for SERVER/CONSUMER spans, a client span with children being counted on its server side.
A span with the ``error`` tag (or a server whose client half has it) counts as an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple


class LinkSpan(NamedTuple):
    """The fields of a span the linker reads (a tuple: cheap to build from a query row)."""

    id: str
    parent_id: str
    kind: str
    local_service: str
    remote_service: str
    error: bool
    shared: bool


class TraceLinkSpans:
    """What a batch (or the store) holds of one trace: its distinct link spans and earliest ts_us."""

    __slots__ = ("earliest_us", "link_spans")

    def __init__(self, earliest_us: int, link_spans: set[LinkSpan]) -> None:
        self.earliest_us = earliest_us
        self.link_spans = link_spans


# LinkSpan(...) runs the Python-level __new__ namedtuple generates, once per span ingested; the
# tuple's own __new__ builds the same object in C
_new_tuple = tuple.__new__


def link_span(span: dict) -> LinkSpan:
    """The linker's fields of a Zipkin v2 span."""
    local = span.get("localEndpoint")
    remote = span.get("remoteEndpoint")
    tags = span.get("tags")
    return _new_tuple(LinkSpan, (
        span["id"], span.get("parentId") or "", span.get("kind") or "",
        local.get("serviceName") or "" if local else "", remote.get("serviceName") or "" if remote else "",
        bool(tags) and "error" in tags, bool(span.get("shared")),
    ))


def link_spans_by_trace(spans: Sequence[dict], received_us: Sequence[int]) -> dict[str, TraceLinkSpans]:
    """The distinct link spans of each trace among Zipkin v2 ``spans``, with the trace's earliest
    ``ts_us``: as the spans table computes it (migration 0005), a span's timestamp, else the time it
    was received (``received_us``, one per span)."""
    by_trace: dict[str, TraceLinkSpans] = {}
    for index, span in enumerate(spans):
        add_link_span(by_trace, span["traceId"], span.get("timestamp") or received_us[index], link_span(span))
    return by_trace


def add_link_span(by_trace: dict[str, TraceLinkSpans], trace_id: str, ts_us, span: LinkSpan) -> None:  # ts_us: int
    """Add ``span``, of time ``ts_us``, to what ``by_trace`` holds of its trace."""
    trace = by_trace.get(trace_id)
    if trace is None:
        by_trace[trace_id] = TraceLinkSpans(ts_us, {span})
        return
    if ts_us < trace.earliest_us:
        trace.earliest_us = ts_us
    trace.link_spans.add(span)


class _Tree(NamedTuple):
    """The trace as parallel lists (index = span): cheaper than a node object per span."""

    spans: list[LinkSpan]
    parent: list[int]  # -1 = none
    has_children: list[bool]


def _tree(spans: Iterable[LinkSpan]) -> _Tree:
    unique = list(dict.fromkeys(spans))  # duplicates of a report count once
    by_id: dict[str, list[int]] = {}
    for index, span in enumerate(unique):
        by_id.setdefault(span.id, []).append(index)
    parent_of = [-1] * len(unique)
    has_children = [False] * len(unique)
    for index, span in enumerate(unique):
        parent = -1
        if span.shared:
            parent = _unshared(by_id.get(span.id, ()), unique)
            if parent < 0 and span.parent_id:
                parent = _pick_parent(by_id.get(span.parent_id, ()), unique, span)
        elif span.parent_id:
            parent = _pick_parent(by_id.get(span.parent_id, ()), unique, span)
        if parent >= 0 and parent != index and not _is_ancestor(index, parent, parent_of):
            parent_of[index] = parent
            has_children[parent] = True
    return _Tree(unique, parent_of, has_children)


def _unshared(candidates: Sequence[int], spans: list[LinkSpan]) -> int:
    """The first of ``candidates`` that is not a shared span (the client half of an RPC), or -1."""
    for index in candidates:
        if not spans[index].shared:
            return index
    return -1


def _pick_parent(candidates: Sequence[int], spans: list[LinkSpan], child: LinkSpan) -> int:
    if len(candidates) == 1:
        return candidates[0]
    for index in candidates:  # the server half on the child's own service
        if spans[index].shared and spans[index].local_service == child.local_service:
            return index
    for index in candidates:
        if spans[index].shared:
            return index
    return candidates[0] if candidates else -1


def _is_ancestor(node, other, parent_of: list[int]):  # (int, int, list) -> bool: C types in links.pxd
    seen = 0
    current = other
    while current >= 0 and seen < 10_000:
        if current == node:
            return True
        current = parent_of[current]
        seen += 1
    return False


def _rpc_ancestor(index, tree: _Tree) -> LinkSpan | None:  # index: int (Py_ssize_t in links.pxd)
    current = tree.parent[index]
    while current >= 0:
        if tree.spans[current].kind:
            return tree.spans[current]
        current = tree.parent[current]
    return None


def trace_links(spans: Iterable[LinkSpan]) -> list[tuple[str, str, bool]]:
    """(parent service, child service, is_error) for every call in one trace."""
    links: list[tuple[str, str, bool]] = []
    tree = _tree(spans)
    for index, span in enumerate(tree.spans):
        kind = span.kind
        if kind == "CLIENT" and tree.has_children[index]:
            continue  # the server side of a split RPC carries the link
        service, remote = span.local_service or None, span.remote_service or None
        if not kind:
            if service and remote:
                kind = "CLIENT"  # a span of unknown kind that knows both sides
            else:
                continue
        if kind in ("SERVER", "CONSUMER"):
            parent, child = remote, service
            if tree.parent[index] < 0 and parent is None:
                continue  # the root-most span with no caller named
        elif kind in ("CLIENT", "PRODUCER"):
            parent, child = service, remote
        else:
            continue
        is_error = span.error
        if kind in ("PRODUCER", "CONSUMER"):
            if parent and child:
                links.append((parent, child, is_error))
            continue
        ancestor = _rpc_ancestor(index, tree)
        if ancestor is not None and ancestor.local_service:
            ancestor_service = ancestor.local_service
            # instrumentation that puts the remote service on the client side: backfill the hop
            if kind == "CLIENT" and service and ancestor_service != service:
                links.append((ancestor_service, service, False))
            if kind == "SERVER" or parent is None:
                parent = ancestor_service
            if not is_error and ancestor.kind == "CLIENT" and (span.parent_id == ancestor.id or span.id == ancestor.id):
                is_error = ancestor.error
        if parent and child:
            links.append((parent, child, is_error))
    return links


def aggregate(links: Iterable[tuple[str, str, bool]]) -> dict[tuple[str, str], list[int]]:
    """(parent, child) -> [callCount, errorCount]."""
    totals: dict[tuple[str, str], list[int]] = {}
    for parent, child, is_error in links:
        counts = totals.setdefault((parent, child), [0, 0])
        counts[0] += 1
        counts[1] += int(is_error)
    return totals
