"""Walk the KPI tree under a metric and explain each metric's change between two snapshots.

Children are ranked so that the ones that can explain the parent come first: those that moved in
the same direction as the parent, then by the size of their relative change. Within a metric,
every segment field is split with the decomposition that fits the metric (attribution.py).
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass, field
from typing import Literal

from processor.analysis.explain.attribution import (
    Contribution,
    RatioDecomposition,
    additive_contributions,
    plain_changes,
    rank_contributions,
    ratio_decomposition,
)
from processor.analysis.source import Snapshot
from processor.definitions.formula import Formula, parse_formula
from processor.definitions.model import Catalog, Metric
from processor.engine.segments import MetricValue, Value

BreakdownKind = Literal["additive", "ratio", "changes"]
# Decomposition totals are floats over the segments; the engine's totals are exact. They must
# agree to this relative tolerance for the decomposition to be shown as the metric's own.
_AGREEMENT = 1e-6


@dataclass(frozen=True)
class FieldBreakdown:
    field: str
    kind: BreakdownKind
    contributions: list[Contribution]
    ratio: RatioDecomposition | None = None


@dataclass
class MetricChange:
    name: str
    title: str
    tier: str
    kind: BreakdownKind
    before: float | None
    after: float | None
    fields: list[FieldBreakdown] = field(default_factory=list)
    children: list[MetricChange] = field(default_factory=list)

    @property
    def change(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return self.after - self.before

    @property
    def relative(self) -> float | None:
        change = self.change
        if change is None or not self.before:
            return None
        assert self.before is not None
        return change / abs(self.before)

    def top_segment(self) -> tuple[str, Contribution] | None:
        """The segment value whose change, beyond its size, is the largest either way.

        Beyond its size: a field with a single value (everything `unknown`) holds the whole
        change without saying anything about where it happened.
        """
        best: tuple[float, str, Contribution] | None = None
        for breakdown in self.fields:
            if breakdown.kind == "changes":
                continue
            for row in breakdown.contributions:
                score = abs(row.unexpected)
                if score > 0 and (best is None or score > best[0]):
                    best = (score, breakdown.field, row)
        return None if best is None else (best[1], best[2])


def _number(value: Value) -> float | None:
    return None if value is None else float(value)


def _kind(metric: Metric) -> BreakdownKind:
    if metric.kind == "formula":
        assert metric.formula is not None
        tree = parse_formula(metric.formula).tree
        is_ratio = isinstance(tree, ast.BinOp) and isinstance(tree.op, ast.Div)
        return "ratio" if is_ratio else "changes"
    if metric.kind == "aggregate" and metric.aggregate is not None:
        # A distinct count does not add up over segments: one user may be in two of them.
        return "changes" if metric.aggregate.kind == "distinct" else "additive"
    return "additive"


def _floats(values: dict[str, Value]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if v is not None}


def _split(formula: Formula) -> tuple[Formula, Formula]:
    tree = formula.tree
    assert isinstance(tree, ast.BinOp)
    return (
        Formula(ast.unparse(tree.left), tree.left),
        Formula(ast.unparse(tree.right), tree.right),
    )


def _per_label(part: Formula, operands: dict[str, dict[str, Value]]) -> dict[str, float]:
    labels = set().union(*(values.keys() for values in operands.values()))
    result = {}
    for name in labels:
        value = part.evaluate({op: values.get(name, 0) for op, values in operands.items()})
        result[name] = 0.0 if value is None else float(value)
    return result


def _ratio_field(
    metric: Metric, name: str, before: Snapshot, after: Snapshot, own: MetricChange
) -> RatioDecomposition | None:
    assert metric.formula is not None
    numerator, denominator = _split(parse_formula(metric.formula))
    parts = []
    for snapshot in (before, after):
        operands = {}
        for op in parse_formula(metric.formula).operands:
            value = snapshot.get(op)
            if value is None or name not in value.segments:
                return None
            operands[op] = value.segments[name]
        parts.append((_per_label(numerator, operands), _per_label(denominator, operands)))
    (num1, den1), (num2, den2) = parts
    result = ratio_decomposition(num1, den1, num2, den2)
    if result is None or own.before is None or own.after is None:
        return None
    # Non-linear formulas (a * b / c) have per-segment parts that do not add up to the totals.
    if not (
        math.isclose(result.before, own.before, rel_tol=_AGREEMENT, abs_tol=1e-12)
        and math.isclose(result.after, own.after, rel_tol=_AGREEMENT, abs_tol=1e-12)
    ):
        return None
    return result


def _ratio_rows(result: RatioDecomposition) -> list[Contribution]:
    rows = []
    for segment in result.segments:
        rows.append(
            Contribution(
                label=segment.label,
                before=segment.rate_before,
                after=segment.rate_after,
                change=segment.total,
                relative=None,
                share_of_change=None if result.change == 0 else segment.total / result.change,
                share_of_base=segment.weight_before,
                unexpected=segment.total - segment.weight_before * result.change,
            )
        )
    return rank_contributions(rows)


def _fields(
    metric: Metric, kind: BreakdownKind, before: Snapshot, after: Snapshot, own: MetricChange
) -> list[FieldBreakdown]:
    one, two = before.get(metric.name), after.get(metric.name)
    found = {*(one.segments if one else {}), *(two.segments if two else {})}
    # In the order the definition declares them, whatever order the source listed them in.
    names = [s for s in metric.segments if s in found] + sorted(found - set(metric.segments))
    result = []
    for name in names:
        values1 = one.segments.get(name, {}) if one else {}
        values2 = two.segments.get(name, {}) if two else {}
        if kind == "additive":
            rows = additive_contributions(_floats(values1), _floats(values2))
            result.append(FieldBreakdown(name, "additive", rows))
            continue
        ratio = _ratio_field(metric, name, before, after, own) if kind == "ratio" else None
        if ratio is not None:
            result.append(FieldBreakdown(name, "ratio", _ratio_rows(ratio), ratio))
        else:
            rows = plain_changes(_floats(values1), _floats(values2))
            result.append(FieldBreakdown(name, "changes", rows))
    return result


def _direction_rank(child: MetricChange, parent_change: float | None) -> tuple[int, float, str]:
    relative = child.relative
    if relative is None:
        return (2, 0.0, child.name)
    agrees = parent_change is None or parent_change == 0 or (relative * parent_change) > 0
    return (0 if agrees else 1, -abs(relative), child.name)


def explain_change(
    catalog: Catalog,
    name: str,
    before: Snapshot,
    after: Snapshot,
    depth: int | None = None,
) -> MetricChange:
    """The change of `name` and of every metric below it (to `depth` levels), ranked."""
    metric = catalog[name]
    kind = _kind(metric)
    empty = MetricValue(None)
    node = MetricChange(
        name=name,
        title=metric.title or name,
        tier=metric.tier,
        kind=kind,
        before=_number(before.get(name, empty).value),
        after=_number(after.get(name, empty).value),
    )
    node.fields = _fields(metric, kind, before, after, node)
    if depth is None or depth > 0:
        below = None if depth is None else depth - 1
        children = [
            explain_change(catalog, c.name, before, after, below) for c in catalog.children(name)
        ]
        node.children = sorted(children, key=lambda c: _direction_rank(c, node.change))
    return node
