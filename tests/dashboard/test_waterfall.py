"""The trace tree, critical path and waterfall figure, including a 10,000-span trace."""

from __future__ import annotations

import plotly.graph_objects as go

from dashboard.waterfall import (BUFFER_ROWS, MAX_DRAWN_ROWS, VISIBLE_ROWS, build_tree, span_rows, view_from_relayout,
                                 visible_rows, waterfall_figure)
from tests.dashboard import seed


def span(id_, parent=None, start=0, duration=10, service="svc", **extra):
    out = {"traceId": "t", "id": id_, "timestamp": start, "duration": duration, "name": id_, "localEndpoint": {"serviceName": service}}
    if parent:
        out["parentId"] = parent
    return out | extra


def test_tree_depths_order_and_critical_path():
    spans = [span("c", "a", 1030, 60), span("a", None, 1000, 100), span("b", "a", 1010, 15), span("d", "c", 1040, 10),
             span("e", "b", 1012, 3)]
    tree = build_tree(spans)
    rows = visible_rows(tree)
    assert [r.node.span["id"] for r in rows] == ["a", "b", "e", "c", "d"]
    assert [r.node.depth for r in rows] == [0, 1, 2, 1, 2]
    assert tree.duration_us == 100 and tree.depth == 3
    # c ends last (1090); before c started (1030), b ended at 1025: both critical, with what they wait on
    assert {spans[k]["id"] for k in tree.critical} == {"a", "b", "c", "d", "e"}


def test_parallel_children_only_the_last_finisher_is_critical():
    spans = [span("root", None, 1000, 100), *(span(f"c{i}", "root", 1010 + i, 50) for i in range(5))]
    tree = build_tree(spans)
    assert {spans[k]["id"] for k in tree.critical} == {"root", "c4"}


def test_a_child_hidden_under_the_last_finisher_is_not_critical():
    spans = [span("root", None, 1000, 100), span("hidden", "root", 1030, 20), span("late", "root", 1020, 75)]
    tree = build_tree(spans)
    assert {spans[k]["id"] for k in tree.critical} == {"root", "late"}


def test_collapse_hides_descendants_and_marks_the_row():
    spans = [span("a", None, 1000, 100), span("b", "a", 1010, 50), span("c", "b", 1020, 10), span("d", "a", 1070, 10)]
    tree = build_tree(spans)
    rows = visible_rows(tree, collapsed=[1])
    assert [r.node.span["id"] for r in rows] == ["a", "b", "d"] and rows[1].collapsed
    assert [r["name"] for r in span_rows(tree, [0])] == ["a"]


def test_shared_server_span_orphans_and_cycles():
    spans = [span("a", None, 0, 100, kind="CLIENT"), span("a", None, 5, 90, kind="SERVER", shared=True, service="server"),
             span("x", "missing", 10, 5), span("p", "q", 20, 5), span("q", "p", 20, 5), span("n", None, 0, 0) | {"timestamp": None}]
    tree = build_tree(spans)
    assert tree.nodes[1] in tree.nodes[0].children and tree.nodes[1].depth == 1
    assert tree.nodes[2] in tree.roots
    assert len(visible_rows(tree)) == len(spans)  # every span shown once, the cycle cut


def test_figure_for_a_small_trace():
    spans = seed.trace_spans()
    tree = build_tree(spans)
    figure = waterfall_figure(tree, selected=3)
    hover = figure["data"][-1]
    assert len(hover["x"]) == len(spans) and hover["customdata"][0] == 0
    names = {t["name"] for t in figure["data"]}
    assert {"critical path", "error", "selected", "frontend"} <= names
    assert figure["layout"]["yaxis"]["range"] == [len(spans) - 0.5, -0.5]
    assert figure["layout"]["yaxis"]["ticktext"][0].replace("\u00a0", " ").rstrip() == "▾ frontend: get /orders/{id}"
    go.Figure(figure)  # a valid plotly figure


def test_ten_thousand_spans_draw_only_the_rows_around_the_view():
    spans = seed.trace_spans(seed.BIG_TRACE_ID, seed.BIG_TRACE_SPANS)
    tree = build_tree(spans)
    figure = waterfall_figure(tree)
    assert len(figure["data"]) < 12 and figure["layout"]["height"] < 1000
    assert figure["layout"]["yaxis"]["tickvals"] == list(range(VISIBLE_ROWS + BUFFER_ROWS))
    assert figure["layout"]["yaxis"]["range"] == [39.5, -0.5] and figure["layout"]["meta"]["rows"] == 10_000
    middle = waterfall_figure(tree, first_row=5000, rows_in_view=40)
    assert middle["layout"]["yaxis"]["tickvals"][0] == 5000 - BUFFER_ROWS and middle["layout"]["yaxis"]["range"] == [5039.5, 4999.5]
    zoomed_out = waterfall_figure(tree, first_row=0, rows_in_view=10_000)
    ticks = zoomed_out["layout"]["yaxis"]["tickvals"]
    assert len(ticks) <= MAX_DRAWN_ROWS and ticks[-1] > 9900  # every k-th row over the whole trace
    assert len(visible_rows(tree, [n.key for n in tree.nodes if n.depth >= 1 and n.children])) < 10_000


def test_view_follows_pan_zoom_and_reset():
    assert view_from_relayout({"yaxis.range[0]": 140.5, "yaxis.range[1]": 100.5}, None) == {"first": 101, "rows": 40}
    assert view_from_relayout({"yaxis.range": [0, 400]}, None) == {"first": 0, "rows": 400}
    assert view_from_relayout({"yaxis.autorange": True}, {"first": 9, "rows": 40}) == {"first": 0, "rows": 40}
    assert view_from_relayout({"xaxis.range[0]": 3}, None) is None
    assert view_from_relayout({"yaxis.range": [0, 40]}, {"first": 0, "rows": 40}) is None
