"""The worker's pipeline over Segment/RudderStack calls (NSM_INPUT_FORMAT=segment).

The native core decodes calls as the Python engine does and leaves trait-segmented metrics to
it; the trait history is written, pruned as it is written, reloaded after a crash, and split over
partitions by account, and the numbers still equal `nsm compute` over the calls.
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
from processor.engine.fields import label
from processor.engine.summary import decode_summary, encode_summary, finish, merge_summaries
from processor.store.codec import TRAITS_BUCKET
from processor.worker.native import NativePartitionState
from processor.worker.partition import Message, PartitionState
from tests.strategies import Scenario, catalog_of
from tests.unit.test_traits_vs_oracle import NOW, cases
from tests.unit.worker.test_native_partition import _run_both
from tests.unit.worker.test_partitioned_processing import DictStore

PARTITIONS = 3
# A metric the native core takes (no trait segment), beside the trait metrics kept in Python.
NATIVE_METRIC = {
    "name": "plain",
    "tier": "diagnostic",
    "window": "4h",
    "segments": ["workspace"],
    "entities": {"key": "context.groupId", "all": [{"event": "a", "count_at_least": 1}]},
}


def _with_native(case: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Any]]:
    metrics, stream, as_of = case
    return [*metrics, NATIVE_METRIC], stream, as_of


@pytest.mark.parametrize(("event_clock", "drop_late"), [(True, True), (False, True), (True, False)])
@settings(max_examples=60, deadline=None)
@given(case=cases(), choose=st.data())
def test_native_and_python_agree_on_calls(
    event_clock: bool, drop_late: bool, case: Any, choose: st.DataObject
) -> None:
    metrics, stream, as_of = _with_native(case)
    _run_both(Scenario(metrics, stream, NOW, as_of), choose, event_clock, drop_late, "segment")


def _partitions(stream: list[dict[str, Any]], choose: st.DataObject) -> list[int]:
    """Calls sharing an account, a user, a workspace or a messageId share a partition, as an
    account's calls do when keyed by the account (and entities sit at or below it)."""
    parent: dict[Any, Any] = {}

    def find(x: Any) -> Any:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for index, call in enumerate(stream):
        account = call.get("groupId", (call.get("context") or {}).get("groupId"))
        links = [
            ("account", None if account is None else label(account)),
            ("user", call.get("userId")),
            ("workspace", (call.get("properties") or {}).get("workspace")),
            ("id", call.get("messageId")),
        ]
        for link in links:
            if link[1] is not None:
                parent[find(link)] = find(("call", index))
        find(("call", index))
    chosen: dict[Any, int] = {}
    return [
        chosen.setdefault(find(("call", i)), choose.draw(st.integers(0, PARTITIONS - 1)))
        for i in range(len(stream))
    ]


@pytest.mark.parametrize("state_class", [PartitionState, NativePartitionState])
@settings(max_examples=80, deadline=None)
@given(case=cases(), choose=st.data())
def test_partitioned_calls_with_a_crash_equal_compute(
    state_class: type[PartitionState], case: Any, choose: st.DataObject
) -> None:
    metrics, stream, _ = _with_native(case)
    catalog = catalog_of(metrics)
    per_partition: dict[int, list[Message]] = defaultdict(list)
    for call, partition in zip(stream, _partitions(stream, choose), strict=True):
        queue = per_partition[partition]
        queue.append(Message(len(queue), orjson.dumps(call)))
    states: list[PartitionState] = []
    for partition, messages in per_partition.items():
        state, store = state_class(catalog, partition, input_format="segment"), DictStore()
        position, crash_at = 0, choose.draw(st.integers(0, len(messages)))
        while position < len(messages):
            batch = messages[position : position + choose.draw(st.integers(1, 6))]
            store.write(state.apply_batch(batch, NOW, 300_000, event_clock=True))
            position += len(batch)
            if state.max_ts is not None and choose.draw(st.booleans()):
                state.expire(state.max_ts)
                store.expire(state.max_ts, state.forget_ids_until(state.max_ts))
            if crash_at is not None and position >= crash_at:
                crash_at = None
                state = state_class(catalog, partition, input_format="segment")
                state.restore(store.stored())
        states.append(state)
    newest = [s.max_ts for s in states if s.max_ts is not None]
    as_of = max(newest) if newest else NOW
    summaries = [decode_summary(encode_summary(as_of, s.summarize(as_of)))[1] for s in states]
    worker = ComputeResult(as_of, finish(catalog, merge_summaries(summaries))).to_json()
    expected = compute_metrics(copy.deepcopy(stream), catalog, now_ms=NOW, input_format="segment")
    assert worker == expected.to_json()


@pytest.mark.parametrize("state_class", [PartitionState, NativePartitionState])
def test_a_restart_after_expiry_keeps_the_same_trait_history(
    state_class: type[PartitionState],
) -> None:
    """A hand-made case of a disagreement the differential test found: with the wall clock, a
    day after the calls, two plans of one account; expiry, a restart from what was stored, one
    more plan. A partition that restarted must write the history one that did not writes: what
    it loads is what the other keeps, with nothing the window can no longer need."""
    metric = {
        "name": "m0",
        "tier": "diagnostic",
        "window": "4h",
        "bucket": "1h",
        "segments": ["group.plan"],
        "entities": {"key": "context.groupId", "all": [{"event": "a", "count_at_least": 1}]},
    }
    catalog = catalog_of([metric])
    ts = NOW - 86_400_000

    def group(offset: int) -> Message:
        call = {"type": "group", "groupId": "a1", "traits": {"plan": "free"}, "userId": "u1",
                "timestamp": ts, "messageId": f"m{offset}"}  # fmt: skip
        return Message(offset, orjson.dumps(call))

    histories = []
    for restart in (False, True):
        state, store = state_class(catalog, 0, input_format="segment"), DictStore()
        store.write(state.apply_batch([group(0), group(1)], NOW, 300_000, event_clock=False))
        state.expire(NOW)
        store.expire(NOW, state.forget_ids_until(NOW))
        if restart:
            state = state_class(catalog, 0, input_format="segment")
            state.restore(store.stored())
        outcome = state.apply_batch([group(2)], NOW, 300_000, event_clock=False)
        histories.append({w.bucket: w.fields for w in outcome.writes.unpack()})
    kept, restored = histories
    assert restored == kept
    # Every call is before the window as of now: only the latest can still label an event.
    assert kept == {TRAITS_BUCKET: {b"@a1": orjson.dumps({"group.plan": [[ts, 2, "free"]]})}}
