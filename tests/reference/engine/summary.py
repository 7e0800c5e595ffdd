"""Window summaries: what one state contributes to every metric, mergeable across partitions.

Evaluating is two steps: summarise a state as of T (window totals, uncapped breakdowns, distinct
sets), then `finish` (formulas over the totals, then the segment cap). `Engine.evaluate` does both
on one state; the worker summarises each partition, merges the summaries and finishes once.
Merging is addition (entities, counts, sums) or set union (distinct aggregates), so the result is
the same as one engine over every partition's events, provided an entity's events share a
partition (messages keyed by the account, CONTRACT §1).

`EntitiesCache` keeps each entity's window result between summaries: when the window moves it
evaluates every entity in one pass over the cells, otherwise only the entities that changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson

from processor.definitions.model import Catalog, Metric
from tests.reference.engine.aggregates import AggregateMetric
from tests.reference.engine.entities import EntitiesMetric
from tests.reference.engine.formulas import Evaluated, FormulaMetric, evaluate_formulas
from tests.reference.engine.segments import (
    AdditiveBreakdown,
    Breakdown,
    DistinctBreakdown,
    MetricValue,
    cap_breakdown,
)
from tests.reference.engine.state import (
    EXACT,
    CountState,
    DistinctState,
    EntitiesState,
    EntityCell,
    MetricState,
    SumState,
)
from tests.reference.engine.windows import WindowBounds, window_bounds

if TYPE_CHECKING:
    from tests.reference.engine.engine import Engine

Number = int | Decimal


@dataclass
class Additive:
    total: Number
    breakdowns: dict[str, dict[str, Number]] = field(default_factory=dict)


@dataclass
class Distinct:
    total: set[str]
    breakdowns: dict[str, dict[str, set[str]]] = field(default_factory=dict)


Part = Additive | Distinct
Summary = dict[str, Part]


# ---- entities, incrementally --------------------------------------------------------------


@dataclass
class _EntityResult:
    qualifies: bool
    labels: tuple[str, ...]
    # The window-merged cell, kept only where trait segments are looked up again (traits.py).
    cell: EntityCell | None


class EntitiesCache:
    """Per entity: does it qualify in the window, and under which segment labels."""

    def __init__(self, metric: EntitiesMetric) -> None:
        self.metric = metric
        self.results: dict[str, _EntityResult] = {}
        self.window: WindowBounds | None = None
        self.dirty: set[str] = set()
        self._traits_version = -1

    def touched(self, entities: Iterable[str]) -> None:
        self.dirty.update(entities)

    def _result(self, state: EntitiesState, cell: EntityCell) -> _EntityResult:
        metric = self.metric
        kept = cell if metric.trait_fields else None
        return _EntityResult(metric.qualifies(cell), metric.resolve(state, cell), kept)

    def evaluate(self, state: EntitiesState, window: WindowBounds) -> Additive:
        if window != self.window:
            # Once per bucket boundary: buckets left and entered the window (and expiry may have
            # dropped some already), so every entity is evaluated again, in one pass over cells.
            self.results = {
                entity: self._result(state, cell)
                for entity, cell in self.metric.window_cells(state, window).items()
            }
            self.window = window
        else:
            self._update(state, window, self.dirty)
        self.dirty = set()
        traits = state.traits
        if traits is not None and traits.version != self._traits_version:
            # A group call may relabel any entity of its account, at any time in the window.
            for result in self.results.values():
                assert result.cell is not None
                result.labels = self.metric.resolve(state, result.cell)
            self._traits_version = traits.version
        total = 0
        per_field: list[dict[str, Number]] = [{} for _ in self.metric.segment_fields]
        for result in self.results.values():
            hit = 1 if result.qualifies else 0
            total += hit
            for values, label in zip(per_field, result.labels, strict=True):
                values[label] = values.get(label, 0) + hit
        return Additive(total, dict(zip(self.metric.segment_fields, per_field, strict=True)))

    def _update(self, state: EntitiesState, window: WindowBounds, entities: set[str]) -> None:
        """Evaluate again only the entities that changed since the last summary."""
        buckets = [cells for bucket, cells in state.buckets.items() if bucket in window]
        for entity in entities:
            merged: EntityCell | None = None
            for cells in buckets:
                cell = cells.get(entity)
                if cell is None:
                    continue
                if merged is None:
                    merged = cell.copy()
                else:
                    merged.merge(cell, self.metric.shape)
            if merged is None:
                self.results.pop(entity, None)
            else:
                self.results[entity] = self._result(state, merged)


# ---- summarising one engine ---------------------------------------------------------------


class Summarizer:
    """Summaries of one engine's states (one partition), entities evaluated incrementally."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._caches = {name: EntitiesCache(m) for name, m in engine.entities_metrics.items()}

    def touched(self, delta: Mapping[str, MetricState]) -> None:
        for name, state in delta.items():
            cache = self._caches.get(name)
            if cache is not None and isinstance(state, EntitiesState):
                for cells in state.buckets.values():
                    cache.touched(cells)

    def summarize(self, as_of_ms: int) -> Summary:
        summary: Summary = {}
        for name, cache in self._caches.items():
            state = self.engine.states[name]
            assert isinstance(state, EntitiesState)
            summary[name] = cache.evaluate(state, window_bounds(as_of_ms, cache.metric))
        for name, metric in self.engine.aggregate_metrics.items():
            summary[name] = summarize_aggregate(
                metric, self.engine.states[name], window_bounds(as_of_ms, metric)
            )
        return summary


