"""Fields, labels, numbers and filters as the engine reads them (docs/semantics.md)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import nsm_native
import orjson
import pytest
from engine_support import BASE, event, metric, values

EVENT: dict[str, Any] = {
    "type": "report.sent",
    "timestamp": 1,
    "plan": "pro",
    "seats": None,
    "status": None,
    "properties": {"plan": "free", "seats": 7, "region": "eu", "a.b": "literal-key"},
    "context": {"region": "us", "deep": {"x": 1}},
}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("plan", "pro"),  # the top level wins
        ("seats", 7),  # a top-level null gives way to properties
        ("region", "eu"),  # only in properties
        ("status", None),  # null at the top level, absent below: missing
        ("missing", None),
        ("properties.plan", "free"),
        ("context.region", "us"),
        ("context.deep.x", 1),
        ("context.region.x", None),  # through a string
        ("nothing.here", None),
        ("a.b", None),  # a dotted name is a path, never a key containing a dot
    ],
)
def test_lookup(name: str, expected: Any) -> None:
    ((found, _),) = nsm_native.FieldReader([name]).read([orjson.dumps(EVENT)])[0]
    assert found == (None if expected is None else nsm_native.label(orjson.dumps(expected)))


def test_properties_that_is_not_an_object_holds_nothing() -> None:
    data = {"type": "a", "properties": ["plan"], "x": 1}
    read = nsm_native.FieldReader(["plan", "x"]).read([orjson.dumps(data)])[0]
    assert read == [(None, None), ("1", 1.0)]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("x", "x"),
        ("", ""),
        (True, "true"),
        (False, "false"),
        (7, "7"),
        (-3, "-3"),
        (3.0, "3"),
        (-0.0, "0"),
        (1e20, "100000000000000000000"),
        (2.5, "2.5"),
        (0.1, "0.1"),
        (1e-7, "1e-07"),
        ({"b": 1, "a": [1, "é"]}, '{"a":[1,"é"],"b":1}'),
        ([1, 2], "[1,2]"),
    ],
)
def test_label(value: Any, expected: str) -> None:
    assert nsm_native.label(orjson.dumps(value)) == expected


def test_a_missing_segment_value_is_unknown() -> None:
    found = values(
        [event("a", BASE, plan=4), event("a", BASE)],
        metric("m", segments=["plan"], aggregate={"event": "a", "count": True}),
    )["m"]["segments"]
    assert found == {"plan": {"4": 1, "unknown": 1}}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, Decimal(3)),
        (0.1, Decimal("0.1")),
        (1e-7, Decimal("1e-7")),
        (True, None),
        ("5", None),
        (None, None),
        ([1], None),
    ],
)
def test_numbers_are_the_decimals_they_are_written_as(value: Any, expected: Decimal | None) -> None:
    """A sum adds the decimal a number is written as, and nothing for anything else."""
    found = values(
        [event("a", BASE, amount=value), event("a", BASE, amount=0.2)],
        metric("m", aggregate={"event": "a", "sum": "amount"}),
    )["m"]["value"]
    assert Decimal(repr(found)) == (expected or 0) + Decimal("0.2")


def holds(where: dict[str, Any], data: dict[str, Any]) -> bool:
    """Whether an event with `data` matches a metric filtered by `where`."""
    counted = values(
        [event("a", BASE, **data)],
        metric("m", aggregate={"event": "*", "where": where, "count": True}),
    )["m"]["value"]
    return bool(counted)


@pytest.mark.parametrize(
    ("where", "data", "expected"),
    [
        ({"status": "sent"}, {"status": "sent"}, True),
        ({"status": "sent"}, {"status": "failed"}, False),
        ({"status": "sent"}, {}, False),
        ({"status": "sent"}, {"properties": {"status": "sent"}}, True),
        ({"n": 1}, {"n": 1.0}, True),
        ({"n": 1.0}, {"n": 1}, True),
        ({"n": 1}, {"n": True}, False),
        ({"n": True}, {"n": 1}, False),
        ({"n": True}, {"n": True}, True),
        ({"n": 1}, {"n": "1"}, False),
        ({"n": "1"}, {"n": 1}, False),
        ({"n": None}, {"n": None}, False),
        ({"s": {"in": ["a", 2, True]}}, {"s": "a"}, True),
        ({"s": {"in": ["a", 2, True]}}, {"s": 2.0}, True),
        ({"s": {"in": ["a", 2, True]}}, {"s": True}, True),
        ({"s": {"in": ["a", 2]}}, {"s": True}, False),
        ({"s": {"in": ["a", 1]}}, {"s": True}, False),
        ({"s": {"in": [True]}}, {"s": 1}, False),
        ({"s": {"in": ["a"]}}, {}, False),
        ({"s": {"in": ["a"]}}, {"s": ["a"]}, False),
        ({"s": {"not_in": ["a", "b"]}}, {"s": "c"}, True),
        ({"s": {"not_in": ["a", "b"]}}, {"s": "a"}, False),
        ({"s": {"not_in": ["a"]}}, {}, False),
        ({"s": {"not_in": ["a"]}}, {"s": None}, False),
        ({"s": {"not_in": ["a"]}}, {"s": {"x": 1}}, True),
        ({"s": {"not": "a"}}, {"s": "b"}, True),
        ({"s": {"not": "a"}}, {"s": "a"}, False),
        ({"s": {"not": "a"}}, {}, False),
        ({"s": {"not": 1}}, {"s": True}, True),
        ({"n": {"gt": 10}}, {"n": 11}, True),
        ({"n": {"gt": 10}}, {"n": 10}, False),
        ({"n": {"gte": 10}}, {"n": 10.0}, True),
        ({"n": {"lt": 10}}, {"n": 9.5}, True),
        ({"n": {"lt": 10}}, {"n": 10}, False),
        ({"n": {"lte": 10}}, {"n": 10}, True),
        ({"n": {"gt": 0}}, {"n": True}, False),
        ({"n": {"gt": 0}}, {"n": "5"}, False),
        ({"n": {"lt": 0}}, {}, False),
        ({"n": {"gte": 10, "lt": 100}}, {"n": 50}, True),
        ({"n": {"gte": 10, "lt": 100}}, {"n": 100}, False),
        ({"n": {"exists": True}}, {"n": 0}, True),
        ({"n": {"exists": True}}, {"n": None}, False),
        ({"n": {"exists": False}}, {}, True),
        ({"n": {"exists": False}}, {"n": None}, True),
        ({"n": {"exists": False}}, {"n": False}, False),
        ({"a": "x", "b": {"gt": 1}}, {"a": "x", "b": 2}, True),
        ({"a": "x", "b": {"gt": 1}}, {"a": "x", "b": 1}, False),
        ({"a": "x", "b": 2, "c": {"exists": False}}, {"a": "x", "b": 2}, True),
        ({"a": "x", "b": 2, "c": {"exists": False}}, {"a": "x", "b": 2, "c": 0}, False),
        ({"properties.s": "a"}, {"s": "b", "properties": {"s": "a"}}, True),
        ({"ctx.region": {"in": ["eu"]}}, {"ctx": {"region": "eu"}}, True),
    ],
)
def test_filters(where: dict[str, Any], data: dict[str, Any], expected: bool) -> None:
    assert holds(where, data) is expected
