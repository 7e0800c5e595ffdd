"""The state: mergeable (partitions, deltas), order-independent, expiring with the window."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from engine_support import BASE, HOUR, NOW, catalog, metric
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.engine import Deduplicator, Engine
from processor.engine.state import CountState, EntitiesState, merge_states
from processor.events import Event, parse_event

METRICS = [
    metric(
        "ent",
        window="3h",
        segments=["plan"],
        entities={
            "key": "account_id",
            "all": [
                {"event": ["a", "b"], "count_at_least": 2},
                {"event": "*", "distinct": "user", "at_least": 2},
                {"event": "b", "distinct": "user", "at_least": 1, "each_count_at_least": 2},
                {"event": "a", "sum": "amount", "at_least": 1.5},
            ],
        },
        max_segment_values=2,
    ),
    metric("cnt", window="3h", segments=["plan", "user"], aggregate={"event": "a", "count": True}),
    metric("amt", window="3h", segments=["plan"], aggregate={"event": "*", "sum": "amount"}),
    metric(
        "dst",
        window="3h",
        segments=["plan"],
        aggregate={"event": "b", "distinct": "user"},
        max_segment_values=1,
    ),
    metric("rat", window="3h", formula="amt / cnt"),
]
CATALOG = catalog(*METRICS)

events_strategy = st.lists(
    st.builds(
        lambda t, h, ms, account, user, plan, amount: {
            k: v
            for k, v in {
                "type": t,
                "timestamp": BASE + h * HOUR + ms,
                "account_id": account,
                "user": user,
                "plan": plan,
                "amount": amount,
            }.items()
            if v is not None
        },
        st.sampled_from(["a", "b", "c"]),
        st.integers(0, 6),
        st.sampled_from([0, 1, HOUR - 1]),
        st.sampled_from(["x", "y", 3, None]),
        st.sampled_from(["u1", "u2", "u3", None]),
        st.sampled_from(["pro", "free", "gold", None]),
        st.one_of(st.none(), st.integers(-2, 3), st.sampled_from([0.1, 0.2, 0.7, 1e-9])),
    ),
    max_size=40,
)


def parsed(raw: list[dict[str, Any]]) -> list[tuple[Event, int]]:
    out = []
    for seq, item in enumerate(raw):
        result = parse_event(item, NOW)
        assert isinstance(result, Event)
        out.append((result, seq))
    return out


def engine_of(pairs: list[tuple[Event, int]]) -> Engine:
    engine = Engine(CATALOG)
    for item, seq in pairs:
        engine.apply(item, seq)
    return engine


@settings(max_examples=200)
@given(events_strategy, st.data())
def test_merging_the_states_of_two_parts_gives_the_state_of_the_whole(
    raw: list[dict[str, Any]], data: st.DataObject
) -> None:
    pairs = parsed(raw)
    mask = data.draw(st.lists(st.booleans(), min_size=len(pairs), max_size=len(pairs)))
    first = engine_of([p for p, m in zip(pairs, mask, strict=True) if m])
    second = engine_of([p for p, m in zip(pairs, mask, strict=True) if not m])
    whole = engine_of(pairs)
    one_way = copy.deepcopy(first)
    one_way.merge_states(second.states)
    other_way = copy.deepcopy(second)
    other_way.merge_states(first.states)
    assert one_way.states == whole.states
    assert other_way.states == whole.states
    for at in (BASE + 2 * HOUR, BASE + 6 * HOUR + 5):
        assert one_way.evaluate(at) == whole.evaluate(at)


@settings(max_examples=100)
@given(events_strategy, events_strategy, events_strategy)
def test_merge_is_associative(a: list[Any], b: list[Any], c: list[Any]) -> None:
    stream = parsed(a + b + c)
    ea = engine_of(stream[: len(a)])
    eb = engine_of(stream[len(a) : len(a) + len(b)])
    ec = engine_of(stream[len(a) + len(b) :])
    left = copy.deepcopy(ea)
    left.merge_states(eb.states)
    left.merge_states(ec.states)
    right_tail = copy.deepcopy(eb)
    right_tail.merge_states(ec.states)
    right = copy.deepcopy(ea)
    right.merge_states(right_tail.states)
    assert left.states == right.states


@settings(max_examples=150)
@given(events_strategy, st.randoms(use_true_random=False))
def test_the_state_does_not_depend_on_the_arrival_order(raw: list[Any], rnd: Any) -> None:
    pairs = parsed(raw)
    shuffled = list(pairs)
    rnd.shuffle(shuffled)
    assert engine_of(shuffled).states == engine_of(pairs).states


@settings(max_examples=150)
@given(events_strategy, st.integers(0, 9), st.integers(0, 3))
def test_expire_then_evaluate_equals_evaluate(raw: list[Any], hours: int, earlier: int) -> None:
    at = BASE + hours * HOUR + 17
    engine = engine_of(parsed(raw))
    expected = engine.evaluate(at)
    engine.expire(at - earlier * HOUR)
    assert engine.evaluate(at) == expected
    engine.expire(at)
    assert engine.evaluate(at) == expected
    for name in ("ent", "cnt", "amt", "dst"):
        assert all(b >= at // HOUR - 2 for b in engine.states[name].buckets)


@settings(max_examples=50)
@given(events_strategy)
def test_evaluate_leaves_the_state_unchanged(raw: list[Any]) -> None:
    engine = engine_of(parsed(raw))
    before = copy.deepcopy(engine.states)
    first = engine.evaluate(BASE + 4 * HOUR)
    assert engine.states == before
    assert engine.evaluate(BASE + 4 * HOUR) == first


def test_caps_keep_the_state_small() -> None:
    engine = Engine(CATALOG)
    for seq in range(50):
        engine.apply(
            Event("b", BASE, None, {"account_id": "x", "user": f"u{seq % 10}", "plan": "pro"}), seq
        )
    state = engine.states["ent"]
    assert isinstance(state, EntitiesState)
    cell = state.buckets[BASE // HOUR]["x"]
    assert cell.counts == [2]
    assert cell.sets == [{"u0", "u1"}]  # the 2 smallest labels
    assert cell.value_counts == [{f"u{i}": 2 for i in range(10)}]


def test_the_latest_event_is_kept_per_entity_and_bucket() -> None:
    engine = Engine(CATALOG)
    engine.apply(Event("a", BASE + 10, None, {"account_id": "x", "plan": "pro"}), 5)
    engine.apply(
        Event("a", BASE + 10, None, {"account_id": "x", "plan": "free"}), 3
    )  # earlier arrival
    engine.apply(Event("a", BASE + 9, None, {"account_id": "x", "plan": "gold"}), 9)  # older event
    state = engine.states["ent"]
    assert isinstance(state, EntitiesState)
    cell = state.buckets[BASE // HOUR]["x"]
    assert (cell.latest_ts, cell.latest_seq, cell.labels) == (BASE + 10, 5, ("pro",))


def test_take_states_hands_over_a_delta() -> None:
    engine = Engine(CATALOG)
    engine.apply(Event("a", BASE, None, {"plan": "pro"}), 0)
    delta = engine.take_states()
    assert engine.states["cnt"] == CountState()
    engine.apply(Event("a", BASE, None, {"plan": "pro"}), 1)
    engine.merge_states(delta)
    assert engine.evaluate(BASE)["cnt"].value == 2


def test_states_of_different_kinds_do_not_merge() -> None:
    engine = Engine(CATALOG)
    with pytest.raises(TypeError):
        merge_states(engine.states["cnt"], engine.states["ent"])


def test_late_events_are_not_applied_and_named() -> None:
    engine = Engine(CATALOG)
    clock = BASE + 10 * HOUR
    late = engine.apply(Event("a", BASE, None, {"account_id": "x", "amount": 1}), 0, clock_ms=clock)
    assert sorted(late) == ["amt", "cnt", "ent"]
    assert engine.evaluate(BASE)["cnt"].value == 0
    assert (
        engine.apply(Event("a", clock - 2 * HOUR, None, {"account_id": "x"}), 1, clock_ms=clock)
        == []
    )
    assert engine.evaluate(clock)["cnt"].value == 1


def test_an_event_no_metric_takes_is_a_no_op() -> None:
    engine = Engine(catalog(metric("only", aggregate={"event": "a", "count": True})))
    assert engine.apply(Event("zzz", BASE, None, {}), 0) == []
    assert engine.states["only"] == CountState()


def test_deduplicator_first_occurrence_wins_within_the_horizon() -> None:
    horizon_ms = 1_000
    dedup = Deduplicator(lambda ts: ts + horizon_ms)
    assert dedup.first_time("7", 0)
    assert not dedup.first_time("7", 0), "a retry with the same time is a duplicate"
    assert not dedup.first_time("7", 999), "a repeat before the horizon is a duplicate"
    assert dedup.first_time("8", 0)
    assert dedup.first_time(None, 0) and dedup.first_time(None, 0)
    assert len(dedup) == 2
    assert dedup.first_time("7", 1_000), "at the horizon the id is a new event"
    assert not dedup.first_time("7", 1_999), "and the new event starts a new horizon"


def test_engine_horizon_is_when_an_event_leaves_its_last_window() -> None:
    engine = Engine(
        catalog(
            metric("hourly", aggregate={"event": "a", "count": True}, window="4h", bucket="1h"),
            metric("daily", aggregate={"event": "a", "count": True}, window="2d", bucket="1d"),
        )
    )
    ts = 86_400_000 + 3_600_000 * 5 + 1  # day 1, 05:00:00.001
    assert engine.horizon(ts) == 3 * 86_400_000  # the daily bucket of day 1 leaves at day 3
    assert engine.longest_window_ms == 2 * 86_400_000