def summarize_aggregate(metric: AggregateMetric, state: MetricState, window: WindowBounds) -> Part:
    if isinstance(state, DistinctState):
        distinct = Distinct(set(), {name: {} for name in metric.segment_fields})
        for bucket, cell in state.buckets.items():
            if bucket in window:
                _union_into(distinct, cell.total, cell.by_segment)
        return distinct
    assert isinstance(state, CountState | SumState)
    additive = Additive(0 if isinstance(state, CountState) else Decimal(0))
    additive.breakdowns = {name: {} for name in metric.segment_fields}
    for bucket, number_cell in state.buckets.items():
        if bucket in window:
            _add_into(additive, number_cell.total, number_cell.by_segment)
    return additive


def _union_into(
    distinct: Distinct, total: set[str], by_segment: Mapping[str, Mapping[str, set[str]]]
) -> None:
    """Fold a bucket's or another part's sets into `distinct`."""
    distinct.total |= total
    for segment, values in by_segment.items():
        target = distinct.breakdowns.setdefault(segment, {})
        for label, members in values.items():
            target.setdefault(label, set()).update(members)


def _add_into(
    additive: Additive, total: Number, by_segment: Mapping[str, Mapping[str, Number]]
) -> None:
    """Fold a bucket's or another part's numbers into `additive`."""
    additive.total = _add(additive.total, total)
    for segment, numbers in by_segment.items():
        target = additive.breakdowns.setdefault(segment, {})
        for label, amount in numbers.items():
            target[label] = _add(target.get(label, 0), amount)


def _add(left: Number, right: Number) -> Number:
    if isinstance(left, Decimal) or isinstance(right, Decimal):
        return EXACT.add(left, right)
    return left + right


# ---- merging and finishing ----------------------------------------------------------------


def merge_summaries(summaries: Iterable[Summary]) -> Summary:
    merged: Summary = {}
    for summary in summaries:
        for name, part in summary.items():
            mine = merged.get(name)
            if mine is None:
                merged[name] = _copy(part)
            elif isinstance(mine, Distinct) and isinstance(part, Distinct):
                _union_into(mine, part.total, part.breakdowns)
            elif isinstance(mine, Additive) and isinstance(part, Additive):
                _add_into(mine, part.total, part.breakdowns)
    return merged


