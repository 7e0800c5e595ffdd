"""`entities` metrics: each condition kind, the window, and segments by the latest event."""

from __future__ import annotations

from typing import Any

from engine_support import BASE, DAY, HOUR, event, metric, values


def entities(*conditions: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return metric("m", entities={"key": "account_id", "all": list(conditions)}, **extra)


def value(events: list[Any], definition: dict[str, Any], at: int | None = None) -> Any:
    return values(events, definition, at=at)["m"]["value"]


def test_count_at_least() -> None:
    definition = entities({"event": "r", "where": {"status": "sent"}, "count_at_least": 2})
    stream = [
        event("r", BASE, account_id="a", status="sent"),
        event("r", BASE + 1, account_id="a", status="sent"),
        event("r", BASE + 2, account_id="b", status="sent"),
        event("r", BASE + 3, account_id="b", status="failed"),
        event("x", BASE + 4, account_id="b", status="sent"),
        event("r", BASE + 5, status="sent"),  # no entity: ignored
    ]
    assert value(stream, definition) == 1
    assert value([*stream, event("r", BASE + 6, account_id="b", status="sent")], definition) == 2


def test_entity_ids_compare_by_label() -> None:
    definition = entities({"event": "r", "count_at_least": 2})
    stream = [event("r", BASE, account_id=7), event("r", BASE + 1, account_id="7")]
    assert value(stream, definition) == 1


def test_distinct_at_least() -> None:
    definition = entities({"event": "r", "distinct": "user_id", "at_least": 3})
    stream = [
        event("r", BASE, account_id="a", user_id="u1"),
        event("r", BASE, account_id="a", user_id="u1"),
        event("r", BASE, account_id="a", user_id="u2"),
        event("r", BASE, account_id="a"),  # without the field: not a value
    ]
    assert value(stream, definition) == 0
    assert value([*stream, event("r", BASE + HOUR, account_id="a", user_id=3)], definition) == 1


def test_distinct_at_least_a_fraction_needs_the_next_whole_number() -> None:
    definition = entities({"event": "r", "distinct": "u", "at_least": 1.5})
    one = [event("r", BASE, account_id="a", u=1)]
    assert value(one, definition) == 0
    assert value([*one, event("r", BASE, account_id="a", u=2)], definition) == 1


def test_distinct_values_spread_over_many_buckets_are_counted_exactly() -> None:
    definition = entities({"event": "r", "distinct": "u", "at_least": 4}, window="7d")
    # Each bucket alone holds fewer than 4 values, and more than 4 in total, overlapping.
    stream = [
        event("r", BASE + h * HOUR, account_id="a", u=u)
        for h, u in [(0, "z"), (0, "y"), (1, "y"), (1, "x"), (2, "a"), (2, "z")]
    ]
    assert value(stream, definition) == 1
    assert value(stream[:4], definition) == 0


def test_each_count_at_least() -> None:
    definition = entities(
        {"event": "w", "distinct": "user_id", "at_least": 2, "each_count_at_least": 3}
    )
    stream = [event("w", BASE + i * HOUR, account_id="a", user_id="u1") for i in range(3)]
    stream += [event("w", BASE + i, account_id="a", user_id="u2") for i in range(2)]
    stream += [event("w", BASE + i, account_id="a", user_id=f"x{i}") for i in range(5)]
    assert value(stream, definition) == 0  # only u1 has 3 events
    assert (
        value([*stream, event("w", BASE + 9 * HOUR, account_id="a", user_id="u2")], definition) == 1
    )


def test_sum_at_least_is_exact() -> None:
    definition = entities({"event": "p", "sum": "amount", "at_least": 0.3})
    stream = [
        event("p", BASE, account_id="a", amount=0.1),
        event("p", BASE + 1, account_id="a", amount=0.2),  # 0.1 + 0.2 is 0.3 exactly here
        event("p", BASE, account_id="b", amount=0.1),
        event("p", BASE, account_id="b", amount="0.2"),  # a string is not a number
        event("p", BASE, account_id="b", amount=True),
        event("p", BASE, account_id="c", properties={"amount": 1}),
    ]
    assert value(stream, definition) == 2


def test_sum_at_least_zero_counts_entities_that_match_any_condition() -> None:
    definition = entities(
        {"event": "login", "count_at_least": 1},
        {"event": "refund", "sum": "amount", "at_least": 0},
    )
    stream = [
        event("login", BASE, account_id="a"),
        event("login", BASE, account_id="b"),
        event("refund", BASE, account_id="b", amount=-5),
        event("other", BASE, account_id="c"),
    ]
    assert value(stream, definition) == 1


def test_every_condition_must_hold() -> None:
    definition = entities(
        {"event": "r", "count_at_least": 1},
        {"event": ["b", "c"], "count_at_least": 2},
    )
    stream = [
        event("r", BASE, account_id="a"),
        event("b", BASE, account_id="a"),
        event("c", BASE, account_id="a"),
        event("b", BASE, account_id="x"),
        event("c", BASE, account_id="x"),
    ]
    assert value(stream, definition) == 1


def test_a_star_condition_takes_any_type() -> None:
    definition = entities({"event": "*", "count_at_least": 3})
    stream = [event(t, BASE, account_id="a") for t in ("x", "y", "z")]
    assert value(stream, definition) == 1


def test_only_events_inside_the_window_count() -> None:
    definition = entities({"event": "r", "count_at_least": 2}, window="2h")
    # buckets b, b + 1 and b + 2; a 2h window holds two consecutive buckets
    early, middle, late = (event("r", BASE + h * HOUR, account_id="a") for h in (0, 1, 2))
    assert value([early, late], definition, at=BASE + HOUR + 1) == 0
    assert value([early, late], definition, at=BASE + 2 * HOUR) == 0
    assert value([early, middle, late], definition, at=BASE + HOUR) == 1
    assert value([early, middle, late], definition, at=BASE + 2 * HOUR) == 1
    assert value([early, middle, late], definition, at=BASE + 3 * HOUR) == 0


def test_events_after_t_are_not_in_the_window() -> None:
    definition = entities({"event": "r", "count_at_least": 2})
    stream = [event("r", BASE, account_id="a"), event("r", BASE + HOUR, account_id="a")]
    assert value(stream, definition, at=BASE + HOUR - 1) == 0
    assert value(stream, definition, at=BASE + HOUR) == 1
    assert value(stream, definition, at=BASE + DAY - 1) == 1
    assert value(stream, definition, at=BASE + DAY) == 0


def test_segment_is_the_latest_matching_event_in_the_window() -> None:
    definition = entities(
        {"event": "r", "where": {"ok": True}, "count_at_least": 1}, segments=["plan"]
    )
    stream = [
        event("r", BASE + 5, account_id="a", ok=True, plan="pro"),
        event("r", BASE + 1, account_id="a", ok=True, plan="free"),  # older, arrives later
        event("r", BASE + 9, account_id="a", ok=False, plan="gold"),  # does not match
        event("r", BASE + 5, account_id="b", ok=True, plan="free"),
        event("r", BASE + 5, account_id="b", ok=True, plan="pro"),  # a tie: the later arrival
        event("r", BASE, account_id="c", ok=True),
    ]
    got = values(stream, definition)["m"]
    assert got == {"value": 3, "segments": {"plan": {"pro": 2, "unknown": 1}}}


def test_segment_values_of_entities_that_do_not_qualify_are_listed_with_0() -> None:
    definition = entities({"event": "r", "count_at_least": 2}, segments=["plan", "region"])
    stream = [
        event("r", BASE, account_id="a", plan="pro", region="eu"),
        event("r", BASE + 1, account_id="a", plan="pro", region="us"),
        event("r", BASE, account_id="b", plan="free", region="eu"),
    ]
    assert values(stream, definition)["m"] == {
        "value": 1,
        "segments": {"plan": {"pro": 1, "free": 0}, "region": {"us": 1, "eu": 0}},
    }


def test_the_latest_event_outside_the_window_does_not_decide_the_segment() -> None:
    definition = entities({"event": "r", "count_at_least": 1}, window="2h", segments=["plan"])
    stream = [
        event("r", BASE, account_id="a", plan="free"),
        event("r", BASE + 3 * HOUR, account_id="a", plan="pro"),
    ]
    assert values(stream, definition, at=BASE + HOUR)["m"]["segments"] == {"plan": {"free": 1}}
    assert values(stream, definition, at=BASE + 4 * HOUR)["m"]["segments"] == {"plan": {"pro": 1}}
