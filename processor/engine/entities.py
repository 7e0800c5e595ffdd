"""`entities` metrics: distinct entities for which every condition holds inside the window."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from processor.definitions.model import ANY_EVENT, Metric
from processor.engine.fields import (
    UNKNOWN,
    Predicate,
    as_decimal,
    compile_where,
    label,
)
from processor.engine.state import EXACT, EntitiesShape, EntitiesState, EntityCell
from processor.engine.traits import (
    ACCOUNT_FIELDS,
    TRAITS,
    GroupTraits,
    account_of,
    account_ref,
    is_trait,
)
from processor.engine.windows import WindowBounds

COUNT, DISTINCT, VALUE_COUNTS, SUM = "count", "distinct", "value_counts", "sum"


@dataclass(frozen=True, slots=True)
class CompiledCondition:
    types: frozenset[str] | None  # None: any type
    predicate: Predicate | None  # None: no `where`
    kind: str  # COUNT, DISTINCT, VALUE_COUNTS or SUM
    slot: int  # index into the cell's list for that kind
    field: str  # the distinct or summed field ("" for a count)
    cap: int  # N for COUNT and DISTINCT, K for VALUE_COUNTS
    needed: int  # distinct labels needed (DISTINCT, VALUE_COUNTS)
    threshold: Decimal  # SUM's at_least

    def accepts_type(self, event_type: str) -> bool:
        return self.types is None or event_type in self.types


def _types(events: list[str]) -> frozenset[str] | None:
    return None if ANY_EVENT in events else frozenset(events)


class EntitiesMetric:
    """The compiled form of one `entities` metric: applies events to, and evaluates, its state."""

    def __init__(self, metric: Metric) -> None:
        assert metric.entities is not None
        self.name = metric.name
        self.bucket_ms = metric.bucket_ms
        self.buckets_in_window = metric.buckets_in_window
        self.segment_fields = tuple(metric.segments)
        self._key = metric.entities.key
        # `group.<trait>` segments hold the event's account; the trait is looked up later.
        self.trait_fields = tuple(f for f in metric.segments if is_trait(f))
        self.field_names = {self._key, *(f for f in metric.segments if not is_trait(f))}
        if self.trait_fields:
            self.field_names.update(ACCOUNT_FIELDS)
        slots = {COUNT: 0, DISTINCT: 0, VALUE_COUNTS: 0, SUM: 0}
        caps: dict[str, list[int]] = {COUNT: [], DISTINCT: [], VALUE_COUNTS: []}
        conditions = []
        for condition in metric.entities.all:
            field_name = ""
            needed, cap, threshold = 0, 0, Decimal(0)
            if condition.count_at_least is not None:
                kind, cap = COUNT, condition.count_at_least
            elif condition.distinct is not None:
                assert condition.at_least is not None
                field_name = condition.distinct
                needed = max(1, math.ceil(condition.at_least))
                if condition.each_count_at_least is not None:
                    kind, cap = VALUE_COUNTS, condition.each_count_at_least
                else:
                    kind, cap = DISTINCT, needed
            else:
                assert condition.sum is not None and condition.at_least is not None
                kind, field_name = SUM, condition.sum
                threshold = Decimal(repr(condition.at_least))
            if kind != SUM:
                caps[kind].append(cap)
            conditions.append(
                CompiledCondition(
                    types=_types(condition.event),
                    predicate=compile_where(condition.where),
                    kind=kind,
                    slot=slots[kind],
                    field=field_name,
                    cap=cap,
                    needed=needed,
                    threshold=threshold,
                )
            )
            slots[kind] += 1
            self.field_names.update(condition.where)
            if field_name:
                self.field_names.add(field_name)
        self.conditions = tuple(conditions)
        self.shape = EntitiesShape(
            count_caps=tuple(caps[COUNT]),
            set_caps=tuple(caps[DISTINCT]),
            value_count_caps=tuple(caps[VALUE_COUNTS]),
            sum_count=slots[SUM],
        )

    def new_state(self) -> EntitiesState:
        if not self.trait_fields:
            return EntitiesState(self.shape)
        return EntitiesState(self.shape, traits=GroupTraits(self.trait_fields, self.bucket_ms))

    def record_traits(self, state: EntitiesState, view: Mapping[str, Any], ts_ms: int,
                      seq: int) -> None:  # fmt: skip
        """Take a group call's traits into the metric's history (never late: traits.py)."""
        assert state.traits is not None
        state.traits.record(account_of(view), ts_ms, seq, view.get(TRAITS))

    def conditions_for(self, event_type: str) -> tuple[CompiledCondition, ...]:
        return tuple(c for c in self.conditions if c.accepts_type(event_type))

    def apply(
        self,
        state: EntitiesState,
        view: Mapping[str, Any],
        ts_ms: int,
        seq: int,
        conditions: tuple[CompiledCondition, ...],
    ) -> None:
        """Apply one event (its flat view), given the conditions that accept its type."""
        matched: tuple[CompiledCondition, ...]
        if len(conditions) == 1:
            # Most metrics have a single condition: test it without building a list.
            predicate = conditions[0].predicate
            if predicate is not None and not predicate(view):
                return
            matched = conditions
        else:
            matched = tuple(c for c in conditions if c.predicate is None or c.predicate(view))
            if not matched:
                return
        key = view.get(self._key)
        if key is None:
            return
        entity = key if type(key) is str else label(key)
        bucket = ts_ms // self.bucket_ms
        buckets = state.buckets
        cells = buckets.get(bucket)
        if cells is None:
            cells = buckets[bucket] = {}
        cell = cells.get(entity)
        if cell is None:
            cell = cells[entity] = EntityCell.empty(self.shape, ts_ms, seq, self._labels(view))
        elif ts_ms > cell.latest_ts or (ts_ms == cell.latest_ts and seq > cell.latest_seq):
            cell.latest_ts, cell.latest_seq, cell.labels = ts_ms, seq, self._labels(view)
        for condition in matched:
            kind = condition.kind
            if kind == COUNT:
                counts = cell.counts
                if counts[condition.slot] < condition.cap:
                    counts[condition.slot] += 1
                continue
            raw = view.get(condition.field)
            if raw is None:
                continue
            if kind == SUM:
                amount = as_decimal(raw)
                if amount is not None:
                    cell.sums[condition.slot] = EXACT.add(cell.sums[condition.slot], amount)
            elif kind == DISTINCT:
                distinct = cell.sets[condition.slot]
                distinct.add(raw if type(raw) is str else label(raw))
                if len(distinct) > condition.cap:
                    distinct.remove(max(distinct))
            else:
                value_counts = cell.value_counts[condition.slot]
                value = raw if type(raw) is str else label(raw)
                count = value_counts.get(value, 0)
                if count < condition.cap:
                    value_counts[value] = count + 1

    def _labels(self, view: Mapping[str, Any]) -> tuple[str, ...]:
        labels = [
            value if type(value) is str else UNKNOWN if value is None else label(value)
            for value in map(view.get, self.segment_fields)
        ]
        if self.trait_fields:
            account = account_ref(account_of(view))
            for i, name in enumerate(self.segment_fields):
                if is_trait(name):
                    labels[i] = account
        return tuple(labels)

    def resolve(self, state: EntitiesState, cell: EntityCell) -> tuple[str, ...]:
        """An entity's segment labels from its (window-merged) cell: trait segments become the
        account's trait as of the entity's most recent matching event."""
        if state.traits is None:
            return cell.labels
        traits, ts = state.traits, cell.latest_ts
        return tuple(
            traits.value(held, name, ts) if is_trait(name) else held
            for name, held in zip(self.segment_fields, cell.labels, strict=True)
        )

    def qualifies(self, cell: EntityCell) -> bool:
        for condition in self.conditions:
            kind, slot = condition.kind, condition.slot
            if kind == COUNT:
                if cell.counts[slot] < condition.cap:
                    return False
            elif kind == DISTINCT:
                if len(cell.sets[slot]) < condition.needed:
                    return False
            elif kind == VALUE_COUNTS:
                cap = condition.cap
                complete = sum(1 for c in cell.value_counts[slot].values() if c >= cap)
                if complete < condition.needed:
                    return False
            elif cell.sums[slot] < condition.threshold:
                return False
        return True

    def window_cells(self, state: EntitiesState, window: WindowBounds) -> dict[str, EntityCell]:
        """Every entity's cells in the window merged into one, in a single pass over the cells.

        The state's own cells are never changed: a cell is copied before anything merges into it.
        """
        combined: dict[str, EntityCell] = {}
        owned: set[str] = set()
        for bucket, cells in state.buckets.items():
            if bucket not in window:
                continue
            for entity, cell in cells.items():
                existing = combined.get(entity)
                if existing is None:
                    combined[entity] = cell
                    continue
                if entity not in owned:
                    existing = combined[entity] = existing.copy()
                    owned.add(entity)
                existing.merge(cell, self.shape)
        return combined
