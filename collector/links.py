"""Service dependency links of one trace, as Zipkin's ``DependencyLinker`` derives them.

The trace is first made a tree as Zipkin's ``SpanNode`` does: a shared (server) span hangs under
the client span of the same id; other spans under their parent id (preferring the shared server
half of that id on the same service). Then each RPC or messaging span gives one parent -> child
link: client -> remote for CLIENT/PRODUCER spans, remote (or the nearest RPC ancestor's service)
-> local for SERVER/CONSUMER spans, a client span with children being counted on its server side.
A span with the ``error`` tag (or a server whose client half has it) counts as an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class LinkSpan:
    """The fields of a span the linker reads."""

    id: str
    parent_id: str
    kind: str
    local_service: str
    remote_service: str
    error: bool
    shared: bool


@dataclass(slots=True)
class _Node:
    span: LinkSpan
    parent: _Node | None = None
    children: list[_Node] = field(default_factory=list)


def _tree(spans: Iterable[LinkSpan]) -> list[_Node]:
    nodes = [_Node(span) for span in dict.fromkeys(spans)]  # duplicates of a report count once
    by_id: dict[str, list[_Node]] = {}
    for node in nodes:
        by_id.setdefault(node.span.id, []).append(node)
    for node in nodes:
        span = node.span
        parent = None
        if span.shared:
            parent = next((n for n in by_id.get(span.id, ()) if not n.span.shared), None)
            if parent is None and span.parent_id:
                parent = _pick_parent(by_id.get(span.parent_id, ()), span)
        elif span.parent_id:
            parent = _pick_parent(by_id.get(span.parent_id, ()), span)
        if parent is not None and parent is not node and not _is_ancestor(node, parent):
            node.parent = parent
            parent.children.append(node)
    return nodes


def _pick_parent(candidates: Iterable[_Node], child: LinkSpan) -> _Node | None:
    candidates = list(candidates)
    for node in candidates:  # the server half on the child's own service
        if node.span.shared and node.span.local_service == child.local_service:
            return node
    for node in candidates:
        if node.span.shared:
            return node
    return candidates[0] if candidates else None


def _is_ancestor(node: _Node, other: _Node) -> bool:
    seen = 0
    current = other
    while current is not None and seen < 10_000:
        if current is node:
            return True
        current = current.parent
        seen += 1
    return False


def _rpc_ancestor(node: _Node) -> LinkSpan | None:
    current = node.parent
    while current is not None:
        if current.span.kind:
            return current.span
        current = current.parent
    return None


def trace_links(spans: Iterable[LinkSpan]) -> list[tuple[str, str, bool]]:
    """(parent service, child service, is_error) for every call in one trace."""
    links: list[tuple[str, str, bool]] = []
    for node in _tree(spans):
        span = node.span
        kind = span.kind
        if kind == "CLIENT" and node.children:
            continue  # the server side of a split RPC carries the link
        service, remote = span.local_service or None, span.remote_service or None
        if not kind:
            if service and remote:
                kind = "CLIENT"  # a span of unknown kind that knows both sides
            else:
                continue
        if kind in ("SERVER", "CONSUMER"):
            parent, child = remote, service
            if node.parent is None and parent is None:
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
        ancestor = _rpc_ancestor(node)
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
