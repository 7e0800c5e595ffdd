"""A definition change handed over without a gap equals `nsm compute` with the new definitions.

The pure steps of the worker's automatic backfill (processor/worker/rebuild.py), on generated
definitions and streams: a partition runs on the old definitions up to an offset L; it is then
restored with new ones (some metrics added, some defined differently, some removed); the live
state applies the rest of the partition while a rebuild state applies the partition's beginning up
to L, each with a crash of its own at any moment (the live one restored while the rebuild is
still pending); the rebuilt metrics are handed over, and the merged state, also as written and
read back, gives every metric as `nsm compute` does over the whole stream with the new
definitions. Redis is replaced by a dict here; the real one is tested end to
end (tests/integration/worker/test_worker_backfill.py).
"""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.engine import compute_metrics
from processor.engine.compute import ComputeResult
from processor.engine.summary import decode_summary, encode_summary, finish, merge_summaries
from processor.store.partition_store import StoredPartition
from processor.store.payloads import PackedWrites
from processor.worker.native import NativePartitionState
from processor.worker.partition import Message, PartitionState
from processor.worker.rebuild import (
    HORIZON,
    PENDING,
    fingerprints,
    horizon_mark,
    pending_token,
    plan_restore,
)
from tests.strategies import BASE_MS, Scenario, catalog_of, scenarios
from tests.unit.worker.test_partitioned_processing import (
    PARTITIONS,
    DictStore,
    messages_per_partition,
)

SKEW = 300_000


