"""The worker's pure pipeline equals `nsm compute`.

Events are split over partitions and applied in random batches, with expiry, a crash (state
reloaded from what was written) and redelivered messages; then the partitions' summaries are
merged. Between batches the engine prunes each partition's state as of its clock (the compact
state), so this also holds pruning to `nsm compute`, which keeps its state whole. Redis is
replaced by a dict here; the real one is tested end to end.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any

import msgpack
import nsm_native
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.engine import compute_metrics
from processor.engine.compute import ComputeResult
from processor.engine.summaries import decode_summary, encode_summary, finish, merge_summaries
from processor.partition.state import BatchOutcome, Message, PartitionState
from processor.store.partition_store import StoredPartition
from tests.strategies import KEY_FIELDS, Scenario, catalog_of, scenarios

PARTITIONS = 3


def _raw_bytes(item: Any) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode()
    return orjson.dumps(item)


def _lookup(data: dict[str, Any], path: str) -> Any:
    if "." not in path:
        properties = data.get("properties")
        nested = properties.get(path) if isinstance(properties, dict) else None
        return nested if data.get(path) is None else data[path]
    current: Any = data
    for part in path.split("."):
        current = current.get(part) if isinstance(current, dict) else None
    return current


def label(value: Any) -> str:
    found = nsm_native.label(
        _raw_bytes(value) if not isinstance(value, str) else orjson.dumps(value)
    )
    assert found is not None
    return found


def _label(value: Any) -> str | None:
    return None if value is None else label(value)


def partition_of_each(raw: list[Any], choose: st.DataObject) -> list[int]:
    """Events sharing an entity key value or an event id land in one partition (union-find)."""
    parent: dict[Any, Any] = {}

    def find(x: Any) -> Any:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    anchors: list[Any] = []
    for index, item in enumerate(raw):
        anchor = ("event", index)
        find(anchor)
        try:
            data = orjson.loads(_raw_bytes(item))
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            # Entities are identified by label, so `1` and `"1"` are one entity: link by label.
            links = [("key", p, _label(_lookup(data, p))) for p in set(KEY_FIELDS)]
            if data.get("event_id") is not None:
                links.append(("id", label(data["event_id"]), ""))
            for link in links:
                parent[find(link)] = find(anchor)
        anchors.append(anchor)
    components: dict[Any, int] = {}
    out = []
    for anchor in anchors:
        root = find(anchor)
        if root not in components:
            components[root] = choose.draw(st.integers(0, PARTITIONS - 1))
        out.append(components[root])
    return out


def _pairs(packed: bytes) -> list[tuple[bytes, bytes]]:
    flat = msgpack.unpackb(packed, raw=True)
    return list(zip(flat[::2], flat[1::2], strict=True))


def messages_per_partition(raw: list[Any], choose: st.DataObject) -> dict[int, list[Message]]:
    """The raw events as each partition's messages, offsets from 0 (`partition_of_each`)."""
    per_partition: dict[int, list[Message]] = defaultdict(list)
    for item, partition in zip(raw, partition_of_each(raw, choose), strict=True):
        queue = per_partition[partition]
        queue.append(Message(len(queue), _raw_bytes(item)))
    return per_partition


class DictStore:
    """What Redis would hold for one partition (format 2), built only from the writes the
    worker plans."""

    def __init__(self, state: PartitionState) -> None:
        self.records: dict[bytes, bytes] = {}
        self.aggregates: dict[bytes, bytes] = {}
        self.ids: list[tuple[int, bytes]] = []  # (newest horizon, the batch's packed ids)
        self.offset: int | None = None
        self.max_ts: int | None = None
        self.metric_ids = dict(state.metric_ids)
        self.next_metric_id = state.next_metric_id
        self.definitions = dict(state.fingerprints)

    def apply(self, writes: nsm_native.StateWrites | None) -> None:
        if writes is None:
            return
        self.records.update(_pairs(writes.records))
        for gone in msgpack.unpackb(writes.record_deletes, raw=True):
            self.records.pop(gone, None)
        self.aggregates.update(_pairs(writes.aggregates))
        for gone in msgpack.unpackb(writes.aggregate_deletes, raw=True):
            self.aggregates.pop(gone, None)

    def write(self, outcome: BatchOutcome) -> None:
        if outcome.new_offset is None:
            return
        self.apply(outcome.writes)
        if outcome.ids.newest is not None:
            self.ids.append((outcome.ids.newest, outcome.ids.packed))
        self.offset = outcome.new_offset
        if outcome.max_ts is not None:
            self.max_ts = max(outcome.max_ts, self.max_ts or outcome.max_ts)

    def expire_ids(self, forget: int) -> None:
        self.ids = [(newest, packed) for newest, packed in self.ids if newest > forget]

    def stored(self) -> StoredPartition:
        return StoredPartition(
            self.offset, self.max_ts, dict(self.definitions), dict(self.metric_ids),
            self.next_metric_id, list(self.records.items()),
            list(self.aggregates.items()), [packed for _, packed in self.ids],
        )  # fmt: skip


