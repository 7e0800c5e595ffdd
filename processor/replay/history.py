"""Every metric's exact value at every bucket boundary of a replayed span.

A metric's value as of T depends only on the window of buckets `[k - n + 1, k]`, `k = T // b`, so
it is constant between its bucket boundaries; its history is its value at each boundary. Taking
a snapshot while consuming would miss events that arrive later in another partition, so the
sweep runs after consuming, over the partitions' full states (nothing expired yet), and gives for
each boundary t exactly what `nsm compute --at t` gives over the same events.

Recomputing every window from scratch at every boundary costs entities x buckets per boundary;
instead each metric slides its window and does only the work the slide implies:

- counts and sums add the entering bucket and subtract the leaving one (exact: ints, exact
  decimals); segment labels are listed while some bucket in the window holds them;
- distinct aggregates keep, per value, in how many buckets of the window it occurs;
- entities change only when a bucket holding one of their cells enters or leaves the window, and
  then their window cell is one merge of two precomputed partial merges (prefix and suffix
  within blocks of n buckets: any window of n buckets spans at most two such blocks).

Partitions combine as one stream would: numbers add, distinct values unite, and an entity's cells
of one bucket merge even if its events reached several partitions; formulas and the segment cap
come from `finish`.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterator, Sequence
from decimal import Decimal

from processor.definitions.model import Catalog
from processor.engine import Engine, MetricValue
from processor.engine.aggregates import AggregateMetric
from processor.engine.entities import EntitiesMetric
from processor.engine.state import (
    EXACT,
    CountState,
    DistinctState,
    EntitiesState,
    EntityCell,
    SumState,
)
from processor.engine.summary import Additive, Distinct, Part, Summary, finish

Number = int | Decimal
Result = tuple[bool, tuple[str, ...]] | None  # (qualifies, segment labels); None: not in window


def history_step_ms(catalog: Catalog) -> int:
    """The spacing of history points: every metric's bucket boundaries fall on it."""
    return math.gcd(*(m.bucket_ms for m in catalog if m.kind != "formula")) or 3_600_000


def sweep(
    catalog: Catalog, engines: Sequence[Engine], start_ms: int, end_ms: int
) -> Iterator[tuple[int, dict[str, MetricValue]]]:
    """(t, every metric as of t) for t = start, start + step, ... up to end_ms, where step is
    `history_step_ms` and start is `start_ms` rounded down to it."""
    for t, summary in sweep_summaries(catalog, engines, start_ms, end_ms):
        yield t, finish(catalog, summary)


def sweep_summaries(
    catalog: Catalog, engines: Sequence[Engine], start_ms: int, end_ms: int
) -> Iterator[tuple[int, Summary]]:
    """`sweep` before `finish`: (t, the engines' summary as of t). Summaries of several sweeps
    over disjoint partitions merge (`merge_summaries`) into the sweep over all of them.

    A summary holds only until the next one is taken: distinct sets are the track's own, not
    copies, so use (finish, merge or pickle) each before going on."""
    step = history_step_ms(catalog)
    first = start_ms // step * step
    if not engines or end_ms < first:
        return
    engine = engines[0]
    tracks: dict[str, _Track] = {}
    for name, entities in engine.entities_metrics.items():
        states = [e.states[name] for e in engines]
        tracks[name] = _EntitiesTrack(entities, states, first, end_ms)  # type: ignore[arg-type]
    for name, aggregate in engine.aggregate_metrics.items():
        states = [e.states[name] for e in engines]
        if isinstance(states[0], DistinctState):
            tracks[name] = _DistinctTrack(aggregate, states)  # type: ignore[arg-type]
        else:
            tracks[name] = _AdditiveTrack(aggregate, states)  # type: ignore[arg-type]
    for t in range(first, end_ms + 1, step):
        yield t, {name: track.part_at(t) for name, track in tracks.items()}


class _Track:
    def part_at(self, t_ms: int) -> Part:
        raise NotImplementedError


