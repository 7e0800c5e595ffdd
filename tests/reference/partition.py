"""One Kafka partition's in-memory state and how a batch of its messages changes it. No I/O.

The worker owns a partition's state in memory (a mirror of what Redis holds) and, per batch:
validates and deduplicates the messages, applies them to an empty engine (the batch's delta),
merges the delta into the mirror and returns what to write: the changed fields of every touched
bucket, the new event ids and the new offset. The Redis layer writes all of it in one atomic step.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from processor.definitions.model import Catalog, Metric
from tests.reference.codec import TRAITS_BUCKET, Fields, changed_fields, load_bucket
from tests.reference.engine import Engine
from tests.reference.engine.state import EntitiesState, MetricState, merge_states
from tests.reference.engine.summary import Summarizer, Summary
from tests.reference.engine.windows import window_bounds
from tests.reference.events import InputFormat, InvalidEvent, parse_event
from tests.reference.payloads import BucketWrite, NewIds, PackedWrites
from tests.reference.store import APPLIED, DUPLICATES, INVALID_PREFIX, StoredPartition


def definition_fingerprint(metric: Metric) -> str:
    """Changes when anything that shapes a metric's state changes (not its title or alert)."""
    shape = metric.model_dump(
        mode="json",
        by_alias=True,
        include={"window", "bucket", "segments", "entities", "aggregate"},
    )
    return hashlib.sha256(orjson.dumps(shape, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def _merge_delta(states: dict[str, MetricState], delta: dict[str, MetricState]) -> None:
    """`Engine.merge_states`, taking over the delta's entity cells that the mirror lacks.

    A batch's delta is dropped once its writes are encoded, so copying those cells (which a
    general merge must do, to leave its argument unchanged) is wasted work, and most cells of a
    batch are new in their bucket.
    """
    for name, theirs in delta.items():
        mine = states[name]
        if not (isinstance(mine, EntitiesState) and isinstance(theirs, EntitiesState)):
            merge_states(mine, theirs)
            continue
        shape = mine.shape
        if theirs.traits is not None and mine.traits is not None:
            mine.traits.merge(theirs.traits)
        for bucket, cells in theirs.buckets.items():
            stored = mine.buckets.get(bucket)
            if stored is None:
                mine.buckets[bucket] = dict(cells)
                continue
            for entity, cell in cells.items():
                existing = stored.get(entity)
                if existing is None:
                    stored[entity] = cell
                else:
                    existing.merge(cell, shape)


# The expiry of a trait history's write: never, it goes with its metric (store/codec.py).
KEPT_UNTIL_DROPPED = 2**63 - 1


class Record(Protocol):
    """A message as a batch needs it: aiokafka's records have these, so none is copied."""

    @property
    def offset(self) -> int: ...

    @property
    def value(self) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class Message:
    """A record built by hand (tests, files)."""

    offset: int
    value: bytes | None


@dataclass
class InvalidMessage:
    offset: int
    value: bytes | None
    reason: str
    detail: str


@dataclass
class BatchOutcome:
    applied: int = 0
    skipped: int = 0  # already applied before a restart (offset at or below the stored one)
    duplicates: int = 0
    invalid: list[InvalidMessage] = field(default_factory=list)
    late: Counter[str] = field(default_factory=Counter)
    writes: PackedWrites = field(default_factory=PackedWrites)
    ids: NewIds = field(default_factory=NewIds)
    previous_offset: int | None = None
    new_offset: int | None = None
    max_ts: int | None = None

    def counts(self) -> dict[str, int]:
        """What the batch held, in the stored counts' names (store/partition_store.py)."""
        counts = {APPLIED: self.applied, DUPLICATES: self.duplicates}
        for reason, n in Counter(i.reason for i in self.invalid).items():
            counts[INVALID_PREFIX + reason] = n
        return counts


def covered_metrics(catalog: Catalog, metrics: Collection[str] | None) -> list[str]:
    """The metrics with a state of their own (not formulas) among `metrics` (all when None)."""
    return [
        m.name for m in catalog if m.kind != "formula" and (metrics is None or m.name in metrics)
    ]


class PartitionState:
    def __init__(
        self,
        catalog: Catalog,
        partition: int,
        held: Collection[str] | None = None,
        input_format: InputFormat = "nsm",
        metrics: Collection[str] | None = None,
    ) -> None:
        """`metrics`: the metrics this state covers (every one when None; a rebuild covers the
        metrics it rebuilds). `held`: those of them kept in its Python engine (all when None; a
        subclass keeps the others elsewhere). Event ids are deduplicated by the rule of the
        whole catalogue (docs/semantics.md), whichever metrics are covered. `input_format`: how
        messages read (NSM_INPUT_FORMAT)."""
        self.catalog = catalog
        self.partition = partition
        self.input_format: InputFormat = input_format
        covered = covered_metrics(catalog, metrics)
        self.engine = Engine(catalog, only=covered if held is None else held)
        self._scratch = Engine(catalog, only=covered if held is None else held)
        self._summarizer = Summarizer(self.engine)
        self.offset: int | None = None
        self.max_ts: int | None = None
        self._seen: dict[str, int] = {}
        self._window_of = {
            m.name: (m.bucket_ms, m.buckets_in_window) for m in catalog if m.kind != "formula"
        }
        self._longest_window_ms = self.engine.longest_window_ms
        self.fingerprints = {name: definition_fingerprint(catalog[name]) for name in covered}
        # Readiness (processor/worker/rebuild.py): the metrics whose state still lacks the events
        # of a rebuild group (metric -> group), the offset a partition that started from the
        # topic's beginning must reach before any metric is complete, and per metric the time
        # from which its state holds every event (absent: all of them).
        self.pending: dict[str, str] = {}
        self.ready_at: int | None = None
        self.covered: dict[str, int] = {}

    # ---- restore --------------------------------------------------------------------------

    def restore(self, stored: StoredPartition) -> list[str]:
        """Load what Redis holds; returns the metrics whose stored state was built from another
        version of their definition (dropped: their numbers start again from here)."""
        self.offset, self.max_ts = stored.offset, stored.max_ts
        self._seen = dict(stored.seen)
        changed = [
            name
            for name, fingerprint in self.fingerprints.items()
            if stored.definitions.get(name, fingerprint) != fingerprint
        ]
        for (metric, bucket), fields in stored.buckets.items():
            if metric in self.engine.states and metric not in changed:
                load_bucket(self.engine.states[metric], bucket, fields)
        return changed

    # ---- one batch ------------------------------------------------------------------------

    def apply_batch(
        self,
        messages: Sequence[Record],
        now_ms: int,
        max_future_skew_ms: int,
        event_clock: bool,
        drop_late: bool = True,
    ) -> BatchOutcome:
        """Apply a batch (in offset order) to the mirror; say what to write and to report.

        With the wall clock, lateness is judged against `now_ms`; with the event clock, against
        the newest event time seen so far in this partition. `drop_late=False` applies every
        event whatever its lateness: a replay keeps all buckets until it ends, so that its history
        at every past boundary counts events that arrived after newer ones.
        """
        outcome = BatchOutcome(previous_offset=self.offset)
        clock = self.max_ts if event_clock else now_ms
        batch_ids: dict[str, int] = {}
        # Per message, only locals: what does not change within the batch is read once here, and
        # the counters are written back to the outcome after the loop.
        stored_offset = self.offset
        seen = self._seen
        horizon_of = self.engine.horizon
        apply = self._scratch.apply
        late = outcome.late
        invalid = outcome.invalid
        applied = skipped = duplicates = 0
        new_offset: int | None = None
        max_ts: int | None = None
        for message in messages:
            offset = message.offset
            if stored_offset is not None and offset <= stored_offset:
                skipped += 1
                continue
            new_offset = offset
            event = parse_event(message.value, now_ms, max_future_skew_ms, self.input_format)
            if type(event) is InvalidEvent:
                invalid.append(InvalidMessage(offset, message.value, event.reason, event.detail))
                continue
            assert not isinstance(event, InvalidEvent)
            ts_ms = event.ts_ms
            event_id = event.event_id
            if event_id is not None:
                horizon = batch_ids.get(event_id, seen.get(event_id))
                if horizon is not None and ts_ms < horizon:
                    duplicates += 1
                    continue
                batch_ids[event_id] = horizon_of(ts_ms)
            if event_clock and (clock is None or ts_ms > clock):
                clock = ts_ms
            for metric in apply(event, offset, clock if drop_late else None):
                late[metric] += 1
            applied += 1
            if max_ts is None or ts_ms > max_ts:
                max_ts = ts_ms
        outcome.applied, outcome.skipped, outcome.duplicates = applied, skipped, duplicates
        outcome.new_offset, outcome.max_ts = new_offset, max_ts
        if outcome.new_offset is None:
            return outcome
        prune_clock = self._trait_clock(outcome, now_ms, event_clock, drop_late)
        outcome.writes = self._merge_python_delta(self._scratch.take_states(), prune_clock)
        self._seen.update(batch_ids)
        outcome.ids = NewIds.pack(batch_ids.items())
        self._advance(outcome)
        return outcome

    def _advance(self, outcome: BatchOutcome) -> None:
        """The batch is applied: its offset is the partition's, its newest event time counts."""
        self.offset = outcome.new_offset
        if outcome.max_ts is not None and (self.max_ts is None or outcome.max_ts > self.max_ts):
            self.max_ts = outcome.max_ts

    def _write(self, metric: str, bucket: int, fields: Fields) -> BucketWrite:
        """A bucket's changed fields, stored until the bucket leaves the metric's window."""
        bucket_ms, n = self._window_of[metric]
        return BucketWrite(metric, bucket, (bucket + n) * bucket_ms, fields)

    def _trait_clock(
        self, outcome: BatchOutcome, now_ms: int, event_clock: bool, drop_late: bool
    ) -> int | None:
        """The clock a batch leaves behind for lateness (call before `_advance`), as of which
        the trait histories it writes are pruned; None when late events are applied too (a
        replay): an event of any age may then need any value."""
        if not drop_late:
            return None
        if not event_clock:
            return now_ms
        newest = [t for t in (self.max_ts, outcome.max_ts) if t is not None]
        return max(newest) if newest else None

    def _merge_python_delta(
        self, delta: dict[str, MetricState], prune_clock: int | None
    ) -> PackedWrites:
        """Merge a batch's delta into the mirror; returns the changed fields to write.

        The trait histories of the accounts the batch touched are pruned to the window as of
        `prune_clock`, then written whole: pruned here and nowhere else, what the store holds
        of an account's history is what the mirror holds, and a restored partition goes on as
        this one does (traits.py)."""
        _merge_delta(self.engine.states, delta)
        self._summarizer.touched(delta)
        writes = [
            self._write(name, bucket, changed_fields(self.engine.states[name], state, bucket))
            for name, state in delta.items()
            for bucket in state.buckets
        ]
        for name, state in delta.items():
            if isinstance(state, EntitiesState) and state.traits is not None:
                mirror = self.engine.states[name]
                assert isinstance(mirror, EntitiesState) and mirror.traits is not None
                if prune_clock is not None:
                    metric = self.engine.entities_metrics[name]
                    mirror.traits.prune(window_bounds(prune_clock, metric).first, state.traits)
                traits = {ref.encode(): mirror.traits.encode(ref) for ref in state.traits}
                if traits:
                    writes.append(BucketWrite(name, TRAITS_BUCKET, KEPT_UNTIL_DROPPED, traits))
        return PackedWrites.pack(writes)

    def summarize(self, as_of_ms: int) -> Summary:
        return self._summarizer.summarize(as_of_ms)

    # ---- readiness and hand-over (processor/worker/rebuild.py) ------------------------------

    def ready_fingerprints(self) -> dict[str, str]:
        """The metrics whose state is complete, with the fingerprints it is complete for."""
        if self.ready_at is not None:
            return {}
        return {m: fp for m, fp in self.fingerprints.items() if m not in self.pending}

    def take_over(self, rebuilt: StoredPartition, metrics: Collection[str]) -> PackedWrites:
        """Merge what a rebuild stored for `metrics` (their events before the live stream took
        them on; its buckets as Redis holds them) into this state; returns the merged cells to
        write. The metrics stay pending until the caller has written them."""
        delta = {m: s for m, s in self._scratch.new_states().items() if m in metrics}
        for (metric, bucket), fields in rebuilt.buckets.items():
            if metric in delta:
                load_bucket(delta[metric], bucket, fields)
        # Not pruned here: the trait histories merged are each pruned as their batches wrote
        # them, and are written whole, so the store holds what the mirror holds (traits.py).
        return self._merge_python_delta(delta, None)

    # ---- time passing ---------------------------------------------------------------------

    def expire(self, clock_ms: int) -> None:
        self.engine.expire(clock_ms)
        forget = self.forget_ids_until(clock_ms)
        self._seen = {i: h for i, h in self._seen.items() if h > forget}

    def forget_ids_until(self, clock_ms: int) -> int:
        """Ids whose horizon is at or before this may go (docs/semantics.md, Dedup).

        Two longest windows back, not one: a repeat of a forgotten id timestamped before its
        horizon is late for every metric, but it registers the id again with a horizon of its
        own, up to a window later. One window back, that horizon could still reach the window
        and make a later event a duplicate that `nsm compute` counts.
        """
        return clock_ms - 2 * self._longest_window_ms + 1

    @property
    def seen_ids(self) -> int:
        return len(self._seen)
