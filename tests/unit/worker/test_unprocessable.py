"""A message a processor fails on is `unprocessable`; the rest of its batch is applied exactly once.

No known message makes the engine fail any more (test_hostile_messages.py), so a failure is
injected: the engine raises on events marked `"poison": true`. Every definition set here has an
aggregate over any event type, so that every event goes through the Python engine in both
partition implementations and both fail on the same messages. The Python partition applies the
batch again without the message; the native core, which changes its state in place, is restored
from what is stored and given the batch again, as the worker does (apply_restoring).
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.engine import compute_metrics
from processor.engine.engine import Engine
from processor.events import UNPROCESSABLE, Event, failure_detail
from processor.worker.partition import Message, PartitionState
from tests.strategies import BASE_MS, Scenario, catalog_of, scenarios
from tests.unit.worker.test_native_partition import _run_both

ANY_EVENT_COUNT = {"name": "all_events", "tier": "granular", "window": "1d", "bucket": "1h",
                   "aggregate": {"event": "*", "count": True}}  # fmt: skip
POISON = RuntimeError("the engine failed on purpose")


_APPLY = Engine.apply


def _poisoned_apply(engine: Engine, event: Event, seq: int, clock: int | None = None) -> Any:
    """Engine.apply that raises on an event marked `"poison": true`, after applying it (so the
    failure leaves a partial delta behind, which must not count)."""
    late = _APPLY(engine, event, seq, clock)
    if event.data.get("poison") is True:
        raise POISON
    return late


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


@settings(max_examples=60, deadline=None)
@given(case=poisoned(), choose=st.data(), event_clock=st.booleans())
def test_native_and_python_skip_a_failing_message_alike_and_apply_the_rest(
    case: tuple[Scenario, list[Any]], choose: st.DataObject, event_clock: bool
) -> None:
    scenario, clean = case
    catalog = catalog_of(scenario.metrics)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Engine, "apply", _poisoned_apply)
        python = _run_both(scenario, choose, event_clock, drop_late=True)
    # The rest, exactly once: the state of the stream without the failing messages.
    reference = PartitionState(catalog, 0)
    messages = [Message(i, None if item is None else _bytes(item)) for i, item in enumerate(clean)]
    reference.apply_batch(messages, scenario.now_ms, 300_000, event_clock)
    # As of the clock the partitions last expired at, or later.
    clock = python.max_ts if event_clock else scenario.now_ms
    if clock is not None:
        for as_of in (clock, clock + 3_600_000):
            assert python.summarize(as_of) == reference.summarize(as_of)


def _bytes(item: Any) -> bytes:
    if isinstance(item, bytes):
        return item
    return item.encode() if isinstance(item, str) else orjson.dumps(item)


def test_the_outcome_names_the_message_and_the_error() -> None:
    catalog = catalog_of([ANY_EVENT_COUNT])
    good = b'{"type": "a", "timestamp": %d, "event_id": "x"}' % BASE_MS
    bad = b'{"type": "a", "timestamp": %d, "event_id": "y", "poison": true}' % BASE_MS
    state = PartitionState(catalog, 0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Engine, "apply", _poisoned_apply)
        outcome = state.apply_batch(
            [Message(5, good), Message(6, bad), Message(7, good)], BASE_MS, 300_000, True
        )
    assert [(m.offset, m.value, m.reason, m.detail) for m in outcome.invalid] == [
        (6, bad, UNPROCESSABLE, "RuntimeError: the engine failed on purpose")
    ]
    # The repeat of `x` is a duplicate; `y` was never registered as applied.
    assert (outcome.applied, outcome.duplicates, outcome.new_offset) == (1, 1, 7)
    assert outcome.counts() == {"applied": 1, "duplicates": 1, "invalid:unprocessable": 1}
    assert sorted(outcome.ids.unpack()) == [("x", outcome.ids.newest)]
    assert state.summarize(BASE_MS)["all_events"].total == 1


def test_compute_counts_a_failing_message_and_applies_the_rest() -> None:
    catalog = catalog_of([ANY_EVENT_COUNT])
    raw = [
        {"type": "a", "timestamp": BASE_MS, "event_id": 1},
        {"type": "a", "timestamp": BASE_MS, "event_id": 2, "poison": True},
        {"type": "a", "timestamp": BASE_MS, "event_id": 2},
        "{not json",
        {"type": "a", "timestamp": BASE_MS, "poison": True},
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Engine, "apply", _poisoned_apply)
        result = compute_metrics(iter(copy.deepcopy(raw)), catalog, now_ms=BASE_MS)
    assert result.to_json()["metrics"]["all_events"]["value"] == 2
    assert (result.applied, result.duplicates) == (2, 0)
    assert dict(result.invalid) == {UNPROCESSABLE: 2, "not_json": 1}
    assert [(r.position, r.reason) for r in result.rejected] == [
        (1, UNPROCESSABLE), (3, "not_json"), (4, UNPROCESSABLE)
    ]  # fmt: skip
    assert result.rejected[0].detail == failure_detail(POISON)


def test_a_failure_detail_is_short_and_has_no_stack_trace() -> None:
    detail = failure_detail(RecursionError("maximum recursion depth exceeded\n" + "x" * 5000))
    assert detail.startswith("RecursionError: maximum recursion depth exceeded x")
    assert len(detail) < 260 and "\n" not in detail and "Traceback" not in detail
    assert failure_detail(KeyError()) == "KeyError"
