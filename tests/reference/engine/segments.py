"""Breakdowns by segment and the cap that folds the smallest values into `other`.

A `Breakdown` holds one segment field's uncapped values and can compute the value of any set of
labels taken together, which is what `other` is (docs/semantics.md, The segment cap): a sum for
counts, sums and entities, the size of the union for a distinct aggregate, and for a formula the
formula over each operand's folded value. Formulas also need the uncapped values of their operands,
which is why capping happens only when a metric's value is output.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from processor.definitions.formula import Formula
from processor.engine.values import MetricValue, Value
from tests.reference.engine.state import EXACT

__all__ = ["MetricValue", "Value"]

OTHER = "other"


class Breakdown(Protocol):
    def labels(self) -> Collection[str]: ...

    def value(self, label: str) -> Value:
        """The label's value; the zero of the metric when the label is not listed."""

    def fold(self, labels: Collection[str]) -> Value:
        """The value of these labels taken together."""


@dataclass(slots=True)
class AdditiveBreakdown:
    """Counts, sums and entity counts: `other` is the sum of the folded values."""

    values: dict[str, int | Decimal]
    zero: int | Decimal = 0

    def labels(self) -> Collection[str]:
        return self.values.keys()

    def value(self, label: str) -> Value:
        return self.values.get(label, self.zero)

    def fold(self, labels: Collection[str]) -> Value:
        total = self.zero
        for name in labels:
            amount = self.values.get(name)
            if amount is not None:
                total = EXACT.add(total, amount) if isinstance(total, Decimal) else total + amount
        return total


@dataclass(slots=True)
class DistinctBreakdown:
    """A distinct aggregate: `other` counts the distinct labels of the union."""

    sets: dict[str, set[str]]

    def labels(self) -> Collection[str]:
        return self.sets.keys()

    def value(self, label: str) -> Value:
        found = self.sets.get(label)
        return 0 if found is None else len(found)

    def fold(self, labels: Collection[str]) -> Value:
        union: set[str] = set()
        for name in labels:
            union |= self.sets.get(name, set())
        return len(union)


@dataclass(slots=True)
class FormulaBreakdown:
    """A formula per label over its operands' breakdowns; an operand lacking a label counts 0."""

    formula: Formula
    operands: Mapping[str, Breakdown]
    _labels: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        for breakdown in self.operands.values():
            self._labels.update(breakdown.labels())

    def labels(self) -> Collection[str]:
        return self._labels

    def value(self, label: str) -> Value:
        if label not in self._labels:
            return 0
        return self.formula.evaluate({n: b.value(label) for n, b in self.operands.items()})

    def fold(self, labels: Collection[str]) -> Value:
        if not any(name in self._labels for name in labels):
            return 0
        return self.formula.evaluate({n: b.fold(labels) for n, b in self.operands.items()})


def _rank(item: tuple[str, Value]) -> tuple[int, int | Decimal, str]:
    name, value = item
    if value is None:
        return (1, 0, name)
    return (0, -value, name)


def cap_breakdown(breakdown: Breakdown, max_values: int) -> dict[str, Value]:
    """The listed values, the `max_values` largest kept (ties by label) and the rest in `other`."""
    values = {name: breakdown.value(name) for name in breakdown.labels()}
    if len(values) <= max_values:
        return dict(sorted(values.items()))
    ranked = sorted(values.items(), key=_rank)
    kept = dict(ranked[:max_values])
    folded = [name for name, _ in ranked[max_values:]]
    if OTHER in kept:
        folded.append(OTHER)
    kept[OTHER] = breakdown.fold(folded)
    return kept
