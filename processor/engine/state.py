"""The state of one metric: plain data, per bucket, mergeable, expiring with the window.

Every metric that is not a formula keeps `buckets: {bucket: ...}` where `bucket` is
`floor(ts_ms / bucket_ms)`. Expiry is dropping the buckets below the window's first bucket, and
nothing else. Two states of the same metric merge bucket by bucket with an operation that is
associative and commutative (not idempotent: a delta is merged exactly once). So a batch can be
folded into a delta of the same shape and merged into a stored state, and the states of several
partitions can be merged in any order, giving the state of the whole stream. Applying events one
by one gives the same state whatever their order, given each event's arrival sequence number.

Layout (what a Redis mapping stores, one hash or set per line is natural):

`entities` metric, `EntitiesState.buckets[bucket][entity]` is an `EntityCell`:

    latest_ts, latest_seq   the entity's most recent matching event in this bucket (event time,
                            ties by arrival sequence); merge keeps the larger (ts, seq, labels)
    labels                  that event's segment labels, one per segment field (`unknown` if
                            absent); for a `group.<trait>` segment, the event's account, whose
                            trait is looked up as of latest_ts at evaluation (traits.py)
    counts[i]               count_at_least N: matching events, capped at N; merge: min(a + b, N)
    sets[i]                 distinct F at_least N: the N smallest labels of F seen (capped at N,
                            enough to decide "at least N"); merge: the N smallest of a | b
    value_counts[i]         distinct F each_count_at_least K: {label of F: matching events, capped
                            at K}; merge: per label min(a + b, K)
    sums[i]                 sum F: exact Decimal sum; merge: a + b

`i` numbers the conditions of one kind in declaration order (EntitiesShape says which is which).
A metric with `group.<trait>` segments also keeps its accounts' trait history (`traits`, not per
bucket: pruned to what its window can still need when a batch writes it, not by `expire`,
traits.py).

`aggregate` metrics, per bucket:

    CountBucket     total: int,            by_segment: {field: {label: int}}
    SumBucket       total: Decimal,        by_segment: {field: {label: Decimal}}
    DistinctBucket  total: {label},        by_segment: {field: {label: {label}}}

A segment label is present as soon as a matching event carries it, even when the event adds 0 to
the value (a sum whose field is missing, a distinct whose field is missing), because a label is
listed when a matching event in the window has it.

Sums use an exact decimal context: the result never depends on the order of addition.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from processor.engine.traits import GroupTraits

EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)
ZERO = Decimal(0)


def capped_union(into: set[str], other: Iterable[str], cap: int) -> None:
    """`into |= other`, then keep only the `cap` smallest labels."""
    into.update(other)
    if len(into) > cap:
        keep = heapq.nsmallest(cap, into)
        into.clear()
        into.update(keep)


@dataclass(frozen=True, slots=True)
class EntitiesShape:
    """The caps of an entities metric's conditions, grouped by kind in declaration order."""

    count_caps: tuple[int, ...] = ()
    set_caps: tuple[int, ...] = ()
    value_count_caps: tuple[int, ...] = ()
    sum_count: int = 0


@dataclass(slots=True)
class EntityCell:
    latest_ts: int
    latest_seq: int
    labels: tuple[str, ...]
    counts: list[int]
    sets: list[set[str]]
    value_counts: list[dict[str, int]]
    sums: list[Decimal]

    @classmethod
    def empty(cls, shape: EntitiesShape, ts: int, seq: int, labels: tuple[str, ...]) -> EntityCell:
        # Called for most events of a busy metric: avoid building lists that stay empty.
        count_caps, set_caps, value_count_caps = (
            shape.count_caps,
            shape.set_caps,
            shape.value_count_caps,
        )
        return cls(
            ts,
            seq,
            labels,
            [0] * len(count_caps) if count_caps else [],
            [set() for _ in set_caps] if set_caps else [],
            [{} for _ in value_count_caps] if value_count_caps else [],
            [ZERO] * shape.sum_count if shape.sum_count else [],
        )

    def copy(self) -> EntityCell:
        return EntityCell(
            self.latest_ts,
            self.latest_seq,
            self.labels,
            list(self.counts),
            [set(s) for s in self.sets],
            [dict(d) for d in self.value_counts],
            list(self.sums),
        )

    def merge(self, other: EntityCell, shape: EntitiesShape) -> None:
        if other.latest_ts > self.latest_ts or (
            other.latest_ts == self.latest_ts
            and (other.latest_seq, other.labels) > (self.latest_seq, self.labels)
        ):
            self.latest_ts, self.latest_seq, self.labels = (
                other.latest_ts,
                other.latest_seq,
                other.labels,
            )
        if self.counts:
            counts, theirs = self.counts, other.counts
            for i, cap in enumerate(shape.count_caps):
                counts[i] = min(counts[i] + theirs[i], cap)
        if self.sets:
            for i, cap in enumerate(shape.set_caps):
                capped_union(self.sets[i], other.sets[i], cap)
        if self.value_counts:
            for i, cap in enumerate(shape.value_count_caps):
                mine = self.value_counts[i]
                for value, count in other.value_counts[i].items():
                    mine[value] = min(mine.get(value, 0) + count, cap)
        if self.sums:
            for i, amount in enumerate(other.sums):
                self.sums[i] = EXACT.add(self.sums[i], amount)


