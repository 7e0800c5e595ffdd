"""Engine state -> Redis hash fields -> engine state gives back the same state."""

from __future__ import annotations

from processor.engine.state import DistinctBucket, DistinctState
from processor.store.codec import all_fields, load_bucket


def test_a_distinct_label_without_values_survives_a_reload():
    # Matching events that lack the distinct field still list their segment label (with 0);
    # before, the label was not stored and vanished after a restart or a rebalance.
    state = DistinctState()
    state.buckets[7] = DistinctBucket(
        total={"u1"}, by_segment={"plan": {"unknown": set(), "pro": {"u1"}}}
    )
    loaded = DistinctState()
    load_bucket(loaded, 7, all_fields(state, 7))
    assert loaded.buckets[7] == state.buckets[7]


def test_a_distinct_bucket_with_only_empty_labels_survives_a_reload():
    state = DistinctState()
    state.buckets[1] = DistinctBucket(total=set(), by_segment={"plan": {"free": set()}})
    loaded = DistinctState()
    load_bucket(loaded, 1, all_fields(state, 1))
    assert loaded.buckets[1] == state.buckets[1]
