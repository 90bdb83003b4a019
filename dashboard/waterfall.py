"""A trace as a tree of spans, its critical path, and its waterfall figure.

The waterfall is one plotly figure: each span is a thick line segment on its own row, one line
trace per service. It is virtualized like a long list: the figure holds only the rows around the
view (``BUFFER_ROWS`` beyond it on each side, at most ``MAX_DRAWN_ROWS``, every k-th row when zoomed
far out), and the page redraws it when the view is panned or zoomed. A 10,000-span trace therefore
costs the browser what a few hundred rows cost (Zipkin's classic UI drew every span and froze
past a few thousand; even WebGL needs seconds for 10,000 rows in a software-rendered browser).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from dashboard.theme import CRITICAL_COLOR, ERROR_COLOR, service_color

VISIBLE_ROWS = 40
BUFFER_ROWS = 80
MAX_DRAWN_ROWS = 400
ROW_PX = 20
LABEL_CHARS = 56


@dataclass(slots=True)
class SpanNode:
    key: int  # position in the trace's span list: stable for a given trace, small in the browser
    span: dict
    start_us: int
    end_us: int
    children: list[SpanNode] = field(default_factory=list)
    depth: int = 0

    @property
    def service(self) -> str:
        return (self.span.get("localEndpoint") or {}).get("serviceName") or "unknown"

    @property
    def name(self) -> str:
        return self.span.get("name") or ""

    @property
    def duration_us(self) -> int:
        return self.end_us - self.start_us

    @property
    def error(self) -> bool:
        return "error" in (self.span.get("tags") or {})


@dataclass(slots=True)
class TraceTree:
    nodes: list[SpanNode]
    roots: list[SpanNode]
    critical: set[int]  # keys of the spans on the critical path
    start_us: int
    end_us: int

    @property
    def duration_us(self) -> int:
        return self.end_us - self.start_us

    @property
    def depth(self) -> int:
        return 1 + max((n.depth for n in self.nodes), default=-1)

    @property
    def services(self) -> list[str]:
        return sorted({n.service for n in self.nodes})


@dataclass(frozen=True, slots=True)
class WaterfallRow:
    node: SpanNode
    collapsed: bool  # has children that are hidden


def build_tree(spans: Sequence[dict]) -> TraceTree:
    """Link spans to their parents. The server half of a shared span (same id as the client span,
    ``shared: true``) hangs under its client half; spans whose parent is missing become roots."""
    nodes: list[SpanNode] = []
    for key, span in enumerate(spans):
        start = int(span.get("timestamp") or 0)
        nodes.append(SpanNode(key, span, start, start + int(span.get("duration") or 0)))
    # spans without a timestamp (partial reports) are placed at the trace's start
    known = [n.start_us for n in nodes if n.start_us]
    trace_start = min(known, default=0)
    for node in nodes:
        if not node.start_us:
            node.start_us = node.end_us = trace_start

    by_id: dict[str, SpanNode] = {}
    for node in nodes:
        if not node.span.get("shared") or node.span["id"] not in by_id:
            by_id.setdefault(node.span["id"], node)
    roots: list[SpanNode] = []
    for node in nodes:
        span = node.span
        if span.get("shared") and by_id.get(span["id"]) is not node:
            parent = by_id.get(span["id"])
        else:
            parent = by_id.get(span.get("parentId") or "")
        if parent is None or parent is node:
            roots.append(node)
        else:
            parent.children.append(node)
    roots.sort(key=lambda n: n.start_us)
    # depth-first from the roots; a span reached twice is cut off there, and spans only reachable
    # through a cycle (bad data) start a tree of their own, so every span is shown exactly once
    seen: set[int] = set()
    pending = list(roots)
    while True:
        stack = [(root, 0) for root in reversed(pending)]
        while stack:
            node, depth = stack.pop()
            seen.add(node.key)
            node.depth = depth
            node.children = sorted((c for c in node.children if c.key not in seen), key=lambda n: n.start_us)
            stack.extend((child, depth + 1) for child in reversed(node.children))
        unseen = [n for n in nodes if n.key not in seen]
        if not unseen:
            break
        pending = [min(unseen, key=lambda n: (n.start_us, n.key))]
        roots.extend(pending)
    end = max((n.end_us for n in nodes), default=trace_start)
    return TraceTree(nodes, roots, _critical_path(roots), trace_start, end)


def _critical_path(roots: Iterable[SpanNode]) -> set[int]:
    """Spans that bound the trace's duration (Jaeger's algorithm): under each critical span, the
    child that finishes last is critical, then the last to finish before that one started, and so
    on; children overlapping a critical sibling ran in its shadow and are not."""
    critical: set[int] = set()
    root = max(roots, key=lambda n: n.duration_us, default=None)
    if root is None:
        return critical
    stack = [root]
    while stack:
        node = stack.pop()
        critical.add(node.key)
        cursor: int | None = None  # start of the critical child found last
        for child in sorted(node.children, key=lambda c: c.end_us, reverse=True):
            if cursor is None or child.end_us <= cursor:
                stack.append(child)
                cursor = child.start_us
    return critical


def visible_rows(tree: TraceTree, collapsed: Iterable[int] = ()) -> list[WaterfallRow]:
    """Rows in depth-first order, skipping the descendants of collapsed spans."""
    hidden = set(collapsed)
    rows: list[WaterfallRow] = []
    stack = list(reversed(tree.roots))
    while stack:
        node = stack.pop()
        is_collapsed = node.key in hidden and bool(node.children)
        rows.append(WaterfallRow(node, is_collapsed))
        if not is_collapsed:
            stack.extend(reversed(node.children))
    return rows


def row_label(row: WaterfallRow) -> str:
    marker = "▸ " if row.collapsed else ("▾ " if row.node.children else "  ")
    text = "  " * min(row.node.depth, 20) + marker + f"{row.node.service}: {row.node.name}"
    if len(text) > LABEL_CHARS:
        text = text[:LABEL_CHARS - 1] + "…"
    # tick labels are right-aligned: padding every label to one width (monospace) aligns them left,
    # so the indentation shows the tree; non-breaking spaces, as SVG collapses ordinary ones
    return text.ljust(LABEL_CHARS).replace(" ", "\u00a0")


def drawn_window(total: int, first_row: int, rows_in_view: int) -> range:
    """The row indices drawn for a view of ``rows_in_view`` rows from ``first_row``."""
    low = max(0, first_row - BUFFER_ROWS)
    high = min(total, first_row + rows_in_view + BUFFER_ROWS)
    stride = max(1, -(-(high - low) // MAX_DRAWN_ROWS))
    return range(low, high, stride)


def waterfall_figure(tree: TraceTree, collapsed: Iterable[int] = (), selected: int | None = None,
                     first_row: int = 0, rows_in_view: int = VISIBLE_ROWS) -> dict:
    """The waterfall around rows ``first_row .. first_row + rows_in_view``: x is milliseconds since
    the trace's start, y the row (a span, depth first). Hovering anywhere on a row (``hovermode:
    y``) shows its span; clicking selects it. A plain figure dict, not plotly objects: validation
    would only cost time."""
    rows = visible_rows(tree, collapsed)
    first_row = max(0, min(first_row, max(0, len(rows) - 1)))
    rows_in_view = max(1, rows_in_view)
    drawn = drawn_window(len(rows), first_row, rows_in_view)
    start = tree.start_us
    by_service: dict[str, tuple[list, list]] = {}
    overlay: dict[str, tuple[list, list]] = {"critical": ([], []), "error": ([], []), "selected": ([], [])}
    hover_x, hover_y, hover_text, hover_key, labels = [], [], [], [], []
    minimum = tree.duration_us / 1000 * 0.002  # zero-length spans stay visible
    for y in drawn:
        row = rows[y]
        node = row.node
        x0 = round((node.start_us - start) / 1000, 3)
        x1 = round(max((node.end_us - start) / 1000, x0 + minimum), 3)
        xs, ys = by_service.setdefault(node.service, ([], []))
        xs += (x0, x1, None)
        ys += (y, y, None)
        critical = node.key in tree.critical
        for flag, on in (("critical", critical), ("error", node.error), ("selected", node.key == selected)):
            if on:
                overlay[flag][0].extend((x0, x1, None))
                overlay[flag][1].extend((y, y, None))
        hover_x.append(round((x0 + x1) / 2, 3))
        hover_y.append(y)
        hover_text.append(f"{node.service}: {node.name}<br>{node.duration_us / 1000:.3f} ms at +{x0:.3f} ms"
                          + ("<br>critical path" if critical else "") + ("<br>error" if node.error else ""))
        hover_key.append(node.key)
        labels.append(row_label(row))
    bar_width = ROW_PX * 0.6
    traces = [{"type": "scatter", "x": xs, "y": ys, "mode": "lines", "name": service, "hoverinfo": "skip",
               "line": {"color": service_color(service), "width": bar_width}}
              for service, (xs, ys) in sorted(by_service.items())]
    for flag, label, color, width in (("critical", "critical path", CRITICAL_COLOR, 3), ("error", "error", ERROR_COLOR, 3),
                                      ("selected", "selected", "#111111", bar_width + 6)):
        xs, ys = overlay[flag]
        if not xs:
            continue
        trace = {"type": "scatter", "x": xs, "y": ys, "mode": "lines", "name": label, "hoverinfo": "skip",
                 "line": {"color": color, "width": width}, "opacity": 0.35 if flag == "selected" else 1.0}
        if flag == "selected":
            traces.insert(0, trace)  # under the bar: a halo
        else:
            traces.append(trace)
    traces.append({"type": "scatter", "x": hover_x, "y": hover_y, "mode": "markers", "name": "spans", "showlegend": False,
                   "customdata": hover_key, "text": hover_text, "hovertemplate": "%{text}<extra></extra>",
                   "marker": {"size": 4, "opacity": 0.01, "color": "#000000"}})
    shown = min(len(rows), VISIBLE_ROWS)
    layout = {
        "height": 90 + ROW_PX * max(shown, 3), "margin": {"l": 10, "r": 10, "t": 30, "b": 40}, "dragmode": "pan",
        "hovermode": "y", "uirevision": f"{tree.start_us}:{len(tree.nodes)}",
        "legend": {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
        "plot_bgcolor": "#ffffff", "paper_bgcolor": "#ffffff",
        "xaxis": {"title": {"text": "ms since trace start"}, "range": [0, tree.duration_us / 1000 * 1.01 or 1],
                  "gridcolor": "#eeeeee", "zeroline": False},
        "yaxis": {"range": [first_row + min(rows_in_view, len(rows)) - 0.5, first_row - 0.5], "tickmode": "array",
                  "tickvals": hover_y, "ticktext": labels, "automargin": True, "showgrid": False, "zeroline": False,
                  "tickfont": {"family": "monospace", "size": 11}},
        "meta": {"rows": len(rows), "drawn": [drawn.start, drawn.stop, drawn.step]},
    }
    return {"data": traces, "layout": layout}


def view_from_relayout(relayout: dict | None, current: dict | None) -> dict | None:
    """The rows in view ``{"first": int, "rows": int}`` after a pan or zoom, or None when the
    y axis did not move. Reset (double click) goes back to the top."""
    relayout = relayout or {}
    if relayout.get("yaxis.autorange") or relayout.get("autosize"):
        return {"first": 0, "rows": VISIBLE_ROWS}
    if "yaxis.range[0]" in relayout and "yaxis.range[1]" in relayout:
        low, high = sorted((relayout["yaxis.range[0]"], relayout["yaxis.range[1]"]))
    elif isinstance(relayout.get("yaxis.range"), list):
        low, high = sorted(relayout["yaxis.range"])
    else:
        return None
    view = {"first": max(0, int(low + 0.5)), "rows": max(1, int(high - low + 0.5))}
    return None if view == current else view


def critical_path_ms(tree: TraceTree) -> float:
    return sum(n.duration_us for n in tree.nodes if n.key in tree.critical) / 1000


def span_rows(tree: TraceTree, collapsed: Iterable[int] = ()) -> list[dict]:
    """Table rows (plain values) for the span list under the waterfall, in the waterfall's order."""
    out = []
    for row in visible_rows(tree, collapsed):
        node = row.node
        out.append({
            "key": node.key, "service": node.service, "name": node.name, "id": node.span.get("id"),
            "kind": node.span.get("kind") or "", "depth": node.depth,
            "start_ms": round((node.start_us - tree.start_us) / 1000, 3), "duration_ms": round(node.duration_us / 1000, 3),
            "children": len(node.children), "error": "error" if node.error else "",
            "critical": "yes" if node.key in tree.critical else "",
        })
    return out
