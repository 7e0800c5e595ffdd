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
from collections.abc import Iterable
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.engine import compute_metrics
from processor.engine.compute import ComputeResult
from processor.engine.summaries import decode_summary, encode_summary, finish, merge_summaries
from processor.partition.state import Message, PartitionState, fingerprints
from processor.store.partition_store import StoredPartition, varint
from processor.worker.rebuild import (
    HORIZON,
    PENDING,
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
        store.apply(state.expire(state.max_ts))
        store.expire_ids(state.forget_ids_until(state.max_ts))


def _restored(
    catalog: Any, partition: int, stored: StoredPartition, metrics: Any = None
) -> PartitionState:
    state = PartitionState(catalog, partition, metrics=metrics)
    state.restore(stored)
    return state


def _restored_into(store: DictStore, state: PartitionState, drop: Iterable[str]) -> None:
    """What the worker writes once a state is restored (runtime.py, `_restore`): the dropped
    metrics' items, definitions and ids gone, the state's definitions and ids set."""
    for name in drop:
        old = store.metric_ids.pop(name, None)
        if old is not None:
            prefix = varint(old)
            store.aggregates = {k: v for k, v in store.aggregates.items()
                                if not k.startswith(prefix)}  # fmt: skip
    store.definitions = dict(state.fingerprints)
    store.metric_ids = dict(state.metric_ids)
    store.next_metric_id = state.next_metric_id


def _restarted(
    catalog: Any, partition: int, store: DictStore, live: PartitionState
) -> PartitionState:
    """The live state after a restart (kill -9, a rebalance, a reload with the same definitions):
    restored as the worker restores it, from what the store holds and the marks it wrote."""
    stored = store.stored()
    stored.marks = {HORIZON: horizon_mark(catalog)}
    if live.pending:
        stored.marks[PENDING] = pending_token(live.pending)
    plan = plan_restore(stored, catalog, 0)
    assert not plan.reset and not plan.changed and not plan.drop
    assert plan.pending == live.pending
    again = _restored(catalog, partition, stored)
    _restored_into(store, again, plan.drop)
    again.pending = dict(plan.pending)
    return again


def _run_partition(
    old: Any, new: Any, partition: int, messages: list[Message], now: int, choose: st.DataObject
) -> PartitionState:
    """The partition on the old definitions up to L, then restored with the new ones."""
    split = choose.draw(st.integers(0, len(messages)), label="L")
    live = PartitionState(old, partition)
    store = DictStore(live)
    position = 0
    while position < split:
        size = choose.draw(st.integers(1, 6))
        _apply(live, store, messages[position : min(split, position + size)], now)
        position = min(split, position + size)
        _maybe_expire(live, store, choose)
    stored = store.stored()
    stored.marks = {HORIZON: horizon_mark(old)}
    plan = plan_restore(stored, new, now)
    if plan.reset:
        # The dedup horizon changed, or nothing was applied: the partition starts again from the
        # topic's beginning with the new definitions (and nothing is complete until it is done).
        assert stored.offset is None or horizon_mark(old) != horizon_mark(new)
        live = PartitionState(new, partition)
        store = DictStore(live)
        for start in range(0, len(messages), 4):
            _apply(live, store, messages[start : start + 4], now)
        return live

    # Restored with the new definitions: changed and new metrics filed under new ids (nothing
    # stored is read for them), the dropped ones' items deleted.
    assert set(plan.load) | set(plan.changed) == set(fingerprints(new))
    live = _restored(new, partition, stored)
    _restored_into(store, live, plan.drop)
    live.pending = dict(plan.pending)
    rebuilt_names = list(plan.changed)
    assert live.ready_fingerprints().keys() == plan.load
    rebuild = PartitionState(new, partition, metrics=rebuilt_names)
    rebuild_store = DictStore(rebuild)

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
                live = _restarted(new, partition, store, live)
        elif move == "rebuild" and rebuild_at < split:
            size = choose.draw(st.integers(1, 6))
            _apply(rebuild, rebuild_store, messages[rebuild_at : min(split, rebuild_at + size)],
                   now)  # fmt: skip
            rebuild_at = min(split, rebuild_at + size)
            _maybe_expire(rebuild, rebuild_store, choose)
            if not crashed and choose.draw(st.booleans()):
                crashed = True  # kill -9: the rebuild resumes from what it wrote
                rebuild = _restored(new, partition, rebuild_store.stored(), rebuilt_names)
                rebuild_at = 0 if rebuild.offset is None else rebuild.offset + 1
        elif move == "hand_over" and rebuild_at >= split and not handed_over:
            # What the rebuild stored is what is handed over (as the worker loads it).
            store.apply(live.take_over(rebuild_store.stored(), rebuilt_names))
            live.pending = {}
            handed_over = True
    assert pending_token(live.pending) == ""
    # Written and read back (a restart after the hand-over) it is the same state.
    again = _restored(new, partition, store.stored())
    as_of = live.max_ts or now
    assert _json(new, [again.summarize(as_of)], as_of) == _json(new, [live.summarize(as_of)], as_of)
    return live


def _json(catalog: Any, summaries: list[Any], as_of: int) -> Any:
    decoded = [decode_summary(catalog, encode_summary(catalog, s)) for s in summaries]
    return ComputeResult(as_of, finish(catalog, merge_summaries(catalog, decoded))).to_json()


@settings(max_examples=120, deadline=None)
@given(scenario=scenarios(), choose=st.data())
def test_a_rebuild_handed_over_at_any_moment_equals_compute_with_the_new_definitions(
    scenario: Scenario, choose: st.DataObject
):
    new = catalog_of(scenario.metrics)
    old = catalog_of(choose.draw(old_definitions(scenario.metrics)))
    per_partition = messages_per_partition(copy.deepcopy(scenario.raw), choose)
    states = [
        _run_partition(old, new, p, per_partition[p], scenario.now_ms, choose)
        for p in range(PARTITIONS)
    ]
    newest = [s.max_ts for s in states if s.max_ts is not None]
    as_of = max(newest) if newest else scenario.now_ms
    actual = _json(new, [s.summarize(as_of) for s in states], as_of)
    expected = compute_metrics(copy.deepcopy(scenario.raw), new, now_ms=scenario.now_ms).to_json()
    assert actual == expected


def test_a_live_state_restarted_while_a_rebuild_is_pending_keeps_what_it_applied():
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
    live = PartitionState(old, 0)
    store = DictStore(live)
    _apply(live, store, messages[:10], now)
    stored = store.stored()
    stored.marks = {HORIZON: horizon_mark(old)}
    plan = plan_restore(stored, new, now)
    assert plan.load == {"a"} and plan.changed == ("b",)
    live = _restored(new, 0, stored)
    _restored_into(store, live, plan.drop)
    live.pending = dict(plan.pending)
    _apply(live, store, messages[10:15], now)
    live = _restarted(new, 0, store, live)
    _apply(live, store, messages[15:], now)
    rebuild = PartitionState(new, 0, metrics=["b"])
    rebuild_store = DictStore(rebuild)
    _apply(rebuild, rebuild_store, messages[:10], now)
    store.apply(live.take_over(rebuild_store.stored(), ["b"]))
    live.pending = {}
    as_of = live.max_ts
    assert as_of is not None
    expected = compute_metrics(copy.deepcopy(raw), new, now_ms=now).to_json()
    assert expected["metrics"]["b"]["value"] == 20
    assert _json(new, [live.summarize(as_of)], as_of) == expected
    again = _restored(new, 0, store.stored())
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
