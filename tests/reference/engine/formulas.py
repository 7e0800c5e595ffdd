"""`formula` metrics: totals and per-segment values computed from other metrics' results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from processor.definitions.formula import Formula, FormulaError, parse_formula
from processor.definitions.model import Metric
from tests.reference.engine.segments import AdditiveBreakdown, Breakdown, FormulaBreakdown, Value


@dataclass(slots=True)
class Evaluated:
    """A metric's value as of T with its uncapped breakdowns (capping comes last)."""

    value: Value
    breakdowns: dict[str, Breakdown] = field(default_factory=dict)


class FormulaMetric:
    def __init__(self, metric: Metric) -> None:
        assert metric.formula is not None
        try:
            self.formula: Formula = parse_formula(metric.formula)
        except FormulaError as exc:
            raise ValueError(f"metric {metric.name}: {exc}") from None
        self.name = metric.name
        self.declared_segments = tuple(metric.segments)


def evaluate_formulas(
    formulas: Mapping[str, FormulaMetric], evaluated: dict[str, Evaluated]
) -> None:
    """Add every formula's result to `evaluated`, which holds every other metric's.

    Formulas may use formulas; each is computed once. A cycle (which validation rejects) or an
    unknown operand gives no value rather than an error, so one bad metric cannot stop the others.
    """
    visiting: set[str] = set()

    def resolve(name: str) -> Evaluated | None:
        done = evaluated.get(name)
        if done is not None:
            return done
        metric = formulas.get(name)
        if metric is None or name in visiting:
            return None
        visiting.add(name)
        operands = {op: resolve(op) for op in metric.formula.operands}
        visiting.discard(name)
        result = _evaluate(metric, operands)
        evaluated[name] = result
        return result

    for name in formulas:
        resolve(name)


def _evaluate(metric: FormulaMetric, operands: Mapping[str, Evaluated | None]) -> Evaluated:
    totals = {op: (e.value if e is not None else None) for op, e in operands.items()}
    value = metric.formula.evaluate(totals)
    known = [e for e in operands.values() if e is not None]
    if len(known) < len(operands):
        return Evaluated(value)
    if metric.declared_segments:
        fields = list(metric.declared_segments)
    elif known:
        fields = [f for f in known[0].breakdowns if all(f in e.breakdowns for e in known[1:])]
    else:
        fields = []
    breakdowns: dict[str, Breakdown] = {}
    for name in fields:
        per_operand: dict[str, Breakdown] = {
            op: e.breakdowns.get(name) or AdditiveBreakdown({})
            for op, e in operands.items()
            if e is not None
        }
        breakdowns[name] = FormulaBreakdown(metric.formula, per_operand)
    return Evaluated(value, breakdowns)
