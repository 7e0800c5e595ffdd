"""The engine: every metric of a catalogue, its state, and the routing of events to metrics.

I/O-free. The worker, a replay and `nsm compute` all drive it the same way: parse, deduplicate
(`Deduplicator`, or a shared store with the same rule), `apply` with the arrival sequence number,
and `evaluate` as of a time. For batch processing, `take_states` hands over what a batch produced
as a delta, and `merge_states` folds deltas or partitions together.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from processor.definitions.model import Catalog
from tests.reference.engine.aggregates import AggregateMetric
from tests.reference.engine.entities import CompiledCondition, EntitiesMetric
from tests.reference.engine.fields import make_flattener
from tests.reference.engine.formulas import FormulaMetric
from tests.reference.engine.segments import MetricValue
from tests.reference.engine.state import EntitiesState, MetricState, merge_states
from tests.reference.engine.summary import Summarizer, finish
from tests.reference.engine.traits import GROUP_CALL
from tests.reference.engine.windows import window_bounds

if TYPE_CHECKING:
    # Only for annotations: tests.reference.events itself imports from this package.
    from tests.reference.events import Event

# A route entry carries what the per-event loop needs, so it reads no attributes: the metric's
# name (reported when late), its bucket size and window length (the lateness test), the bound
# `apply`, the state it applies to, and for an entities metric the conditions accepting the type.
_EntitiesRoute = tuple[
    str, int, int, Callable[..., None], EntitiesState, tuple[CompiledCondition, ...]
]
_AggregateRoute = tuple[str, int, int, Callable[[Any, Any, int], None], Any]


def horizon_terms(catalog: Catalog) -> tuple[tuple[int, int], ...]:
    """(bucket size, longest window in buckets of that size) over every windowed metric of the
    catalogue, by bucket size: what the dedup horizon maximises (`Engine.horizon`)."""
    longest: dict[int, int] = {}
    for metric in catalog:
        if metric.kind != "formula":
            b, n = metric.bucket_ms, metric.buckets_in_window
            longest[b] = max(longest.get(b, 0), n)
    return tuple(sorted(longest.items()))


class Deduplicator:
    """First occurrence wins, by event id label, within the original's horizon.

    A repeat is ignored when it is timestamped before the time the original leaves its last
    window (`horizon(original ts)`, docs/semantics.md); a later one is a new event. The rule
    depends only on the two events, never on a clock, so every processor decides alike.
    """

    def __init__(self, horizon: Callable[[int], int]) -> None:
        self._horizon = horizon
        self._until: dict[str, int] = {}

    def first_time(self, event_id: str | None, ts_ms: int) -> bool:
        """True, and remember the id, unless this is a repeat within the original's horizon."""
        if event_id is None:
            return True
        until = self._until.get(event_id)
        if until is not None and ts_ms < until:
            return False
        self._until[event_id] = self._horizon(ts_ms)
        return True

    def __len__(self) -> int:
        return len(self._until)


