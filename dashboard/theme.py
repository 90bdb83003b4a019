"""Colours, number formats and the figures shown in place of data (empty, error)."""

from __future__ import annotations

import hashlib

import plotly.graph_objects as go

OK_COLOR = "#2e7d32"
WARN_COLOR = "#ef6c00"
ERROR_COLOR = "#c62828"
CRITICAL_COLOR = "#212121"
MUTED_COLOR = "#757575"
PALETTE = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#ff7f0e", "#393b79",
           "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#31a354")
# error ratio and p99 at which a service or an edge turns orange, then red
ERROR_RATIO_WARN, ERROR_RATIO_BAD = 0.01, 0.05
SPARK_BLOCKS = "▁▂▃▄▅▆▇█"


def service_color(service: str) -> str:
    """A colour per service name, stable across pages and runs."""
    digest = hashlib.blake2b(service.encode(), digest_size=2).digest()
    return PALETTE[int.from_bytes(digest, "big") % len(PALETTE)]


def health_color(error_ratio: float | None) -> str:
    if error_ratio is None:
        return MUTED_COLOR
    if error_ratio >= ERROR_RATIO_BAD:
        return ERROR_COLOR
    if error_ratio >= ERROR_RATIO_WARN:
        return WARN_COLOR
    return OK_COLOR


def sparkline(values: list[float | None] | None, width: int = 24) -> str:
    """A text sparkline of at most ``width`` blocks (steps averaged together): light, fits a table
    cell, readable without a figure per row."""
    values = list(values or [])
    if len(values) > width:
        size = len(values) / width
        chunks = [[v for v in values[int(i * size):int((i + 1) * size)] if v is not None] for i in range(width)]
        values = [sum(c) / len(c) if c else None for c in chunks]
    points = [v for v in values if v is not None]
    if not points:
        return ""
    low, high = min(points), max(points)
    span = (high - low) or 1.0
    return "".join(" " if v is None else SPARK_BLOCKS[int((v - low) / span * (len(SPARK_BLOCKS) - 1))] for v in values)


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    if value >= 100:
        return f"{value:.0f} ms"
    return f"{value:.1f} ms" if value >= 10 else f"{value:.2f} ms"


def fmt_ratio(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.2f} %"


def fmt_rate(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}/s"


def fmt_bytes(value: float | None) -> str:
    if value is None:
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def message_figure(message: str, height: int = 260, color: str = MUTED_COLOR) -> go.Figure:
    """A figure that says why there is nothing to plot, never a blank frame."""
    figure = go.Figure()
    figure.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                          font={"size": 15, "color": color})
    figure.update_layout(height=height, xaxis={"visible": False}, yaxis={"visible": False},
                         margin={"l": 10, "r": 10, "t": 10, "b": 10}, plot_bgcolor="#fafafa", paper_bgcolor="#fafafa")
    return figure
