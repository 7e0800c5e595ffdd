"""A message the engine fails on is `unprocessable`; the rest of its batch is applied exactly once.

No known message makes the engine fail any more (test_hostile_messages.py), so a failure is
injected (tests/faults.py): the engine fails after applying an event marked `"poison":true`, so
the failure leaves part of the event in the state. The partition is then restored from what was
stored and given the batch again with the message named, as the worker does (`apply_restoring`);
`nsm compute` starts again from the first event.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.definitions.model import Catalog
from processor.engine import compute_metrics
from processor.engine.summaries import finish
from processor.events import UNPROCESSABLE, MessageFailed
from processor.partition.state import BatchOutcome, Message, PartitionState
from tests.faults import DETAIL, injected_fault
from tests.strategies import BASE_MS, Scenario, catalog_of, scenarios
from tests.unit.worker.test_partitioned_processing import DictStore

ANY_EVENT_COUNT = {"name": "all_events", "tier": "granular", "window": "1d", "bucket": "1h",
                   "aggregate": {"event": "*", "count": True}}  # fmt: skip
MARKER = b'"poison":true'


def apply_restoring(
    catalog: Catalog,
    state: PartitionState,
    store: DictStore,
    batch: list[Message],
    now_ms: int,
    event_clock: bool,
) -> tuple[PartitionState, BatchOutcome, int]:
    """Apply and store a batch as the worker does: after a failure, restore the partition from
    the store and apply the batch again with the failed messages named. Returns the state to go
    on with, the outcome, and how many attempts failed."""
    failed: dict[int, str] = {}
    while True:
        try:
            outcome = state.apply_batch(batch, now_ms, 300_000, event_clock, True, failed)
        except MessageFailed as failure:
            assert failure.position not in failed
            failed[failure.position] = failure.detail
            state = PartitionState(catalog, state.partition)
            state.restore(store.stored(), None if event_clock else now_ms)
            continue
        store.write(outcome)
        return state, outcome, len(failed)


@st.composite
def poisoned(draw: st.DrawFn) -> tuple[Scenario, list[Any]]:
    """A scenario with some of its events marked, and the same stream with each marked event
    replaced by a tombstone (what the rest must give)."""
    scenario = draw(scenarios())
    raw, clean = [], []
    for item in scenario.raw:
        if isinstance(item, dict) and draw(st.integers(0, 3)) == 0:
            raw.append({**item, "poison": True})
            clean.append(None)
        else:
            raw.append(item)
            clean.append(item)
    metrics = [*scenario.metrics, ANY_EVENT_COUNT]
    return Scenario(metrics, raw, scenario.now_ms, scenario.as_of), clean


def _bytes(item: Any) -> bytes | None:
    if item is None or isinstance(item, bytes):
        return item
    return item.encode() if isinstance(item, str) else orjson.dumps(item)


@settings(max_examples=60, deadline=None)
@given(case=poisoned(), choose=st.data(), event_clock=st.booleans())
def test_a_failing_message_is_skipped_and_the_rest_applied_once(
    case: tuple[Scenario, list[Any]], choose: st.DataObject, event_clock: bool
) -> None:
    scenario, clean = case
    catalog = catalog_of(scenario.metrics)
    messages = [Message(i, _bytes(item)) for i, item in enumerate(scenario.raw)]
    state = PartitionState(catalog, 0)
    store = DictStore(state)
    counts: dict[str, int] = defaultdict(int)
    position = 0
    with injected_fault(MARKER):
        while position < len(messages):
            batch = messages[position : position + choose.draw(st.integers(1, 8))]
            state, outcome, _ = apply_restoring(
                catalog, state, store, batch, scenario.now_ms, event_clock
            )
            for name, n in outcome.counts().items():
                counts[name] += n
            position += len(batch)
    # The rest, exactly once: the state of the stream without the failing messages.
    reference = PartitionState(catalog, 0)
    cleaned = [Message(i, _bytes(item)) for i, item in enumerate(clean)]
    expected = reference.apply_batch(cleaned, scenario.now_ms, 300_000, event_clock)
    poisoned_count = sum(1 for item in clean if item is None) - sum(
        1 for item in scenario.raw if item is None
    )
    # A marked event that is invalid or repeats an id is never applied, so never fails.
    assert counts["applied"] == expected.applied
    assert counts["duplicates"] >= expected.duplicates
    assert counts[f"invalid:{UNPROCESSABLE}"] + counts["duplicates"] <= (
        poisoned_count + expected.duplicates
    )
    clock = state.max_ts if event_clock else scenario.now_ms
    if clock is not None:
        for as_of in (clock, clock + 3_600_000):
            assert state.summarize(as_of) == reference.summarize(as_of)


def test_the_outcome_names_the_message_and_the_error() -> None:
    catalog = catalog_of([ANY_EVENT_COUNT])
    good = b'{"type": "a", "timestamp": %d, "event_id": "x"}' % BASE_MS
    bad = b'{"type": "a", "timestamp": %d, "event_id": "y", "poison":true}' % BASE_MS
    batch = [Message(5, good), Message(6, bad), Message(7, good)]
    with injected_fault(MARKER):
        with pytest.raises(MessageFailed) as raised:
            PartitionState(catalog, 0).apply_batch(batch, BASE_MS, 300_000, True)
        assert (raised.value.position, raised.value.detail) == (6, DETAIL)
        state = PartitionState(catalog, 0)
        store = DictStore(state)
        state, outcome, failures = apply_restoring(catalog, state, store, batch, BASE_MS, True)
    assert failures == 1
    assert [(m.offset, m.value, m.reason, m.detail) for m in outcome.invalid] == [
        (6, bad, UNPROCESSABLE, DETAIL)
    ]
    # The repeat of `x` is a duplicate; `y` was never registered as applied.
    assert (outcome.applied, outcome.duplicates, outcome.new_offset) == (1, 1, 7)
    assert outcome.counts() == {"applied": 1, "duplicates": 1, "invalid:unprocessable": 1}
    assert state.seen_ids == 1
    assert finish(catalog, state.summarize(BASE_MS))["all_events"].value == 1


def test_a_failure_in_a_batch_already_stored_in_part_is_skipped_from_the_stored_offset() -> None:
    """A named message at or below the stored offset is skipped like any other."""
    catalog = catalog_of([ANY_EVENT_COUNT])
    event = b'{"type": "a", "timestamp": %d}' % BASE_MS
    state = PartitionState(catalog, 0)
    state.apply_batch([Message(0, event)], BASE_MS, 300_000, True)
    outcome = state.apply_batch(
        [Message(0, event), Message(1, event)], BASE_MS, 300_000, True, True, {0: "x", 1: "y"}
    )
    assert (outcome.skipped, outcome.applied) == (1, 0)
    assert [(m.offset, m.reason, m.detail) for m in outcome.invalid] == [(1, UNPROCESSABLE, "y")]


def test_compute_counts_a_failing_message_and_applies_the_rest() -> None:
    catalog = catalog_of([ANY_EVENT_COUNT])
    raw = [
        {"type": "a", "timestamp": BASE_MS, "event_id": 1},
        {"type": "a", "timestamp": BASE_MS, "event_id": 2, "poison": True},
        {"type": "a", "timestamp": BASE_MS, "event_id": 2},
        "{not json",
        {"type": "a", "timestamp": BASE_MS, "poison": True},
    ]
    with injected_fault(MARKER):
        result = compute_metrics(iter(copy.deepcopy(raw)), catalog, now_ms=BASE_MS)
    assert result.to_json()["metrics"]["all_events"]["value"] == 2
    assert (result.applied, result.duplicates) == (2, 0)
    assert dict(result.invalid) == {UNPROCESSABLE: 2, "not_json": 1}
    assert [(r.position, r.reason) for r in result.rejected] == [
        (1, UNPROCESSABLE), (3, "not_json"), (4, UNPROCESSABLE)
    ]  # fmt: skip
    assert result.rejected[0].detail == DETAIL
