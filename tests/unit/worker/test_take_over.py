"""A metric rebuilt from a partition's first offsets and handed over to the live state equals the
metric applied whole (the worker's automatic backfill, processor/worker/rebuild.py).

The live state applied the other metrics before an offset L and every metric from L on; a state of
the rebuilt metric alone, deduplicating by the whole catalogue's rule, applied the offsets before
L. Merged, and also as stored and restored after the merge, they say what `nsm compute` says.
"""

from __future__ import annotations

import copy
import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from processor.engine import compute_metrics
from processor.engine.compute import ComputeResult
from processor.engine.summaries import finish, merge_summaries
from processor.partition.state import Message, PartitionState
from tests.strategies import Scenario, catalog_of, scenarios
from tests.unit.worker.test_partitioned_processing import DictStore, _raw_bytes


def _apply(state: PartitionState, messages: list[Message], now: int, choose: st.DataObject,
           store: DictStore) -> None:  # fmt: skip
    position = 0
    while position < len(messages):
        batch = messages[position : position + choose.draw(st.integers(1, 6))]
        store.write(state.apply_batch(batch, now, 300_000, event_clock=True))
        position += len(batch)


@settings(max_examples=100, deadline=None)
@given(scenario=scenarios(), choose=st.data())
def test_a_rebuilt_metric_handed_over_equals_compute(scenario: Scenario, choose: st.DataObject):
    catalog = catalog_of(scenario.metrics)
    stateful = [m.name for m in catalog if m.kind != "formula"]
    rebuilt = choose.draw(st.sampled_from(stateful))
    now = scenario.now_ms
    messages = [Message(i, _raw_bytes(item)) for i, item in enumerate(scenario.raw)]
    split = choose.draw(st.integers(0, len(messages)))

    before = PartitionState(catalog, 0)
    store = DictStore(before)
    _apply(before, messages[:split], now, choose, store)
    # Restarted with the rebuilt metric defined anew: its stored state is not read.
    stored = store.stored()
    stored = dataclasses.replace(stored, definitions={**stored.definitions, rebuilt: "before"})
    live = PartitionState(catalog, 0)
    assert live.restore(stored) == [rebuilt]
    store.metric_ids = dict(live.metric_ids)
    _apply(live, messages[split:], now, choose, store)

    group = PartitionState(catalog, 0, metrics=[rebuilt])
    assert group.fingerprints.keys() == {rebuilt}
    group_store = DictStore(group)
    _apply(group, messages[:split], now, choose, group_store)
    store.apply(live.take_over(group_store.stored(), [rebuilt]))

    restored = PartitionState(catalog, 0)
    restored.restore(store.stored())
    expected = compute_metrics(copy.deepcopy(scenario.raw), catalog, now_ms=now).to_json()
    for state in (live, restored):
        as_of = state.max_ts if state.max_ts is not None else now
        if state.max_ts is None:
            expected["as_of"] = ComputeResult(as_of, {}).to_json()["as_of"]
        values = finish(catalog, merge_summaries(catalog, [state.summarize(as_of)]))
        assert ComputeResult(as_of, values).to_json() == expected
