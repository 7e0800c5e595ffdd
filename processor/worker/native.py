"""A partition whose `entities` metrics live in the native core (native/, the nsm_native module).

`PartitionState` (partition.py) is the reference: it runs every event through the Python engine.
`NativePartitionState` gives the same outcome, state and summaries with the per-event work in
native code. The native core decodes, validates, deduplicates and applies each event to the
entities metrics whose conditions count or take distinct values; it stops at any event it cannot
decide with certainty, and the Python engine applies that one (its cells are then merged into the
native metrics). Aggregates and entities metrics with a `sum` stay in a Python engine, fed the
events the native core lists for them. tests/unit/worker/test_native_partition.py checks both
classes against each other on generated batches.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import orjson
from nsm_native import EventFailed, Partition

from processor.definitions.model import Catalog, Filter, FilterOps
from processor.engine import Engine
from processor.engine.entities import SUM, EntitiesMetric
from processor.engine.state import EntitiesState, MetricState, merge_states
from processor.engine.summary import Additive, Number, Summary
from processor.engine.traits import GROUP_CALL
from processor.events import (
    UNPROCESSABLE,
    InputFormat,
    InvalidEvent,
    MessageFailed,
    failure_detail,
    parse_event,
)
from processor.store.codec import encode_cell
from processor.store.partition_store import StoredPartition
from processor.store.payloads import NewIds, PackedWrites
from processor.worker.partition import (
    BatchOutcome,
    InvalidMessage,
    PartitionState,
    Record,
    covered_metrics,
)


def _tests(spec: Filter) -> list[dict[str, Any]]:
    """A `where` entry as the native core reads it: operators that must all hold."""
    if not isinstance(spec, FilterOps):
        return [{"op": "eq", "value": spec}]
    given = spec.model_fields_set
    tests: list[dict[str, Any]] = []
    if "in_" in given:
        tests.append({"op": "in", "value": spec.in_ or []})
    if "not_in" in given:
        tests.append({"op": "not_in", "value": spec.not_in or []})
    if "not_" in given:
        tests.append({"op": "not", "value": spec.not_})
    for op in ("gt", "gte", "lt", "lte"):
        bound = getattr(spec, op)
        if bound is not None:
            tests.append({"op": op, "value": bound})
    if spec.exists is not None:
        tests.append({"op": "exists", "value": spec.exists})
    return tests


def _native_metric(catalog: Catalog, metric: EntitiesMetric) -> bytes | None:
    """The native core's form of an entities metric, or None when it stays in Python."""
    if any(c.kind == SUM for c in metric.conditions):
        return None  # exact decimal sums stay with Python's Decimal
    if metric.trait_fields:
        return None  # account traits (group calls) are looked up by the Python engine
    model = catalog[metric.name].entities
    assert model is not None
    spec = {
        "name": metric.name,
        "bucket_ms": metric.bucket_ms,
        "buckets": metric.buckets_in_window,
        "key": model.key,
        "segments": list(metric.segment_fields),
        "conditions": [
            {
                "types": None if compiled.types is None else sorted(compiled.types),
                "where": [[name, _tests(spec)] for name, spec in written.where.items()],
                "kind": compiled.kind,
                "slot": compiled.slot,
                "field": compiled.field,
                "cap": compiled.cap,
                "needed": compiled.needed,
            }
            for compiled, written in zip(metric.conditions, model.all, strict=True)
        ],
    }
    try:
        return orjson.dumps(spec)
    except orjson.JSONEncodeError:
        return None  # a bound JSON cannot carry (infinite, or an integer beyond 64 bits)


