"""The cap: the largest values keep their label, the rest are folded into `other`."""

from __future__ import annotations

from typing import Any

from engine_support import BASE, event, metric, values


def by_plan(counts: dict[str, int]) -> list[dict[str, Any]]:
    return [
        event("e", BASE + i, plan=plan, user=f"{plan}-{i}")
        for plan, n in counts.items()
        for i in range(n)
    ]


def test_counts_over_the_cap_fold_into_other() -> None:
    definition = metric(
        "m", aggregate={"event": "e", "count": True}, segments=["plan"], max_segment_values=2
    )
    got = values(by_plan({"a": 5, "b": 3, "c": 3, "d": 1}), definition)["m"]
    # b and c tie: the label decides
    assert got == {"value": 12, "segments": {"plan": {"a": 5, "b": 3, "other": 4}}}


def test_at_the_cap_nothing_is_folded() -> None:
    definition = metric(
        "m", aggregate={"event": "e", "count": True}, segments=["plan"], max_segment_values=3
    )
    got = values(by_plan({"a": 1, "b": 1, "c": 1}), definition)["m"]
    assert got["segments"] == {"plan": {"a": 1, "b": 1, "c": 1}}


def test_a_literal_other_is_ranked_and_takes_the_folded_values_when_kept() -> None:
    definition = metric(
        "m", aggregate={"event": "e", "count": True}, segments=["plan"], max_segment_values=2
    )
    kept = values(by_plan({"other": 4, "a": 5, "b": 1, "c": 2}), definition)["m"]
    assert kept["segments"] == {"plan": {"a": 5, "other": 7}}
    folded = values(by_plan({"other": 1, "a": 5, "b": 4, "c": 2}), definition)["m"]
    assert folded["segments"] == {"plan": {"a": 5, "b": 4, "other": 3}}


def test_a_distinct_aggregate_folds_the_union() -> None:
    definition = metric(
        "m", aggregate={"event": "e", "distinct": "user"}, segments=["plan"], max_segment_values=1
    )
    stream = [
        event("e", BASE, plan="a", user="u1"),
        event("e", BASE, plan="a", user="u2"),
        event("e", BASE, plan="a", user="u3"),
        event("e", BASE, plan="b", user="u1"),
        event("e", BASE, plan="b", user="u2"),
        event("e", BASE, plan="c", user="u2"),
    ]
    got = values(stream, definition)["m"]
    assert got == {"value": 3, "segments": {"plan": {"a": 3, "other": 2}}}  # not 2 + 1


def test_sums_fold_into_their_sum() -> None:
    definition = metric(
        "m", aggregate={"event": "e", "sum": "x"}, segments=["plan"], max_segment_values=1
    )
    stream = [
        event("e", BASE, plan="a", x=10),
        event("e", BASE, plan="b", x=0.5),
        event("e", BASE, plan="c", x=0.25),
    ]
    assert values(stream, definition)["m"]["segments"] == {"plan": {"a": 10.0, "other": 0.75}}


def test_entities_fold_into_the_sum_of_qualifying_entities() -> None:
    definition = metric(
        "m",
        entities={"key": "account_id", "all": [{"event": "e", "count_at_least": 2}]},
        segments=["plan"],
        max_segment_values=1,
    )
    stream = []
    for account, plan, n in [
        ("a1", "a", 2),
        ("a2", "a", 2),
        ("b1", "b", 2),
        ("c1", "c", 2),
        ("c2", "c", 1),
    ]:
        stream += [event("e", BASE, account_id=account, plan=plan) for _ in range(n)]
    got = values(stream, definition)["m"]
    # a has 2 qualifying entities; b 1 and c 1 (of 2 listed) fold into 2
    assert got == {"value": 4, "segments": {"plan": {"a": 2, "other": 2}}}
