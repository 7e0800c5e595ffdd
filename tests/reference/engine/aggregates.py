"""`aggregate` metrics: a count, an exact sum or a distinct count over the matching events."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from processor.definitions.model import ANY_EVENT, Metric
from tests.reference.engine.fields import as_decimal, compile_where, label, label_or_unknown
from tests.reference.engine.state import (
    EXACT,
    ZERO,
    CountBucket,
    CountState,
    DistinctBucket,
    DistinctState,
    SumBucket,
    SumState,
)

AggregateState = CountState | SumState | DistinctState


class AggregateMetric:
    """The compiled form of one `aggregate` metric: applies events to, and evaluates, its state."""

    def __init__(self, metric: Metric) -> None:
        aggregate = metric.aggregate
        assert aggregate is not None
        self.name = metric.name
        self.kind = aggregate.kind
        self.bucket_ms = metric.bucket_ms
        self.buckets_in_window = metric.buckets_in_window
        self.types = None if ANY_EVENT in aggregate.event else frozenset(aggregate.event)
        self.predicate = compile_where(aggregate.where)
        measured = aggregate.sum if self.kind == "sum" else aggregate.distinct
        self._field = measured or ""
        self.segment_fields = tuple(metric.segments)
        self.field_names = {*aggregate.where, *metric.segments}
        if measured:
            self.field_names.add(measured)
        # apply(state, view, ts_ms): one event (its flat view) of a type the metric accepts.
        self.apply: Callable[[Any, Mapping[str, Any], int], None] = {
            "count": self._apply_count,
            "sum": self._apply_sum,
            "distinct": self._apply_distinct,
        }[self.kind]  # type: ignore[assignment]

    def new_state(self) -> AggregateState:
        if self.kind == "count":
            return CountState()
        return SumState() if self.kind == "sum" else DistinctState()

    def accepts_type(self, event_type: str) -> bool:
        return self.types is None or event_type in self.types

    def _apply_count(self, state: CountState, view: Mapping[str, Any], ts_ms: int) -> None:
        if self.predicate is not None and not self.predicate(view):
            return
        bucket = ts_ms // self.bucket_ms
        cell = state.buckets.get(bucket)
        if cell is None:
            cell = state.buckets[bucket] = CountBucket()
        cell.total += 1
        for name in self.segment_fields:
            values = cell.by_segment.get(name)
            if values is None:
                values = cell.by_segment[name] = {}
            value = label_or_unknown(view.get(name))
            values[value] = values.get(value, 0) + 1

    def _apply_sum(self, state: SumState, view: Mapping[str, Any], ts_ms: int) -> None:
        if self.predicate is not None and not self.predicate(view):
            return
        bucket = ts_ms // self.bucket_ms
        cell = state.buckets.get(bucket)
        if cell is None:
            cell = state.buckets[bucket] = SumBucket()
        amount = as_decimal(view.get(self._field))
        if amount is not None:
            cell.total = EXACT.add(cell.total, amount)
        for name in self.segment_fields:
            values = cell.by_segment.get(name)
            if values is None:
                values = cell.by_segment[name] = {}
            value = label_or_unknown(view.get(name))
            current = values.get(value, ZERO)
            values[value] = current if amount is None else EXACT.add(current, amount)

    def _apply_distinct(self, state: DistinctState, view: Mapping[str, Any], ts_ms: int) -> None:
        if self.predicate is not None and not self.predicate(view):
            return
        bucket = ts_ms // self.bucket_ms
        cell = state.buckets.get(bucket)
        if cell is None:
            cell = state.buckets[bucket] = DistinctBucket()
        raw = view.get(self._field)
        distinct = raw if type(raw) is str else None if raw is None else label(raw)
        if distinct is not None:
            cell.total.add(distinct)
        for name in self.segment_fields:
            values = cell.by_segment.get(name)
            if values is None:
                values = cell.by_segment[name] = {}
            value = label_or_unknown(view.get(name))
            labels = values.get(value)
            if labels is None:
                labels = values[value] = set()
            if distinct is not None:
                labels.add(distinct)
