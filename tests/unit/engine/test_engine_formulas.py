"""Formulas: totals, division by zero, per-segment values and their cap."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from engine_support import BASE, compute, event, metric, values


def count(
    name: str, event_type: str, segments: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    return metric(
        name, aggregate={"event": event_type, "count": True}, segments=segments or [], **extra
    )


def formula(text: str, **extra: Any) -> dict[str, Any]:
    return metric("f", formula=text, **extra)


def deals(won: dict[str, int], created: dict[str, int]) -> list[dict[str, Any]]:
    stream = [event("won", BASE, plan=p) for p, n in won.items() for _ in range(n)]
    return stream + [event("created", BASE, plan=p) for p, n in created.items() for _ in range(n)]


WON, CREATED = count("won", "won", ["plan"]), count("created", "created", ["plan"])


def test_the_total_is_the_formula_over_totals() -> None:
    got = values(deals({"pro": 1}, {"pro": 3, "free": 1}), WON, CREATED, formula("won / created"))
    assert got["f"]["value"] == 0.25
    result = compute(
        deals({"pro": 1}, {"pro": 3}), WON, CREATED, formula("(won + 1) * 2 / created")
    )
    assert result.values["f"].value == Decimal(4) / Decimal(3)


def test_a_division_by_zero_has_no_value() -> None:
    got = values(deals({"pro": 2}, {}), WON, CREATED, formula("won / created"))
    assert got["f"] == {"value": None, "segments": {"plan": {"pro": None}}}
    assert values([], WON, CREATED, formula("won / created"))["f"] == {
        "value": None,
        "segments": {"plan": {}},
    }


def test_per_segment_values_over_the_union_with_missing_as_zero() -> None:
    got = values(
        deals({"pro": 1, "gold": 2}, {"pro": 4, "free": 2}), WON, CREATED, formula("won / created")
    )
    assert got["f"]["segments"] == {"plan": {"pro": 0.25, "free": 0.0, "gold": None}}
    assert values(deals({"gold": 2}, {"free": 2}), WON, CREATED, formula("won - created"))["f"][
        "segments"
    ] == {"plan": {"gold": 2.0, "free": -2.0}}


def test_breakdowns_are_the_fields_every_operand_has() -> None:
    won = count("won", "won", ["plan", "region"])
    created = count("created", "created", ["region", "plan", "source"])
    got = values(deals({"pro": 1}, {"pro": 1}), won, created, formula("won / created"))
    assert set(got["f"]["segments"]) == {"plan", "region"}
    plain = count("plain", "created")
    assert (
        values(deals({"pro": 1}, {"pro": 1}), won, plain, formula("won / plain"))["f"]["segments"]
        == {}
    )


def test_declared_segments_choose_among_the_operands_fields() -> None:
    won = count("won", "won", ["plan", "region"])
    created = count("created", "created", ["plan", "region"])
    got = values(
        deals({"pro": 1}, {"pro": 1}), won, created, formula("won / created", segments=["plan"])
    )
    assert set(got["f"]["segments"]) == {"plan"}


def test_the_cap_ranks_by_the_formula_value_and_folds_operands() -> None:
    stream = deals({"a": 1, "b": 3, "c": 1, "d": 0}, {"a": 1, "b": 6, "c": 4, "d": 4})
    got = values(stream, WON, CREATED, formula("won / created", max_segment_values=2))["f"]
    # a = 1, b = 0.5, c = 0.25, d = 0: other is (1 + 0) / (4 + 4), not 0.25 + 0
    assert got["segments"] == {"plan": {"a": 1.0, "b": 0.5, "other": 0.125}}


def test_no_value_ranks_last() -> None:
    stream = deals({"a": 1, "b": 5, "c": 1}, {"a": 2, "c": 4})
    got = values(stream, WON, CREATED, formula("won / created", max_segment_values=1))["f"]
    assert got["segments"] == {"plan": {"a": 0.5, "other": 1.5}}  # (5 + 1) / (0 + 4)


def test_a_formula_over_a_formula() -> None:
    rate = metric("rate", formula="won / created")
    got = values(
        deals({"pro": 1, "gold": 1}, {"pro": 2, "free": 1}),
        WON,
        CREATED,
        rate,
        formula("rate * 100"),
    )
    assert got["f"]["value"] == float(Decimal(2) / Decimal(3) * 100)
    assert got["f"]["segments"] == {"plan": {"pro": 50.0, "free": 0.0, "gold": None}}


def test_a_formula_over_sums_and_distincts() -> None:
    revenue = metric("revenue", aggregate={"event": "paid", "sum": "amount"}, segments=["plan"])
    payers = metric(
        "payers", aggregate={"event": "paid", "distinct": "account_id"}, segments=["plan"]
    )
    stream = [
        event("paid", BASE, plan="pro", amount=10, account_id="a"),
        event("paid", BASE, plan="pro", amount=20, account_id="a"),
        event("paid", BASE, plan="free", amount=0.5, account_id="b"),
    ]
    got = values(stream, revenue, payers, formula("revenue / payers", max_segment_values=1))["f"]
    assert got == {"value": 15.25, "segments": {"plan": {"pro": 30.0, "other": 0.5}}}


def test_constants_only() -> None:
    assert values([], formula("1 / 4"))["f"] == {"value": 0.25, "segments": {}}
    assert values([], formula("1 / (2 - 2)"))["f"] == {"value": None, "segments": {}}
