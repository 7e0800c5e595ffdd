"""One Kafka partition's state and how a batch of its messages changes it. No I/O.

The state lives in the engine (nsm_native.Partition, native/engine/src/partition.rs): per batch it
validates and deduplicates the messages, applies them, prunes the state as of the clock (unless a
replay keeps its history) and returns what to write: the records of the entities the batch
changed, the aggregate items it changed, its new event ids and the new offset. The store writes
all of it in one atomic, fenced step. This class adds what the store needs to know: the versions
of the definitions the stored state was built with, and the small ids it files each metric under.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import orjson
from nsm_native import EventFailed, Partition, StateWrites, Summary

from processor.definitions.model import Catalog, Metric
from processor.engine.spec import compile_catalog, compile_part
from processor.events import InputFormat, MessageFailed
from processor.store.payloads import NewIds
from processor.store.protocol import (
    APPLIED,
    DUPLICATES,
    INVALID_PREFIX,
    METRIC_ID_PREFIX,
    NEXT_METRIC_ID,
    StoredPartition,
)


def definition_fingerprint(metric: Metric) -> str:
    """Changes when anything that shapes a metric's state changes (not its title or alert)."""
    shape = metric.model_dump(
        mode="json",
        by_alias=True,
        include={"window", "bucket", "segments", "entities", "aggregate"},
    )
    return hashlib.sha256(orjson.dumps(shape, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def fingerprints(catalog: Catalog) -> dict[str, str]:
    """Every metric with a state of its own (not formulas), with its definition's fingerprint."""
    return {m.name: definition_fingerprint(m) for m in catalog if m.kind != "formula"}


def first_metric_ids(catalog: Catalog) -> dict[str, int]:
    """The ids an empty store files the metrics' state under: 1, 2, ... in catalogue order."""
    return {name: i for i, name in enumerate(fingerprints(catalog), start=1)}


def metric_id_marks(metric_ids: Mapping[str, int], next_metric_id: int) -> dict[str, str]:
    """The meta fields that say which id each metric's state is filed under, and the next id."""
    marks = {METRIC_ID_PREFIX + name: str(i) for name, i in metric_ids.items()}
    marks[NEXT_METRIC_ID] = str(next_metric_id)
    return marks


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
    writes: StateWrites | None = None
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


class PartitionState:
    def __init__(
        self,
        catalog: Catalog,
        partition: int,
        keep_history: bool = False,
        input_format: InputFormat = "nsm",
        metrics: Collection[str] | None = None,
    ) -> None:
        """`keep_history`: keep the state whole (a replay evaluates past times at its end).
        `input_format`: how messages read (NSM_INPUT_FORMAT). `metrics`: the metrics covered
        (every one when None; a rebuild covers the metrics it rebuilds), their event ids
        deduplicated by the whole catalogue's rule (docs/semantics.md, Dedup)."""
        self.catalog = catalog
        self.partition = partition
        if metrics is None:
            engine_catalog, covered = compile_catalog(catalog), catalog
        else:
            names = [m.name for m in catalog if m.kind != "formula" and m.name in metrics]
            engine_catalog = compile_part(catalog, names)
            covered = Catalog(metrics={name: catalog[name] for name in names})
        self.native = Partition(engine_catalog, keep_history, input_format)
        self.fingerprints = fingerprints(covered)
        # The ids the stored state files each metric's state under (`restore` reads them).
        self.metric_ids = first_metric_ids(covered)
        self.next_metric_id = len(self.metric_ids) + 1
        self.native.set_metric_ids(sorted(self.metric_ids.items()))
        self.offset: int | None = None
        self.max_ts: int | None = None
        # Readiness (processor/worker/rebuild.py): the metrics whose state still lacks the events
        # of a rebuild group (metric -> group), the offset a partition that started from the
        # topic's beginning must reach before any metric is complete, and per metric the time
        # from which its state holds every event (absent: all of them).
        self.pending: dict[str, str] = {}
        self.ready_at: int | None = None
        self.covered: dict[str, int] = {}

    # The offset and newest event time are kept here too: a batch runs in the engine without the
    # GIL, and the event loop reads them meanwhile (for another partition's telemetry).

    @property
    def seen_ids(self) -> int:
        return self.native.seen_ids

    @property
    def first_bucket_ms(self) -> int | None:
        return self.native.first_bucket_ms

    # ---- restore --------------------------------------------------------------------------

    def restore(self, stored: StoredPartition, clock_ms: int | None = None) -> list[str]:
        """Load what the store holds; returns the metrics whose stored state was built from
        another version of their definition (not read: their numbers start again from here).
        `clock_ms` (default the stored newest event time) prunes what was loaded."""
        changed = [
            name
            for name, fingerprint in self.fingerprints.items()
            if stored.definitions.get(name, fingerprint) != fingerprint
        ]
        self.next_metric_id = max(
            [stored.next_metric_id, *(i + 1 for i in stored.metric_ids.values())]
        )
        self.metric_ids = {}
        for name in self.fingerprints:
            kept = stored.metric_ids.get(name)
            if kept is not None and name not in changed:
                self.metric_ids[name] = kept
            else:
                self.metric_ids[name] = self.next_metric_id
                self.next_metric_id += 1
        self.native.set_metric_ids(sorted(self.metric_ids.items()))
        if stored.legacy is not None:
            fields = [f for f in stored.legacy.fields if f[0] not in changed]
            self.native.restore_legacy(fields, stored.legacy.ids)
        self.native.restore(stored.records, stored.aggregates, stored.ids)
        clock = stored.max_ts if clock_ms is None else clock_ms
        self.native.restored(stored.offset, stored.max_ts, clock)
        self.offset, self.max_ts = stored.offset, stored.max_ts
        return changed

    def id_marks(self) -> dict[str, str]:
        """The meta fields of the ids this state files its metrics under."""
        return metric_id_marks(self.metric_ids, self.next_metric_id)

    # ---- readiness and a rebuild handed over (processor/worker/rebuild.py) ------------------

    def ready_fingerprints(self) -> dict[str, str]:
        """The metrics whose state is complete, with the fingerprints it is complete for."""
        if self.ready_at is not None:
            return {}
        return {m: fp for m, fp in self.fingerprints.items() if m not in self.pending}

    def take_over(self, rebuilt: StoredPartition, metrics: Collection[str]) -> StateWrites:
        """Merge what a rebuild stored for `metrics` (their events before the live stream took
        them on, as the store holds them) into this state; returns what to write: the records
        of the entities it reached and every item of those metrics."""
        ids = [(rebuilt.metric_ids[m], m) for m in metrics if m in rebuilt.metric_ids]
        return self.native.take_over(rebuilt.records, rebuilt.aggregates, ids)

    # ---- one batch ------------------------------------------------------------------------

    def apply_batch(
        self,
        messages: Sequence[Record],
        now_ms: int,
        max_future_skew_ms: int,
        event_clock: bool,
        drop_late: bool = True,
        unprocessable: Mapping[int, str] | None = None,
    ) -> BatchOutcome:
        """Apply a batch (in offset order); say what to write and to report.

        With the wall clock, lateness is judged against `now_ms`; with the event clock, against
        the newest event time seen so far in this partition. `drop_late=False` applies every
        event whatever its lateness (a replay, whose history counts events that arrived after
        newer ones).

        A message the engine fails on (docs/semantics.md, `unprocessable`) raises MessageFailed
        (its offset and what went wrong), and this state is then unusable: the engine changes it
        in place, so the message may be applied in part. Restore the partition from the store and
        apply the batch again with the message among `unprocessable` ({offset: detail}): those
        are invalid, with reason `unprocessable`, and the rest is applied as if they were not
        there."""
        records = messages if type(messages) is list else list(messages)
        try:
            result = self.native.apply_batch(
                records, now_ms, max_future_skew_ms, event_clock, drop_late, unprocessable
            )
        except EventFailed as failure:
            _, offset, detail = failure.args
            raise MessageFailed(offset, detail) from failure
        if result.new_offset is not None:
            self.offset = result.new_offset
        if result.max_ts is not None and (self.max_ts is None or result.max_ts > self.max_ts):
            self.max_ts = result.max_ts
        return BatchOutcome(
            applied=result.applied,
            skipped=result.skipped,
            duplicates=result.duplicates,
            invalid=[
                InvalidMessage(i.offset, records[i.index].value, i.reason, i.detail)
                for i in result.invalid
            ],
            late=Counter(result.late),
            writes=result.writes,
            ids=NewIds(result.ids, result.newest_horizon),
            previous_offset=result.previous_offset,
            new_offset=result.new_offset,
            max_ts=result.max_ts,
        )

    def pass_over(self, last_offset: int) -> BatchOutcome:
        """Offsets up to `last_offset` hold nothing to apply (a record batch that cannot be
        read): the outcome that stores them as passed, so that nothing reads them again."""
        outcome = BatchOutcome(previous_offset=self.offset, new_offset=last_offset)
        self.native.pass_over(last_offset)
        self.offset = self.native.offset
        return outcome

    def summarize(self, as_of_ms: int) -> Summary:
        """Every metric's part as of `as_of_ms` (or as of the clock the state was last pruned at,
        when that is later: `Summary.as_of_ms` says which)."""
        return self.native.summarize(as_of_ms)

    # ---- time passing ---------------------------------------------------------------------

    def expire(self, clock_ms: int) -> StateWrites:
        """Expiry as of the clock: what to write (records trimmed or gone, items gone)."""
        return self.native.expire(clock_ms)

    def compact(self, clock_ms: int) -> StateWrites:
        """The end of a replay: the state pruned and expired as of the clock, written whole."""
        return self.native.compact(clock_ms)

    def all_writes(self) -> StateWrites:
        """The whole state as stored (a migration from the first format writes it)."""
        return self.native.all_writes()

    def forget_ids_until(self, clock_ms: int) -> int:
        """Ids whose horizon is at or before this may go (docs/semantics.md, Dedup)."""
        return self.native.forget_ids_until(clock_ms)
