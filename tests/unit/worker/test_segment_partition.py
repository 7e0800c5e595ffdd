"""The worker's pipeline over Segment/RudderStack calls (NSM_INPUT_FORMAT=segment).

The engine decodes calls; the trait history is written, pruned as it is written (never by
expiry), reloaded after a crash, and split over partitions by account, and the numbers still equal
`nsm compute` (and the oracle, tests/unit/test_traits_vs_oracle.py) over the calls.
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
from processor.engine.summaries import decode_summary, encode_summary, finish, merge_summaries
from processor.partition.state import Message, PartitionState
from tests.strategies import catalog_of
from tests.unit.test_traits_vs_oracle import NOW, cases
from tests.unit.worker.test_partitioned_processing import DictStore, _pairs, label

PARTITIONS = 3
# A metric without a trait segment, beside the trait metrics.
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


@pytest.mark.parametrize("event_clock", [True, False])
@settings(max_examples=80, deadline=None)
@given(case=cases(), choose=st.data())
def test_partitioned_calls_with_a_crash_equal_compute(
    event_clock: bool, case: Any, choose: st.DataObject
) -> None:
    metrics, stream, _ = _with_native(case)
    catalog = catalog_of(metrics)
    per_partition: dict[int, list[Message]] = defaultdict(list)
    for call, partition in zip(stream, _partitions(stream, choose), strict=True):
        queue = per_partition[partition]
        queue.append(Message(len(queue), orjson.dumps(call)))
    states: list[PartitionState] = []
    for partition, messages in per_partition.items():
        state = PartitionState(catalog, partition, input_format="segment")
        store = DictStore(state)
        # The same batches and expiries without the crash store the same: trait histories are
        # pruned only as they are written (never by expiry or a restore), so what a partition
        # restores is what it kept, and it goes on exactly as one that did not restart.
        twin = PartitionState(catalog, partition, input_format="segment")
        twin_store = DictStore(twin)
        position, crash_at = 0, choose.draw(st.integers(0, len(messages)))
        while position < len(messages):
            batch = messages[position : position + choose.draw(st.integers(1, 6))]
            store.write(state.apply_batch(batch, NOW, 300_000, event_clock))
            twin_store.write(twin.apply_batch(batch, NOW, 300_000, event_clock))
            position += len(batch)
            clock = state.max_ts if event_clock else NOW
            if clock is not None and choose.draw(st.booleans()):
                store.apply(state.expire(clock))
                store.expire_ids(state.forget_ids_until(clock))
                twin_store.apply(twin.expire(clock))
            if crash_at is not None and position >= crash_at:
                crash_at = None
                state = PartitionState(catalog, partition, input_format="segment")
                state.restore(store.stored(), None if event_clock else NOW)
        assert (store.records, store.aggregates) == (twin_store.records, twin_store.aggregates)
        states.append(state)
    newest = [s.max_ts for s in states if s.max_ts is not None]
    as_of = (max(newest) if newest else NOW) if event_clock else NOW
    stored = [encode_summary(catalog, s.summarize(as_of)) for s in states]
    merged = merge_summaries(catalog, [decode_summary(catalog, raw) for raw in stored])
    worker = ComputeResult(as_of, finish(catalog, merged)).to_json()
    at = None if event_clock else NOW
    expected = compute_metrics(
        copy.deepcopy(stream), catalog, at_ms=at, now_ms=NOW, input_format="segment"
    ).to_json()
    if event_clock and not newest:
        expected["as_of"] = worker["as_of"]
    assert worker == expected


def test_a_restart_after_expiry_keeps_the_same_trait_history() -> None:
    """With the wall clock, a day after the calls: two plans of one account; expiry, a restart
    from what was stored (or none), one more plan. Expiry writes no history, and the restarted
    partition writes the history the other writes: what it loads is what the other keeps. Every
    call is before the window, so only the latest can still label an event: both write what a
    partition given only that call writes."""
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

    def written(state: PartitionState, offsets: list[int]) -> list[tuple[bytes, bytes]]:
        outcome = state.apply_batch([group(o) for o in offsets], NOW, 300_000, False)
        assert outcome.writes is not None
        return _pairs(outcome.writes.aggregates)

    histories = []
    for restart in (False, True):
        state = PartitionState(catalog, 0, input_format="segment")
        store = DictStore(state)
        store.write(state.apply_batch([group(0), group(1)], NOW, 300_000, False))
        expired = state.expire(NOW)
        assert not _pairs(expired.aggregates)
        store.apply(expired)
        store.expire_ids(state.forget_ids_until(NOW))
        if restart:
            state = PartitionState(catalog, 0, input_format="segment")
            state.restore(store.stored(), NOW)
        histories.append(written(state, [2]))
    only_the_latest = written(PartitionState(catalog, 0, input_format="segment"), [2])
    assert len(only_the_latest) == 1
    assert histories == [only_the_latest, only_the_latest]
