"""A metric's value as the engine reports it, and how it prints (CONTRACT §4)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

Value = int | Decimal | None
"""Counts are int, sums and formulas Decimal, no value (a division by zero) None."""


@dataclass(frozen=True, slots=True)
class MetricValue:
    value: Value
    segments: dict[str, dict[str, Value]] = field(default_factory=dict)


def json_number(value: Value) -> int | float | None:
    """Counts stay integers; sums and formulas become floats; no value is null."""
    if isinstance(value, Decimal):
        return float(value)
    return value