def _copy(part: Part) -> Part:
    if isinstance(part, Distinct):
        return Distinct(
            set(part.total),
            {s: {label: set(m) for label, m in v.items()} for s, v in part.breakdowns.items()},
        )
    return Additive(part.total, {s: dict(v) for s, v in part.breakdowns.items()})


def empty_part(metric: Metric) -> Part:
    """A metric's part when no partition has any of its events."""
    if metric.aggregate is not None and metric.aggregate.kind == "distinct":
        return Distinct(set(), {name: {} for name in metric.segments})
    zero: Number = Decimal(0) if metric.aggregate is not None and metric.aggregate.sum else 0
    return Additive(zero, {name: {} for name in metric.segments})


def finish(catalog: Catalog, summary: Summary) -> dict[str, MetricValue]:
    """Every metric's value: formulas over the merged parts, then the segment cap."""
    evaluated: dict[str, Evaluated] = {}
    for metric in catalog:
        if metric.kind == "formula":
            continue
        part = summary.get(metric.name) or empty_part(metric)
        breakdowns: dict[str, Breakdown]
        if isinstance(part, Distinct):
            breakdowns = {s: DistinctBreakdown(v) for s, v in part.breakdowns.items()}
            evaluated[metric.name] = Evaluated(len(part.total), breakdowns)
        else:
            zero: Number = 0 if isinstance(part.total, int) else Decimal(0)
            breakdowns = {s: AdditiveBreakdown(v, zero) for s, v in part.breakdowns.items()}
            evaluated[metric.name] = Evaluated(part.total, breakdowns)
    formulas = {m.name: FormulaMetric(m) for m in catalog if m.kind == "formula"}
    evaluate_formulas(formulas, evaluated)
    values: dict[str, MetricValue] = {}
    for metric in catalog:
        result = evaluated.get(metric.name)
        if result is None:
            continue
        segments = {
            name: cap_breakdown(breakdown, metric.max_segment_values)
            for name, breakdown in result.breakdowns.items()
        }
        values[metric.name] = MetricValue(result.value, segments)
    return values


# ---- wire format (Redis) ------------------------------------------------------------------


def encode_summary(
    as_of_ms: int, summary: Summary, extras: Mapping[str, Any] | None = None
) -> bytes:
    """The summary as stored; `extras` are further top-level fields (the worker's readiness)."""

    def part(p: Part) -> Any:
        if isinstance(p, Distinct):
            return {
                "d": sorted(p.total),
                "b": {s: {k: sorted(v) for k, v in b.items()} for s, b in p.breakdowns.items()},
            }
        return {
            "a": str(p.total),
            "i": isinstance(p.total, int),
            "b": {s: {k: str(v) for k, v in b.items()} for s, b in p.breakdowns.items()},
        }

    document = {"as_of": as_of_ms, "metrics": {n: part(p) for n, p in summary.items()}}
    return orjson.dumps({**(extras or {}), **document})


def decode_summary(raw: bytes) -> tuple[int, Summary]:
    as_of, summary, _ = decode_summary_with_extras(raw)
    return as_of, summary


def decode_summary_with_extras(raw: bytes) -> tuple[int, Summary, dict[str, Any]]:
    """As `decode_summary`, with the further top-level fields `encode_summary` was given."""
    document = orjson.loads(raw)
    summary: Summary = {}
    for name, p in document["metrics"].items():
        if "d" in p:
            summary[name] = Distinct(
                set(p["d"]), {s: {k: set(v) for k, v in b.items()} for s, b in p["b"].items()}
            )
        else:
            number = int if p["i"] else Decimal
            summary[name] = Additive(
                number(p["a"]),
                {s: {k: number(v) for k, v in b.items()} for s, b in p["b"].items()},
            )
    extras = {k: v for k, v in document.items() if k not in ("as_of", "metrics")}
    return document["as_of"], summary, extras