class _SlidingTrack(_Track):
    """A window slid one bucket at a time: each bucket entering is added, each leaving taken out.

    Subclasses say how one bucket is added or taken out (`_slide`) and what the window holds
    (`_part`); times must not go backwards.
    """

    n: int
    bucket_ms: int
    k: int | None

    def _slide(self, bucket: int, sign: int) -> None:
        raise NotImplementedError

    def _part(self) -> Part:
        raise NotImplementedError

    def part_at(self, t_ms: int) -> Part:
        k = t_ms // self.bucket_ms
        if self.k is None:
            for bucket in range(k - self.n + 1, k + 1):
                self._slide(bucket, +1)
        else:
            for bucket in range(self.k + 1, k + 1):
                self._slide(bucket, +1)
                self._slide(bucket - self.n, -1)
        self.k = k
        return self._part()


def _add(left: Number, right: Number, sign: int) -> Number:
    if isinstance(left, Decimal) or isinstance(right, Decimal):
        return EXACT.add(left, right) if sign > 0 else EXACT.subtract(left, right)
    return left + right if sign > 0 else left - right


class _AdditiveTrack(_SlidingTrack):
    """Counts and sums: the window's total and per-label numbers, slid bucket by bucket."""

    def __init__(self, metric: AggregateMetric, states: list[CountState | SumState]) -> None:
        self.metric, self.states = metric, states
        self.n, self.bucket_ms = metric.buckets_in_window, metric.bucket_ms
        self.k: int | None = None
        self.total: Number = 0 if isinstance(states[0], CountState) else Decimal(0)
        self.values: dict[str, dict[str, Number]] = {s: {} for s in metric.segment_fields}
        self.present: dict[str, dict[str, int]] = {s: {} for s in metric.segment_fields}

    def _slide(self, bucket: int, sign: int) -> None:
        for state in self.states:
            cell = state.buckets.get(bucket)
            if cell is None:
                continue
            self.total = _add(self.total, cell.total, sign)
            for segment, labels in cell.by_segment.items():
                values, present = self.values[segment], self.present[segment]
                for label, amount in labels.items():
                    count = present.get(label, 0) + sign
                    if count:
                        present[label] = count
                        values[label] = _add(values.get(label, 0), amount, sign)
                    else:
                        del present[label], values[label]

    def _part(self) -> Part:
        return Additive(self.total, {s: dict(v) for s, v in self.values.items()})