def _drop_before(buckets: dict[int, object], first_bucket: int) -> None:
    for bucket in [b for b in buckets if b < first_bucket]:
        del buckets[bucket]


@dataclass(slots=True)
class EntitiesState:
    shape: EntitiesShape
    buckets: dict[int, dict[str, EntityCell]] = field(default_factory=dict)
    # The accounts' trait history, for a metric with `group.<trait>` segments (traits.py).
    traits: GroupTraits | None = None

    def merge(self, other: EntitiesState) -> None:
        if other.traits is not None and self.traits is not None:
            self.traits.merge(other.traits)
        for bucket, cells in other.buckets.items():
            mine = self.buckets.setdefault(bucket, {})
            for entity, cell in cells.items():
                existing = mine.get(entity)
                if existing is None:
                    mine[entity] = cell.copy()
                else:
                    existing.merge(cell, self.shape)

    def expire(self, first_bucket: int) -> None:
        # Not the trait history: expiry does not reach the store's copy of it (traits.py).
        _drop_before(self.buckets, first_bucket)  # type: ignore[arg-type]


@dataclass(slots=True)
class CountBucket:
    total: int = 0
    by_segment: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass(slots=True)
class SumBucket:
    total: Decimal = ZERO
    by_segment: dict[str, dict[str, Decimal]] = field(default_factory=dict)


@dataclass(slots=True)
class DistinctBucket:
    total: set[str] = field(default_factory=set)
    by_segment: dict[str, dict[str, set[str]]] = field(default_factory=dict)


@dataclass(slots=True)
class CountState:
    buckets: dict[int, CountBucket] = field(default_factory=dict)

    def merge(self, other: CountState) -> None:
        for bucket, theirs in other.buckets.items():
            mine = self.buckets.setdefault(bucket, CountBucket())
            mine.total += theirs.total
            for segment, values in theirs.by_segment.items():
                target = mine.by_segment.setdefault(segment, {})
                for value, count in values.items():
                    target[value] = target.get(value, 0) + count

    def expire(self, first_bucket: int) -> None:
        _drop_before(self.buckets, first_bucket)  # type: ignore[arg-type]


@dataclass(slots=True)
class SumState:
    buckets: dict[int, SumBucket] = field(default_factory=dict)

    def merge(self, other: SumState) -> None:
        for bucket, theirs in other.buckets.items():
            mine = self.buckets.setdefault(bucket, SumBucket())
            mine.total = EXACT.add(mine.total, theirs.total)
            for segment, values in theirs.by_segment.items():
                target = mine.by_segment.setdefault(segment, {})
                for value, amount in values.items():
                    target[value] = EXACT.add(target.get(value, ZERO), amount)

    def expire(self, first_bucket: int) -> None:
        _drop_before(self.buckets, first_bucket)  # type: ignore[arg-type]


@dataclass(slots=True)
class DistinctState:
    buckets: dict[int, DistinctBucket] = field(default_factory=dict)

    def merge(self, other: DistinctState) -> None:
        for bucket, theirs in other.buckets.items():
            mine = self.buckets.setdefault(bucket, DistinctBucket())
            mine.total |= theirs.total
            for segment, values in theirs.by_segment.items():
                target = mine.by_segment.setdefault(segment, {})
                for value, labels in values.items():
                    target.setdefault(value, set()).update(labels)

    def expire(self, first_bucket: int) -> None:
        _drop_before(self.buckets, first_bucket)  # type: ignore[arg-type]


MetricState = EntitiesState | CountState | SumState | DistinctState


def merge_states(into: MetricState, other: MetricState) -> None:
    """Merge `other` into `into` (same metric); `other` is left unchanged."""
    if type(into) is not type(other):
        raise TypeError(f"cannot merge {type(other).__name__} into {type(into).__name__}")
    into.merge(other)  # type: ignore[arg-type]
