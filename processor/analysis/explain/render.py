"""`nsm explain` output: a readable tree for people, JSON for scripts."""

from __future__ import annotations

from typing import Any

from processor.analysis.explain.attribution import Contribution, extremes
from processor.analysis.explain.tree import FieldBreakdown, MetricChange


def number(value: float | None) -> str:
    if value is None:
        return "no value"
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"


def signed(value: float | None) -> str:
    if value is None:
        return "n/a"
    text = number(abs(value))
    return f"+{text}" if value > 0 else (f"−{text}" if value < 0 else "0")


def percent(value: float | None, sign: bool = True) -> str:
    if value is None:
        return "n/a"
    text = f"{abs(value) * 100:.1f}%"
    if not sign:
        return f"{value * 100 + 0.0:.0f}%"  # + 0.0: never print -0%
    return f"+{text}" if value > 0 else (f"−{text}" if value < 0 else "0%")


def _segment_text(breakdown: FieldBreakdown, row: Contribution) -> str:
    if breakdown.kind == "additive":
        return f"{row.label} {signed(row.change)} ({percent(row.relative)}; {_share_phrase(row)})"
    if breakdown.kind == "ratio" and breakdown.ratio is not None:
        part = next(s for s in breakdown.ratio.segments if s.label == row.label)
        return (
            f"{row.label} {signed(row.change)} (rate {signed(part.rate_effect)}, "
            f"mix {signed(part.mix_effect)}, both {signed(part.interaction)})"
        )
    return f"{row.label} {number(row.before)} → {number(row.after)} ({percent(row.relative)})"


def _node_lines(node: MetricChange, top: int) -> list[str]:
    kind = {"additive": "", "ratio": ", ratio", "changes": ""}[node.kind]
    lines = [
        f"{node.name} — {node.title}  [{node.tier.replace('_', ' ')}{kind}]",
        f"  {number(node.before)} → {number(node.after)}   {signed(node.change)} "
        f"({percent(node.relative)})",
    ]
    for breakdown in node.fields:
        if breakdown.ratio is not None and breakdown is node.fields[0]:
            r = breakdown.ratio
            lines.append(
                f"  rate effect {signed(r.rate_effect)} · mix effect {signed(r.mix_effect)} · "
                f"interaction {signed(r.interaction)} · without denominator {signed(r.unmatched)}"
                f"  (split by {breakdown.field})"
            )
        rows = shown_rows(breakdown.contributions, top)
        shown = [_segment_text(breakdown, row) for row in rows]
        if shown:
            lines.append(f"  by {breakdown.field}: " + " · ".join(shown))
    return lines


def shown_rows(rows: list[Contribution], top: int) -> list[Contribution]:
    """The `top` largest contributions, and always the largest decliner and the largest riser."""
    shown = rows[:top]
    for extreme in extremes(rows):
        if extreme is not None and extreme not in shown:
            shown.append(extreme)
    return shown


def _tree_lines(node: MetricChange, top: int, prefix: str = "") -> list[str]:
    lines = []
    for index, child in enumerate(node.children):
        last = index == len(node.children) - 1
        own = _node_lines(child, top)
        lines.append(prefix + ("└── " if last else "├── ") + own[0])
        deeper = prefix + ("    " if last else "│   ")
        lines.extend(deeper + line for line in own[1:])
        lines.extend(_tree_lines(child, top, deeper))
    return lines


def summary_lines(node: MetricChange) -> list[str]:
    """The answer first: the segment and the diagnostic that moved the most."""
    lines = []
    found = node.top_segment()
    if found is not None:
        field, row = found
        lines.append(f"Segment that moved it most: {field}={row.label} ({_share_phrase(row)})")
    if node.children:
        child = node.children[0]
        text = f"Diagnostic that moved it most: {child.name} ({percent(child.relative)})"
        child_segment = child.top_segment()
        if child_segment is not None:
            text += f", mostly {child_segment[0]}={child_segment[1].label}"
        lines.append(text)
    return lines


def _share_phrase(row: Contribution) -> str:
    return (
        f"{percent(row.share_of_change, sign=False)} of the change, "
        f"{percent(row.share_of_base, sign=False)} of the base"
    )


def to_text(node: MetricChange, from_text: str, to_text_: str, top: int = 3) -> str:
    head = _node_lines(node, top)
    lines = [head[0], f"  from {from_text} to {to_text_}", *head[1:]]
    lines.extend(_tree_lines(node, top))
    summary = summary_lines(node)
    if summary:
        lines = [*summary, "", *lines]
    return "\n".join(lines)


def _contribution_json(row: Contribution) -> dict[str, Any]:
    return {
        "value": row.label,
        "before": row.before,
        "after": row.after,
        "change": row.change,
        "relative_change": row.relative,
        "share_of_change": row.share_of_change,
        "share_of_base": row.share_of_base,
        "excess_share": row.excess,
    }


def _field_json(breakdown: FieldBreakdown) -> dict[str, Any]:
    decliner, riser = extremes(breakdown.contributions)
    result: dict[str, Any] = {
        "segment": breakdown.field,
        "decomposition": breakdown.kind,
        "largest_decliner": None if decliner is None else decliner.label,
        "largest_riser": None if riser is None else riser.label,
    }
    if breakdown.ratio is None:
        result["values"] = [_contribution_json(row) for row in breakdown.contributions]
        return result
    r = breakdown.ratio
    result.update(
        rate_effect=r.rate_effect,
        mix_effect=r.mix_effect,
        interaction=r.interaction,
        without_denominator=r.unmatched,
    )
    order = {row.label: i for i, row in enumerate(breakdown.contributions)}
    result["values"] = [
        {
            "value": s.label,
            "rate_before": s.rate_before,
            "rate_after": s.rate_after,
            "weight_before": s.weight_before,
            "weight_after": s.weight_after,
            "rate_effect": s.rate_effect,
            "mix_effect": s.mix_effect,
            "interaction": s.interaction,
            "without_denominator": s.unmatched,
            "change": s.total,
        }
        for s in sorted(r.segments, key=lambda s: order[s.label])
    ]
    return result


def to_json(node: MetricChange) -> dict[str, Any]:
    found = node.top_segment()
    return {
        "metric": node.name,
        "title": node.title,
        "tier": node.tier,
        "before": node.before,
        "after": node.after,
        "change": node.change,
        "relative_change": node.relative,
        "top_segment": None if found is None else {"segment": found[0], "value": found[1].label},
        "segments": [_field_json(b) for b in node.fields],
        "children": [to_json(child) for child in node.children],
    }