@pytest.mark.parametrize("event_clock", [True, False])
@settings(max_examples=100, deadline=None)
@given(scenario=scenarios(), choose=st.data())
def test_partitioned_batches_with_a_crash_equal_compute(
    event_clock: bool, scenario: Scenario, choose: st.DataObject
):
    catalog = catalog_of(scenario.metrics)
    raw = copy.deepcopy(scenario.raw)
    now = scenario.now_ms
    per_partition = messages_per_partition(raw, choose)

    states: list[PartitionState] = []
    for partition, messages in per_partition.items():
        state = PartitionState(catalog, partition)
        store = DictStore(state)
        position = 0
        crash_at = choose.draw(st.integers(0, len(messages)))
        crashed = False
        while position < len(messages):
            size = choose.draw(st.integers(1, 6))
            batch = messages[position : position + size]
            outcome = state.apply_batch(batch, now, 300_000, event_clock)
            store.write(outcome)
            position += len(batch)
            clock = state.max_ts if event_clock else now
            if clock is not None and choose.draw(st.booleans()):
                store.apply(state.expire(clock))
                store.expire_ids(state.forget_ids_until(clock))
            if not crashed and position >= crash_at:
                crashed = True
                state = PartitionState(catalog, partition)
                state.restore(store.stored(), None if event_clock else now)
                # Kafka redelivers what was not committed: it must be skipped, not counted twice.
                redelivered = choose.draw(st.integers(0, position))
                again = state.apply_batch(messages[redelivered:position], now, 300_000, event_clock)
                assert again.applied == 0 and again.skipped == position - redelivered
        states.append(state)

    if event_clock:
        # The event clock: the newest applied event of any partition.
        newest = [s.max_ts for s in states if s.max_ts is not None]
        as_of = max(newest) if newest else now
        expected = compute_metrics(copy.deepcopy(scenario.raw), catalog, now_ms=now).to_json()
        if not newest:
            expected["as_of"] = ComputeResult(as_of, {}).to_json()["as_of"]
    else:
        as_of = now
        expected = compute_metrics(
            copy.deepcopy(scenario.raw), catalog, at_ms=now, now_ms=now
        ).to_json()
    summaries = [
        decode_summary(catalog, encode_summary(catalog, s.summarize(as_of))) for s in states
    ]
    assert all(s.as_of_ms == as_of for s in summaries)
    values = finish(catalog, merge_summaries(catalog, summaries))
    assert ComputeResult(as_of, values).to_json() == expected


def test_a_late_repeat_of_a_forgotten_id_does_not_hide_a_later_event():
    """Found by a long run of the test above: an id forgotten one window back came again in a
    late repeat, which registered it with a new horizon reaching into the window, and a later
    event with that id, new by the rule, was then dropped as a duplicate."""
    metrics = [
        {"name": "reports", "tier": "north_star", "window": "3m", "bucket": "1m",
         "aggregate": {"event": "report.sent", "count": True}},
    ]  # fmt: skip
    catalog = catalog_of(metrics)
    minute = 60_000
    start = 1_795_168_800_000  # a bucket boundary
    raw = [
        {"type": "report.sent", "timestamp": start + 3 * minute - 1},  # the clock
        {"type": "report.sent", "timestamp": start - 3 * minute, "event_id": "e"},  # late
        {"type": "report.sent", "timestamp": start - 2 * minute, "event_id": "e"},  # late repeat
        {"type": "report.sent", "timestamp": start, "event_id": "e"},  # at the horizon: new
    ]
    messages = [Message(i, orjson.dumps(event)) for i, event in enumerate(raw)]
    state = PartitionState(catalog, 0)
    state.apply_batch(messages[:2], start, 300_000, event_clock=True)
    assert state.max_ts is not None
    state.expire(state.max_ts)
    state.apply_batch(messages[2:], start, 300_000, event_clock=True)
    values = finish(catalog, merge_summaries(catalog, [state.summarize(state.max_ts)]))
    expected = compute_metrics(raw, catalog, now_ms=start)
    assert expected.values["reports"].value == 2
    assert values["reports"].value == 2
