"""Small inline SVG charts: no library, no script, nothing fetched when the page is opened.

Every chart carries its data as attributes (`data-chart` on the chart, `data-series` and
`data-values` on each line, `data-row`, `data-estimate`, `data-low`, `data-high` on each interval)
so that a test, or a curious reader, can check what is drawn against what was computed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777")
INK, GRID, MUTED = "#1f2937", "#e5e7eb", "#6b7280"


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    color: str
    dashed: bool = False


def _fit(text: str, chars: int) -> str:
    """Cut a label that would run out of its space; the full text stays in the `<title>`."""
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _fmt(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if value == int(value):
        return str(int(value))
    return f"{value:.3g}"


def _attr_values(values: Sequence[float | None]) -> str:
    return ",".join("" if v is None else repr(float(v)) for v in values)


TICKS = 4  # intervals on the y axis


def nice_step(value: float, integer: bool = False) -> float:
    """The smallest round step (1, 2, 2.5 or 5 times a power of ten) such that TICKS steps
    reach `value`; a whole number for counts, which have no fractions to show."""
    if value <= 0:
        return 1.0
    raw = value / TICKS
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        step = factor * magnitude
        if integer and (step < 1 or step != int(step)):
            continue
        if step >= raw:
            return step
    return 10 * magnitude


def line_chart(
    chart_id: str,
    title: str,
    series: Sequence[Series],
    x_labels: Sequence[str],
    *,
    width: int = 440,
    height: int = 220,
    percent: bool = False,
) -> str:
    """Lines over a shared x axis; gaps where a value is None. The y axis starts at 0; counts
    (every value whole) get whole-number ticks."""
    left, right, top, bottom = 52, 16, 30, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    found = [v for s in series for v in s.values if v is not None]
    integer = all(float(v).is_integer() for v in found)
    y_max = 1.0 if percent else TICKS * nice_step(max(found, default=1.0), integer)
    count = max((len(s.values) for s in series), default=1)

    def x(i: int) -> float:
        return left + (plot_w * i / (count - 1) if count > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h - plot_h * (v / y_max if y_max else 0)

    parts = [
        f'<svg class="chart" data-chart="{escape(chart_id)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg">',
        f'<text x="8" y="18" font-size="13" font-weight="600" fill="{INK}">'
        f"<title>{escape(title)}</title>{escape(_fit(title, (width - 16) * 2 // 15))}</text>",
    ]
    for k in range(TICKS + 1):
        value = y_max * k / TICKS
        label = f"{value * 100:.0f}%" if percent else _fmt(value)
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(value):.1f}" '
            f'y2="{y(value):.1f}" stroke="{GRID}"/>'
        )
        parts.append(
            f'<text x="{left - 6}" y="{y(value) + 4:.1f}" font-size="10" '
            f'text-anchor="end" fill="{MUTED}">{label}</text>'
        )
    shown = sorted({0, count // 2, count - 1}) if count > 2 else list(range(count))
    for i in shown:
        if i < len(x_labels):
            # The first and last labels grow inwards, so that they stay inside the chart.
            anchor = "start" if i == 0 and count > 1 else "end" if i == count - 1 else "middle"
            parts.append(
                f'<text x="{x(i):.1f}" y="{height - bottom + 16}" font-size="10" '
                f'text-anchor="{anchor}" fill="{MUTED}">{escape(x_labels[i])}</text>'
            )
    for s in series:
        segments: list[list[str]] = [[]]
        for i, v in enumerate(s.values):
            if v is None:
                segments.append([])
            else:
                segments[-1].append(f"{x(i):.1f},{y(v):.1f}")
        dash = ' stroke-dasharray="5 4"' if s.dashed else ""
        points = " ".join(p for seg in segments for p in seg)
        parts.append(
            f'<polyline data-series="{escape(s.name)}" data-values="{_attr_values(s.values)}" '
            f'points="{points}" fill="none" stroke="{s.color}" stroke-width="2.5"{dash} '
            f'stroke-linejoin="round"/>'
        )
        for i, v in enumerate(s.values):
            if v is not None:
                parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{s.color}"/>')
    legend_x = left
    for s in series:
        parts.append(
            f'<rect x="{legend_x}" y="{height - 14}" width="12" height="4" fill="{s.color}"/>'
        )
        parts.append(
            f'<text x="{legend_x + 16}" y="{height - 9}" font-size="10" fill="{INK}">'
            f"{escape(s.name)}</text>"
        )
        legend_x += 24 + 6 * len(s.name)
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class Interval:
    name: str
    estimate: float | None
    low: float | None
    high: float | None
    color: str


def interval_chart(
    chart_id: str, title: str, rows: Sequence[Interval], *, width: int = 640, unit: str = "pt"
) -> str:
    """Effect sizes with their confidence intervals, one row each, around a line at 0.

    Values are differences of shares, drawn in percentage points from -100 to +100 at most.
    """
    label_w, right, top, row_h = 250, 30, 34, 30
    height = top + row_h * max(1, len(rows)) + 30
    spans = [abs(v) for r in rows for v in (r.estimate, r.low, r.high) if v is not None]
    # Round the half-width up to a quarter, so that the ticks fall on round numbers.
    reach = min(1.0, math.ceil(max(spans, default=0.2) * 1.1 / 0.25) * 0.25)
    plot_w = width - label_w - right

    def x(v: float) -> float:
        return label_w + plot_w * (v + reach) / (2 * reach)

    parts = [
        f'<svg class="chart" data-chart="{escape(chart_id)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg">',
        f'<text x="8" y="18" font-size="13" font-weight="600" fill="{INK}">{escape(title)}</text>',
    ]
    for tick in (-reach, -reach / 2, 0.0, reach / 2, reach):
        parts.append(
            f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top - 6}" '
            f'y2="{height - 24}" stroke="{INK if tick == 0 else GRID}"/>'
        )
        parts.append(
            f'<text x="{x(tick):.1f}" y="{height - 10}" font-size="10" '
            f'text-anchor="middle" fill="{MUTED}">{tick * 100:+.0f} {unit}</text>'
        )
    for k, row in enumerate(rows):
        cy = top + row_h * k + row_h / 2
        attrs = (
            f'data-row="{escape(row.name)}" data-estimate="{_opt(row.estimate)}" '
            f'data-low="{_opt(row.low)}" data-high="{_opt(row.high)}"'
        )
        parts.append(f"<g {attrs}>")
        parts.append(
            f'<text x="{label_w - 8}" y="{cy + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="{INK}"><title>{escape(row.name)}</title>{escape(_fit(row.name, 38))}</text>'
        )
        if row.estimate is None:
            parts.append(
                f'<text x="{x(0) + 6:.1f}" y="{cy + 4:.1f}" font-size="10" '
                f'fill="{MUTED}">not measurable</text></g>'
            )
            continue
        if row.low is not None and row.high is not None:
            parts.append(
                f'<line x1="{x(row.low):.1f}" x2="{x(row.high):.1f}" y1="{cy:.1f}" '
                f'y2="{cy:.1f}" stroke="{row.color}" stroke-width="6" '
                f'stroke-linecap="round" opacity="0.35"/>'
            )
        parts.append(f'<circle cx="{x(row.estimate):.1f}" cy="{cy:.1f}" r="6" fill="{row.color}"/>')
        parts.append(
            f'<text x="{x(row.estimate):.1f}" y="{cy - 9:.1f}" font-size="10" '
            f'text-anchor="middle" fill="{INK}">{row.estimate * 100:+.0f}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _opt(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def score_bar(score: float, color: str) -> str:
    """A horizontal bar for a score from 0 to 1, for table cells."""
    width = max(0.0, min(1.0, score)) * 100
    return (
        f'<svg class="bar" viewBox="0 0 100 10" width="100" height="10" '
        f'xmlns="http://www.w3.org/2000/svg"><rect width="100" height="10" fill="{GRID}"/>'
        f'<rect width="{width:.1f}" height="10" fill="{color}"/></svg>'
    )