class _Multiset:
    """Values with the number of window buckets holding each; `members` are those held."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.members: set[str] = set()

    def slide(self, values: set[str], sign: int) -> None:
        counts, members = self.counts, self.members
        for value in values:
            count = counts.get(value, 0) + sign
            if count:
                counts[value] = count
                if sign > 0:
                    members.add(value)
            else:
                del counts[value]
                members.discard(value)


class _DistinctTrack(_SlidingTrack):
    def __init__(self, metric: AggregateMetric, states: list[DistinctState]) -> None:
        self.states = states
        self.n, self.bucket_ms = metric.buckets_in_window, metric.bucket_ms
        self.fields = metric.segment_fields
        self.k: int | None = None
        self.total = _Multiset()
        self.labels: dict[str, dict[str, _Multiset]] = {s: {} for s in metric.segment_fields}
        self.present: dict[str, dict[str, int]] = {s: {} for s in metric.segment_fields}

    def _slide(self, bucket: int, sign: int) -> None:
        for state in self.states:
            cell = state.buckets.get(bucket)
            if cell is None:
                continue
            self.total.slide(cell.total, sign)
            for segment, labels in cell.by_segment.items():
                sets, present = self.labels[segment], self.present[segment]
                for label, values in labels.items():
                    sets.setdefault(label, _Multiset()).slide(values, sign)
                    count = present.get(label, 0) + sign
                    if count:
                        present[label] = count
                    else:
                        del present[label], sets[label]

    def _part(self) -> Part:
        # The sets are read by `finish` before the next slide changes them: no copies.
        return Distinct(
            self.total.members,
            {s: {label: m.members for label, m in sets.items()} for s, sets in self.labels.items()},
        )


class _EntitiesTrack(_Track):
    """Entities: the qualifying count and per-label counts, updated where entities change."""

    def __init__(
        self, metric: EntitiesMetric, states: list[EntitiesState], first_ms: int, end_ms: int
    ) -> None:
        self.metric = metric
        self.n, self.bucket_ms = metric.buckets_in_window, metric.bucket_ms
        self.fields = metric.segment_fields
        self.k: int | None = None
        self.total = 0
        self.present: list[dict[str, int]] = [{} for _ in self.fields]
        self.qualifying: list[dict[str, int]] = [{} for _ in self.fields]
        first, last = first_ms // self.bucket_ms, end_ms // self.bucket_ms
        self.changes: dict[int, list[tuple[Result, Result]]] = defaultdict(list)
        for cells in _cells_by_entity(states, metric).values():
            self._plan(cells, first, last)
        self.pending = sorted(self.changes)
        self.next = 0

    def _plan(self, cells: list[tuple[int, EntityCell]], first: int, last: int) -> None:
        """Record when this entity's window result changes, for boundaries first..last."""
        n, shape = self.n, self.metric.shape
        buckets = [b for b, _ in cells]
        prefix: list[EntityCell] = []
        for i, (bucket, cell) in enumerate(cells):
            if i and buckets[i - 1] // n == bucket // n:
                merged = prefix[-1].copy()
                merged.merge(cell, shape)
                prefix.append(merged)
            else:
                prefix.append(cell)
        suffix: list[EntityCell] = [cells[-1][1]] * len(cells)
        for i in range(len(cells) - 2, -1, -1):
            if buckets[i + 1] // n == buckets[i] // n:
                merged = suffix[i + 1].copy()
                merged.merge(cells[i][1], shape)
                suffix[i] = merged
            else:
                suffix[i] = cells[i][1]
        moments = {first}
        for bucket in buckets:
            moments.add(bucket)
            moments.add(bucket + n)
        previous: Result = None
        for k in sorted(m for m in moments if first <= m <= last):
            lo = k - n + 1
            i_lo, i_hi = bisect_left(buckets, lo), bisect_right(buckets, k) - 1
            result: Result = None
            if i_lo <= i_hi:
                block = buckets[i_lo] // n
                if block == buckets[i_hi] // n:
                    window = prefix[i_hi] if lo <= block * n else suffix[i_lo]
                else:
                    window = suffix[i_lo].copy()
                    window.merge(prefix[i_hi], shape)
                result = (self.metric.qualifies(window), window.labels)
            if result != previous:
                self.changes[k].append((previous, result))
                previous = result

    def _apply(self, result: Result, sign: int) -> None:
        if result is None:
            return
        qualifies, labels = result
        hit = sign if qualifies else 0
        self.total += hit
        for present, qualifying, label in zip(self.present, self.qualifying, labels, strict=True):
            count = present.get(label, 0) + sign
            if count:
                present[label] = count
                qualifying[label] = qualifying.get(label, 0) + hit
            else:
                del present[label], qualifying[label]

    def part_at(self, t_ms: int) -> Part:
        k = t_ms // self.bucket_ms
        while self.next < len(self.pending) and self.pending[self.next] <= k:
            for old, new in self.changes.pop(self.pending[self.next]):
                self._apply(old, -1)
                self._apply(new, +1)
            self.next += 1
        self.k = k
        return Additive(
            self.total,
            {f: dict(q) for f, q in zip(self.fields, self.qualifying, strict=True)},
        )


def _cells_by_entity(
    states: list[EntitiesState], metric: EntitiesMetric
) -> dict[str, list[tuple[int, EntityCell]]]:
    """Each entity's cells in bucket order. An entity whose events reached several partitions
    (messages keyed by something else) is one entity: its cells of one bucket are merged."""
    merged: dict[str, dict[int, EntityCell]] = defaultdict(dict)
    for state in states:
        for bucket, cells in state.buckets.items():
            for entity, cell in cells.items():
                mine = merged[entity].get(bucket)
                if mine is None:
                    merged[entity][bucket] = cell
                else:
                    mine = mine.copy()
                    mine.merge(cell, metric.shape)
                    merged[entity][bucket] = mine
    return {entity: sorted(by_bucket.items()) for entity, by_bucket in merged.items()}