class NativePartitionState(PartitionState):
    def __init__(
        self,
        catalog: Catalog,
        partition: int,
        input_format: InputFormat = "nsm",
        metrics: Collection[str] | None = None,
    ) -> None:
        """`metrics`: the metrics covered (all when None), as for `PartitionState`."""
        covered = covered_metrics(catalog, metrics)
        full = Engine(catalog, only=covered)
        native: dict[str, bytes] = {}
        for name, metric in full.entities_metrics.items():
            spec = _native_metric(catalog, metric)
            if spec is not None:
                native[name] = spec
        self.native_metrics = frozenset(native)
        python = [name for name in covered if name not in native]
        # Python keeps the other metrics; events the native core defers run through `_full`.
        super().__init__(
            catalog, partition, held=python, metrics=covered, input_format=input_format
        )
        python_types: list[list[str] | None] = []
        for name in python:
            if name in full.aggregate_metrics:
                types = full.aggregate_metrics[name].types
                python_types.append(None if types is None else sorted(types))
            else:
                entities = full.entities_metrics[name]
                for condition in entities.conditions:
                    types = condition.types
                    python_types.append(None if types is None else sorted(types))
                if entities.trait_fields:
                    python_types.append([GROUP_CALL])  # its accounts' traits
        spec = b'{"horizon":%b,"python_types":%b,"input_format":%b,"metrics":[%b]}' % (
            orjson.dumps(full.horizon_terms),
            orjson.dumps(python_types),
            orjson.dumps(input_format),
            b",".join(native.values()),
        )
        self._native = Partition(spec.decode())
        self._full = full
        self._segments = {name: full.entities_metrics[name].segment_fields for name in native}

    def restore(self, stored: StoredPartition) -> list[str]:
        python_buckets = {
            key: fields
            for key, fields in stored.buckets.items()
            if key[0] not in self.native_metrics
        }
        changed = super().restore(
            StoredPartition(stored.offset, stored.max_ts, stored.definitions, python_buckets)
        )
        self._native.set_seen(list(stored.seen.items()))
        for (metric, bucket), fields in stored.buckets.items():
            if metric in self.native_metrics and metric not in changed:
                self._native.load_bucket(metric, bucket, fields)
        return changed

    def apply_batch(
        self,
        messages: Sequence[Record],
        now_ms: int,
        max_future_skew_ms: int,
        event_clock: bool,
        drop_late: bool = True,
        unprocessable: Mapping[int, str] | None = None,
    ) -> BatchOutcome:
        """`PartitionState.apply_batch`, but a message that fails raises MessageFailed (its
        offset and detail), and this state is then unusable: the native core changes its state
        in place, event by event, so the failed message may be partly applied. Restore the
        partition from what is stored and apply the batch again, with that message among
        `unprocessable` ({offset: detail}), which are then counted as such and skipped."""
        native = self._native
        outcome = BatchOutcome(previous_offset=self.offset)
        records = messages if type(messages) is list else list(messages)
        failed_offsets: set[int] = set()
        if unprocessable:
            stored = -1 if self.offset is None else self.offset
            failed_offsets = {r.offset for r in records if r.offset in unprocessable
                              and r.offset > stored}  # fmt: skip
            if failed_offsets:
                records = [r for r in records if r.offset not in unprocessable]
        clock = self.max_ts if event_clock else now_ms
        native.begin(
            records, self.offset, clock, event_clock, drop_late, now_ms, max_future_skew_ms
        )
        late = outcome.late
        offset = -1  # of the record Python is working on (the native core names its own)
        try:
            index = native.run(0)
            while index < len(records):
                message = records[index]
                offset = message.offset
                event = parse_event(message.value, now_ms, max_future_skew_ms, self.input_format)
                if type(event) is InvalidEvent:
                    outcome.invalid.append(
                        InvalidMessage(message.offset, message.value, event.reason, event.detail)
                    )
                else:
                    assert not isinstance(event, InvalidEvent)
                    admitted, lateness_clock = native.admit(event.event_id, event.ts_ms)
                    if admitted:
                        for metric in self._full.apply(event, message.offset, lateness_clock):
                            late[metric] += 1
                index = native.run(index + 1)
        except EventFailed as failure:
            index, what = failure.args
            raise MessageFailed(records[index].offset, what) from failure
        except Exception as error:
            raise MessageFailed(offset, failure_detail(error)) from error
        deferred = self._take_deferred()
        (applied, skipped, duplicates, new_offset, max_ts, native_late, python_events, ids,
         native_writes) = native.finish()  # fmt: skip
        late.update(native_late)
        try:
            for index, lateness_clock in python_events:
                message = records[index]
                offset = message.offset
                event = parse_event(message.value, now_ms, max_future_skew_ms, self.input_format)
                assert not isinstance(event, InvalidEvent), "the native core took it as valid"
                for metric in self._scratch.apply(event, message.offset, lateness_clock):
                    late[metric] += 1
        except Exception as error:
            raise MessageFailed(offset, failure_detail(error)) from error
        if failed_offsets:
            for message in messages:
                if message.offset in failed_offsets:
                    detail = unprocessable[message.offset]  # type: ignore[index]
                    outcome.invalid.append(
                        InvalidMessage(message.offset, message.value, UNPROCESSABLE, detail)
                    )
            outcome.invalid.sort(key=lambda invalid: invalid.offset)
            newest_failed = max(failed_offsets)
            if new_offset is None or newest_failed > new_offset:
                new_offset = newest_failed
        outcome.applied, outcome.skipped, outcome.duplicates = applied, skipped, duplicates
        outcome.new_offset, outcome.max_ts = new_offset, max_ts
        if new_offset is None:
            return outcome
        delta = self._scratch.take_states()
        for name, state in deferred.items():
            merge_states(delta[name], state)
        members, items = native_writes
        prune_clock = self._trait_clock(outcome, now_ms, event_clock, drop_late)
        outcome.writes = self._merge_python_delta(delta, prune_clock) + PackedWrites(
            members, (items,)
        )
        outcome.ids = NewIds(*ids)
        self._advance(outcome)
        return outcome

    def take_over(self, rebuilt: StoredPartition, metrics: Collection[str]) -> PackedWrites:
        native = {m for m in metrics if m in self.native_metrics}
        for (metric, bucket), fields in rebuilt.buckets.items():
            if metric in native:
                # The stored cells are in the native core's own encoding: merged as they are.
                cells = [(entity.decode(), raw) for entity, raw in fields.items()]
                self._native.merge_cells(metric, bucket, cells)
        python = super().take_over(rebuilt, [m for m in metrics if m not in native])
        # The merged cells are the touched cells of an empty batch: packed as a batch's are.
        self._native.begin([], self.offset, None, False, True, 0, 0)
        members, items = self._native.finish()[8]
        return python + PackedWrites(members, (items,))

    def _take_deferred(self) -> dict[str, MetricState]:
        """The deferred events' states: their cells of native metrics go into the native core
        (before it packs the batch's writes); the states of Python metrics are returned."""
        python: dict[str, MetricState] = {}
        for name, state in self._full.take_states().items():
            if name not in self.native_metrics:
                python[name] = state
                continue
            assert isinstance(state, EntitiesState)
            for bucket, cells in state.buckets.items():
                encoded = [(entity, encode_cell(cell)) for entity, cell in cells.items()]
                self._native.merge_cells(name, bucket, encoded)
        return python

    def summarize(self, as_of_ms: int) -> Summary:
        summary = super().summarize(as_of_ms)
        for name, (total, per_field) in self._native.summarize(as_of_ms).items():
            breakdowns: dict[str, dict[str, Number]] = {
                field: dict(counts)
                for field, counts in zip(self._segments[name], per_field, strict=True)
            }
            summary[name] = Additive(total, breakdowns)
        return summary

    def expire(self, clock_ms: int) -> None:
        self.engine.expire(clock_ms)
        self._native.expire(clock_ms)
        self._native.forget_ids(self.forget_ids_until(clock_ms))

    def native_cells(self, metric: str) -> dict[int, dict[str, bytes]]:
        """A native metric's cells as Redis holds them, {bucket: {entity: cell}}."""
        return self._native.cells(metric)

    @property
    def seen_ids(self) -> int:
        return int(self._native.seen_count())
