"""`aggregate` metrics: count, exact sum, distinct, with their breakdowns."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from engine_support import BASE, HOUR, compute, event, metric, values


def aggregate(**spec: Any) -> dict[str, Any]:
    segments = spec.pop("segments", [])
    return metric("m", aggregate=spec, segments=segments)


STREAM = [
    event("deal", BASE, plan="pro", amount=0.1, account_id="a", source="inbound"),
    event("deal", BASE + 1, plan="pro", amount=0.2, account_id="b", source="outbound"),
    event("deal", BASE + 2, plan="free", amount="3", account_id="a", source="inbound"),
    event("deal", BASE + 3, amount=1, source="partner"),
    event("other", BASE + 4, plan="pro", amount=100, account_id="z", source="inbound"),
]


def test_count() -> None:
    got = values(STREAM, aggregate(event="deal", count=True, segments=["plan"]))["m"]
    assert got == {"value": 4, "segments": {"plan": {"pro": 2, "free": 1, "unknown": 1}}}


def test_count_with_a_filter() -> None:
    definition = aggregate(
        event="deal", where={"source": {"in": ["inbound", "outbound"]}}, count=True
    )
    assert values(STREAM, definition)["m"] == {"value": 3, "segments": {}}


def test_sum_is_exact_and_lists_labels_that_add_nothing() -> None:
    result = compute(STREAM, aggregate(event="deal", sum="amount", segments=["plan"]))
    assert result.values["m"].value == Decimal("1.3")
    assert result.values["m"].segments == {
        "plan": {"pro": Decimal("0.3"), "free": Decimal(0), "unknown": Decimal(1)}
    }
    assert result.to_json()["metrics"]["m"] == {
        "value": 1.3,
        "segments": {"plan": {"pro": 0.3, "free": 0.0, "unknown": 1.0}},
    }


def test_sum_does_not_round_at_28_digits() -> None:
    stream = [
        event("p", BASE, amount=1e20),
        event("p", BASE, amount=1e-20),
        event("p", BASE, amount=-1e20),
    ]
    assert compute(stream, aggregate(event="p", sum="amount")).values["m"].value == Decimal("1e-20")


def test_distinct() -> None:
    got = values(STREAM, aggregate(event="*", distinct="account_id", segments=["source"]))["m"]
    assert got == {
        "value": 3,
        "segments": {"source": {"inbound": 2, "outbound": 1, "partner": 0}},
    }


def test_no_matching_event_is_zero_with_empty_breakdowns() -> None:
    result = compute(STREAM, aggregate(event="nothing", sum="amount", segments=["plan"]))
    assert result.to_json()["metrics"]["m"] == {"value": 0.0, "segments": {"plan": {}}}
    count = values(STREAM, aggregate(event="nothing", count=True))["m"]
    assert count == {"value": 0, "segments": {}}
    assert type(count["value"]) is int


def test_the_window_slides() -> None:
    definition = metric("m", window="2h", aggregate={"event": "p", "count": True})
    stream = [event("p", BASE + h * HOUR) for h in range(5)]
    assert [values(stream, definition, at=BASE + h * HOUR)["m"]["value"] for h in range(7)] == [
        1,
        2,
        2,
        2,
        2,
        1,
        0,
    ]