@st.composite
def old_definitions(draw: st.DrawFn, metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The definitions before the change: no formulas (they have no state), and each metric
    kept, left out (it is new after the change) or defined otherwise (its segments differ)."""
    old = []
    for metric in metrics:
        if "formula" in metric:
            continue
        fate = draw(st.sampled_from(["kept", "kept", "new", "changed"]))
        if fate == "kept":
            old.append(metric)
        elif fate == "changed":
            segments = [] if metric.get("segments") else ["plan"]
            old.append({**metric, "segments": segments})
    # A metric only the old definitions have: removed by the change.
    if draw(st.booleans()):
        gone = dict(draw(st.sampled_from([m for m in metrics if "formula" not in m])))
        old.append({**gone, "name": "gone"})
    return old


def _apply(state: PartitionState, store: DictStore, batch: list[Message], now: int) -> None:
    store.write(state.apply_batch(batch, now, SKEW, event_clock=True))


def _maybe_expire(state: PartitionState, store: DictStore, choose: st.DataObject) -> None:
    if state.max_ts is not None and choose.draw(st.booleans()):
        state.expire(state.max_ts)
        store.expire(state.max_ts, state.forget_ids_until(state.max_ts))


def _restored(
    cls: type[PartitionState], catalog: Any, partition: int, stored: StoredPartition,
    metrics: Any = None,
) -> PartitionState:  # fmt: skip
    state = cls(catalog, partition) if metrics is None else cls(catalog, partition, metrics=metrics)
    state.restore(stored)
    return state


def _write_cells(store: DictStore, writes: PackedWrites) -> None:
    for w in writes.unpack():
        store.buckets[(w.metric, w.bucket)].update(w.fields)
        store.expires[(w.metric, w.bucket)] = w.expires_at_ms


def _restarted(
    cls: type[PartitionState], catalog: Any, partition: int, store: DictStore,
    live: PartitionState,
) -> PartitionState:  # fmt: skip
    """The live state after a restart (kill -9, a rebalance, a reload with the same definitions):
    restored as the worker restores it, from what the store holds and the marks it wrote."""
    stored = store.stored()
    stored.definitions = fingerprints(catalog)
    stored.marks = {HORIZON: horizon_mark(catalog)}
    if live.pending:
        stored.marks[PENDING] = pending_token(live.pending)
    plan = plan_restore(stored, catalog, 0)
    assert not plan.reset and not plan.changed and not plan.drop
    assert plan.pending == live.pending
    # What the worker loads (runtime.py, `_restore`): the buckets of `plan.load`.
    stored.buckets = {k: v for k, v in stored.buckets.items() if k[0] in plan.load}
    again = _restored(cls, catalog, partition, stored)
    again.pending = dict(plan.pending)
    return again


def _run_partition(
    cls: type[PartitionState], old: Any, new: Any, partition: int, messages: list[Message],
    now: int, choose: st.DataObject,
) -> PartitionState:  # fmt: skip
    """The partition on the old definitions up to L, then restored with the new ones."""
    split = choose.draw(st.integers(0, len(messages)), label="L")
    live, store = cls(old, partition), DictStore()
    position = 0
    while position < split:
        size = choose.draw(st.integers(1, 6))
        _apply(live, store, messages[position : min(split, position + size)], now)
        position = min(split, position + size)
        _maybe_expire(live, store, choose)
    stored = store.stored()
    stored.definitions = fingerprints(old)
    stored.marks = {HORIZON: horizon_mark(old)}
    plan = plan_restore(stored, new, now)
    if plan.reset:
        # The dedup horizon changed, or nothing was applied: the partition starts again from the
        # topic's beginning with the new definitions (and nothing is complete until it is done).
        assert stored.offset is None or horizon_mark(old) != horizon_mark(new)
        live, store = cls(new, partition), DictStore()
        for start in range(0, len(messages), 4):
            _apply(live, store, messages[start : start + 4], now)
        return live

    # What Redis holds after the restore: the buckets of unchanged metrics only.
    assert set(plan.load) | set(plan.changed) == set(fingerprints(new))
    store.buckets = defaultdict(dict, {k: v for k, v in store.buckets.items() if k[0] in plan.load})
    store.expires = {k: v for k, v in store.expires.items() if k[0] in plan.load}
    live = _restored(cls, new, partition, store.stored())
    live.pending = dict(plan.pending)
    rebuilt_names = list(plan.changed)
    assert live.ready_fingerprints().keys() == plan.load
    rebuild, rebuild_store = cls(new, partition, metrics=rebuilt_names), DictStore()

    live_at, rebuild_at = split, 0
    crashed = restarted = False
    handed_over = not rebuilt_names
    while live_at < len(messages) or not handed_over:
        move = choose.draw(st.sampled_from(["live", "rebuild", "hand_over"]))
        if move == "live" and live_at < len(messages):
            size = choose.draw(st.integers(1, 6))
            _apply(live, store, messages[live_at : live_at + size], now)
            live_at = min(len(messages), live_at + size)
            _maybe_expire(live, store, choose)
            if not restarted and not handed_over and choose.draw(st.booleans()):
                restarted = True  # kill -9 of the worker while the rebuild is pending
                live = _restarted(cls, new, partition, store, live)
        elif move == "rebuild" and rebuild_at < split:
            size = choose.draw(st.integers(1, 6))
            _apply(rebuild, rebuild_store, messages[rebuild_at : min(split, rebuild_at + size)],
                   now)  # fmt: skip
            rebuild_at = min(split, rebuild_at + size)
            _maybe_expire(rebuild, rebuild_store, choose)
            if not crashed and choose.draw(st.booleans()):
                crashed = True  # kill -9: the rebuild resumes from what it wrote
                rebuild = _restored(cls, new, partition, rebuild_store.stored(), rebuilt_names)
                rebuild_at = 0 if rebuild.offset is None else rebuild.offset + 1
        elif move == "hand_over" and rebuild_at >= split and not handed_over:
            # What the rebuild stored is what is handed over (as the worker loads it).
            writes = live.take_over(rebuild_store.stored(), rebuilt_names)
            _write_cells(store, writes)
            live.pending = {}
            handed_over = True
    assert pending_token(live.pending) == ""
    # Written and read back (a restart after the hand-over) it is the same state.
    again = _restored(cls, new, partition, store.stored())
    as_of = live.max_ts or now
    assert _json(new, [again.summarize(as_of)], as_of) == _json(new, [live.summarize(as_of)], as_of)
    return live


def _json(catalog: Any, summaries: list[Any], as_of: int) -> Any:
    decoded = [decode_summary(encode_summary(as_of, s))[1] for s in summaries]
    return ComputeResult(as_of, finish(catalog, merge_summaries(decoded))).to_json()


@pytest.mark.parametrize("state_class", [PartitionState, NativePartitionState])
@settings(max_examples=80, deadline=None)
@given(scenario=scenarios(), choose=st.data())
def test_a_rebuild_handed_over_at_any_moment_equals_compute_with_the_new_definitions(
    state_class: type[PartitionState], scenario: Scenario, choose: st.DataObject
):
    new = catalog_of(scenario.metrics)
    old = catalog_of(choose.draw(old_definitions(scenario.metrics)))
    per_partition = messages_per_partition(copy.deepcopy(scenario.raw), choose)
    states = [
        _run_partition(state_class, old, new, p, per_partition[p], scenario.now_ms, choose)
        for p in range(PARTITIONS)
    ]
    newest = [s.max_ts for s in states if s.max_ts is not None]
    as_of = max(newest) if newest else scenario.now_ms
    actual = _json(new, [s.summarize(as_of) for s in states], as_of)
    expected = compute_metrics(copy.deepcopy(scenario.raw), new, now_ms=scenario.now_ms).to_json()
    assert actual == expected


@pytest.mark.parametrize("state_class", [PartitionState, NativePartitionState])
def test_a_live_state_restarted_while_a_rebuild_is_pending_keeps_what_it_applied(
    state_class: type[PartitionState],
):
    """Metric `b` is added at offset 10: the live stream applies it from 10 on, a rebuild applies
    0..9. The live state restarts after 14; what it applied to `b` from 10 on is in the store
    and must be loaded again, or the hand-over after 19 gives 15 events instead of 20."""
    metric = {"name": "a", "tier": "diagnostic", "window": "1h", "bucket": "1m",
              "aggregate": {"event": "report.sent", "count": True}}  # fmt: skip
    old, new = catalog_of([metric]), catalog_of([metric, {**metric, "name": "b"}])
    raw = [
        {"type": "report.sent", "timestamp": BASE_MS + i * 1000, "account_id": "acme",
         "event_id": f"e{i}"}
        for i in range(20)
    ]  # fmt: skip
    messages = [Message(i, orjson.dumps(event)) for i, event in enumerate(raw)]
    now = BASE_MS + 60_000
    live, store = state_class(old, 0), DictStore()
    _apply(live, store, messages[:10], now)
    stored = store.stored()
    stored.definitions, stored.marks = fingerprints(old), {HORIZON: horizon_mark(old)}
    plan = plan_restore(stored, new, now)
    assert plan.load == {"a"} and plan.changed == ("b",)
    live = _restored(state_class, new, 0, store.stored())
    live.pending = dict(plan.pending)
    _apply(live, store, messages[10:15], now)
    live = _restarted(state_class, new, 0, store, live)
    _apply(live, store, messages[15:], now)
    rebuild, rebuild_store = state_class(new, 0, metrics=["b"]), DictStore()
    _apply(rebuild, rebuild_store, messages[:10], now)
    _write_cells(store, live.take_over(rebuild_store.stored(), ["b"]))
    live.pending = {}
    as_of = live.max_ts
    assert as_of is not None
    expected = compute_metrics(copy.deepcopy(raw), new, now_ms=now).to_json()
    assert expected["metrics"]["b"]["value"] == 20
    assert _json(new, [live.summarize(as_of)], as_of) == expected
    again = _restored(state_class, new, 0, store.stored())
    assert _json(new, [again.summarize(as_of)], as_of) == expected


def test_the_plan_resumes_a_group_adds_changed_metrics_to_a_new_one_and_drops_the_removed():
    metrics = [
        {"name": n, "tier": "diagnostic", "window": "1h", "bucket": "1m",
         "aggregate": {"event": "report.sent", "count": True}}
        for n in ("kept", "waiting", "changed")
    ]  # fmt: skip
    before = catalog_of([*metrics[:2], {**metrics[2], "segments": ["plan"]},
                         {**metrics[0], "name": "gone"}])  # fmt: skip
    after = catalog_of(metrics)
    stored = StoredPartition(
        offset=41,
        max_ts=0,
        definitions=fingerprints(before),
        marks={HORIZON: horizon_mark(before), PENDING: pending_token({"waiting": "30-1"}),
               "shadows": '["30-1","12-0"]'},
    )  # fmt: skip
    plan = plan_restore(stored, after, now_ms=7)
    assert not plan.reset
    # The live cells of the waiting metric (its events since its group's end) are loaded too.
    assert plan.load == {"kept", "waiting"}
    assert plan.changed == ("changed",)
    assert plan.removed == ("gone",)
    assert set(plan.drop) == {"changed", "gone"}
    assert plan.new_group == "42-7"
    assert plan.groups == {"30-1": ("waiting",), "42-7": ("changed",)}
    assert plan.pending == {"waiting": "30-1", "changed": "42-7"}
    assert plan.stale_shadows == ("12-0",)


def test_a_longer_window_changes_the_dedup_horizon_and_starts_the_partition_again():
    metric = {"name": "reports", "tier": "diagnostic", "window": "1h", "bucket": "1m",
              "aggregate": {"event": "report.sent", "count": True}}  # fmt: skip
    before = catalog_of([metric])
    after = catalog_of([metric, {**metric, "name": "monthly", "window": "30d", "bucket": "1h"}])
    stored = StoredPartition(41, 0, fingerprints(before), marks={HORIZON: horizon_mark(before)})
    plan = plan_restore(stored, after, now_ms=7)
    assert plan.reset and "horizon" in plan.reset_reason
    # Written before the mark existed: the stored metrics' own horizon is compared.
    legacy = StoredPartition(41, 0, fingerprints(before))
    assert plan_restore(legacy, after, now_ms=7).reset
    assert not plan_restore(legacy, catalog_of([metric, {**metric, "name": "other"}]), 7).reset