class Engine:
    def __init__(self, catalog: Catalog, only: Collection[str] | None = None) -> None:
        """An engine over every metric of the catalogue, or only over the metrics `only` names
        (the worker keeps the others in its native core)."""
        self.catalog = catalog
        self._entities: dict[str, EntitiesMetric] = {}
        self._aggregates: dict[str, AggregateMetric] = {}
        self._formulas: dict[str, FormulaMetric] = {}
        for metric in catalog.metrics.values():
            if only is not None and metric.name not in only:
                continue
            if metric.kind == "entities":
                self._entities[metric.name] = EntitiesMetric(metric)
            elif metric.kind == "aggregate":
                self._aggregates[metric.name] = AggregateMetric(metric)
            else:
                self._formulas[metric.name] = FormulaMetric(metric)
        names: set[str] = set()
        for entities in self._entities.values():
            names |= entities.field_names
        for aggregate in self._aggregates.values():
            names |= aggregate.field_names
        self._flatten = make_flattener(names)
        self._trait_metrics = tuple(
            (name, metric) for name, metric in self._entities.items() if metric.trait_fields
        )
        self.states: dict[str, MetricState] = self.new_states()
        self._routes: dict[str, tuple[tuple[_EntitiesRoute, ...], tuple[_AggregateRoute, ...]]] = {}
        # Over the whole catalogue, also for an engine that keeps only some of its metrics: which
        # repeats are duplicates is one rule for every metric (docs/semantics.md, Dedup).
        self._horizon_terms = horizon_terms(catalog)

    @property
    def entities_metrics(self) -> Mapping[str, EntitiesMetric]:
        return self._entities

    @property
    def aggregate_metrics(self) -> Mapping[str, AggregateMetric]:
        return self._aggregates

    def horizon(self, ts_ms: int) -> int:
        """When an event at `ts_ms` leaves the last window it is in (its bucket's end, plus the
        window), over every metric; repeats of its id timestamped before then are duplicates."""
        # One term per bucket size (the longest window of that size), not one per metric. A loop,
        # not max() over a generator: this runs for every event with an id.
        terms = self._horizon_terms
        if not terms:
            return ts_ms + 1
        b, n = terms[0]
        horizon = (ts_ms // b + n) * b
        for b, n in terms[1:]:
            term = (ts_ms // b + n) * b
            if term > horizon:
                horizon = term
        return horizon

    @property
    def horizon_terms(self) -> tuple[tuple[int, int], ...]:
        """(bucket size, longest window in buckets of that size): what `horizon` maximises."""
        return self._horizon_terms

    @property
    def longest_window_ms(self) -> int:
        return max((b * n for b, n in self._horizon_terms), default=0)

    def new_states(self) -> dict[str, MetricState]:
        """Empty states for every metric that has one (formulas have none)."""
        states: dict[str, MetricState] = {}
        for name, entities in self._entities.items():
            states[name] = entities.new_state()
        for name, aggregate in self._aggregates.items():
            states[name] = aggregate.new_state()
        return states

    def take_states(self) -> dict[str, MetricState]:
        """Hand over the current states (e.g. a batch's delta) and start again from empty ones."""
        taken, self.states = self.states, self.new_states()
        self._routes.clear()
        return taken

    def merge_states(self, other: Mapping[str, MetricState]) -> None:
        """Merge other states of the same catalogue (a delta, another partition) into these."""
        for name, state in other.items():
            merge_states(self.states[name], state)

    def _route(
        self, event_type: str
    ) -> tuple[tuple[_EntitiesRoute, ...], tuple[_AggregateRoute, ...]]:
        entities: list[_EntitiesRoute] = []
        for name, metric in self._entities.items():
            conditions = metric.conditions_for(event_type)
            if conditions:
                state = self.states[name]
                assert isinstance(state, EntitiesState)
                b, n = metric.bucket_ms, metric.buckets_in_window
                entities.append((name, b, n, metric.apply, state, conditions))
        aggregates = tuple(
            (name, metric.bucket_ms, metric.buckets_in_window, metric.apply, self.states[name])
            for name, metric in self._aggregates.items()
            if metric.accepts_type(event_type)
        )
        route = (tuple(entities), aggregates)
        self._routes[event_type] = route
        return route

    def apply(self, event: Event, seq: int, clock_ms: int | None = None) -> list[str]:
        """Apply one deduplicated event; `seq` is its arrival order (ties of event time).

        With `clock_ms`, a metric whose window as of the clock has already passed the event's
        bucket does not take the event; the names of those metrics are returned.
        """
        event_type, ts_ms, _, data = event
        route = self._routes.get(event_type)
        if route is None:
            route = self._route(event_type)
        entity_routes, aggregate_routes = route
        late: list[str] = []
        if event_type == GROUP_CALL and self._trait_metrics:
            # Traits are never late: an old call can still be an account's latest (traits.py).
            view = self._flatten(data)
            for name, metric in self._trait_metrics:
                state = self.states[name]
                assert isinstance(state, EntitiesState)
                metric.record_traits(state, view, ts_ms, seq)
        if not (entity_routes or aggregate_routes):
            return late
        view = self._flatten(data)
        # Late: the event's bucket is before the first of the metric's window as of the clock.
        if clock_ms is None:
            for _, _, _, apply, state, conditions in entity_routes:
                apply(state, view, ts_ms, seq, conditions)
            for _, _, _, apply_aggregate, aggregate_state in aggregate_routes:
                apply_aggregate(aggregate_state, view, ts_ms)
            return late
        for name, b, n, apply, state, conditions in entity_routes:
            if ts_ms // b < clock_ms // b - n + 1:
                late.append(name)
            else:
                apply(state, view, ts_ms, seq, conditions)
        for name, b, n, apply_aggregate, aggregate_state in aggregate_routes:
            if ts_ms // b < clock_ms // b - n + 1:
                late.append(name)
            else:
                apply_aggregate(aggregate_state, view, ts_ms)
        return late

    def expire(self, as_of_ms: int) -> None:
        """Drop every bucket that is before its metric's window as of `as_of_ms`."""
        for name, entities in self._entities.items():
            self.states[name].expire(window_bounds(as_of_ms, entities).first)
        for name, aggregate in self._aggregates.items():
            self.states[name].expire(window_bounds(as_of_ms, aggregate).first)

    def evaluate(self, as_of_ms: int) -> dict[str, MetricValue]:
        """Every metric as of `as_of_ms`, in catalogue order, breakdowns capped: this state's
        summary, finished (the worker does the same over several partitions' summaries)."""
        return finish(self.catalog, Summarizer(self).summarize(as_of_ms))
