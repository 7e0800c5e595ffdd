"""The brute-force oracle checked against hand-computed values for the tricky cases."""

from __future__ import annotations

from typing import Any

import pytest

from tests.oracle import apply_events, label, lookup, oracle_compute, parse_timestamp

DAY = 1_795_132_800_000  # 2026-11-20T00:00:00Z
H = 3_600_000
M = 60_000
T = DAY + 10 * H + 30 * M  # 10:30, inside bucket 10:00-11:00


def ev(type_: str, ts: int, **fields: Any) -> dict[str, Any]:
    return {"type": type_, "timestamp": ts, **fields}


def agg(name: str, aggregate: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "tier": "diagnostic", "window": "4h", "aggregate": aggregate, **extra}


def ent(name: str, conditions: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    spec = {"key": "account_id", "all": conditions}
    return {"name": name, "tier": "north_star", "window": "4h", "entities": spec, **extra}


def formula(name: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "tier": "diagnostic", "window": "4h", "formula": text, **extra}


def run(events: list[Any], metrics: list[dict[str, Any]], at: int | None = T) -> dict[str, Any]:
    return oracle_compute(events, metrics, at_ms=at, now_ms=T + H)["metrics"]


COUNT = {"event": "*", "count": True}


# --- events -------------------------------------------------------------------------------------


def test_invalid_reasons_and_future_skew() -> None:
    raw = [
        "{not json",
        "[1, 2]",
        '{"timestamp": 1}',
        {"type": 5, "timestamp": 1},
        {"type": "a"},
        {"type": "a", "timestamp": None},
        {"type": "a", "timestamp": "2026-11-20T10:00:00"},
        {"type": "a", "timestamp": True},
        {"type": "a", "timestamp": "2026-02-30T10:00:00Z"},
        {"type": "a", "timestamp": T + 300_001},
        {"type": "a", "timestamp": T + 300_000},
        '{"type": "a", "timestamp": "2026-11-20T12:30:00+02:00"}',
    ]
    applied = apply_events(raw, now_ms=T)
    assert applied.invalid == {
        "not_json": 1,
        "not_object": 1,
        "missing_type": 2,
        "missing_timestamp": 2,
        "bad_timestamp": 3,
        "future_timestamp": 1,
    }
    assert [ts for ts, _ in applied.events] == [T + 300_000, T]


def test_timestamps() -> None:
    assert parse_timestamp("2026-11-20T00:00:00Z") == DAY
    assert parse_timestamp("2026-11-20T02:00:00.5+02:00") == DAY + 500
    assert parse_timestamp("2026-11-19T23:00:00.0019-01:00") == DAY + 1
    assert parse_timestamp(DAY) == DAY
    assert parse_timestamp(float(DAY)) is None
    # RFC 3339 section 5.6 allows a lower-case t and z, and a space for the T
    assert parse_timestamp("2026-11-20 00:00:00z") == parse_timestamp("2026-11-20t00:00:00Z") == DAY
    assert parse_timestamp("2026-11-20T00:00:00") is None
    assert parse_timestamp("2026-11-20T00:00:00+2:00") is None


def test_dedup_first_valid_wins_by_label_within_the_horizon() -> None:
    metrics = [agg("n", COUNT)]  # window 4h, bucket 1h; T is 10:30
    raw = [
        {"type": "a", "timestamp": "no zone", "event_id": 1},  # invalid: registers no id
        ev("a", T - 2 * H, event_id=1),  # applied; bucket 08:00, horizon 12:00
        ev("a", T, event_id="1"),  # duplicate of 1: before its horizon
        ev("b", T, event_id=1.0),  # duplicate too: the label of 1.0 is "1"
        ev("a", T, event_id=None),  # no id: never a duplicate
        ev("a", T),
        ev("a", T - 10 * H, event_id=2),  # applied, outside the window; horizon 04:00
        ev("a", T, event_id=2),  # after that horizon: a new event
    ]
    applied = apply_events(raw, now_ms=T, metrics=metrics)
    assert applied.duplicates == 2
    assert len(applied.events) == 5
    assert run(raw, metrics)["n"]["value"] == 4


def test_as_of_defaults_to_largest_applied_timestamp() -> None:
    raw = [ev("a", DAY + H), ev("a", DAY + 5 * H + 1), ev("a", DAY)]
    out = oracle_compute(raw, [agg("n", COUNT)], at_ms=None, now_ms=DAY + 6 * H)
    assert out["as_of"] == "2026-11-20T05:00:00.001Z"
    assert out["metrics"]["n"]["value"] == 1  # buckets 2..5: only 05:00
    empty = oracle_compute([], [agg("n", COUNT)], at_ms=None, now_ms=DAY)
    assert empty["as_of"] == "2026-11-20T00:00:00Z"


def test_window_bucket_boundaries() -> None:
    raw = [
        ev("a", DAY + 7 * H),  # first ms of the first bucket: in
        ev("a", DAY + 7 * H - 1),  # last ms before the window: out
        ev("a", DAY + 11 * H - 1),  # after T but in T's bucket: in
        ev("a", DAY + 11 * H),  # the next bucket: out
    ]
    assert run(raw, [agg("n", COUNT)])["n"]["value"] == 2
    small = agg("n", COUNT, window="3m", bucket="1m")
    raw = [ev("a", T - 2 * M), ev("a", T - 2 * M - 1), ev("a", T + M - 1)]
    assert run(raw, [small])["n"]["value"] == 2


# --- fields, labels, filters ----------------------------------------------------------------


def test_lookup_and_labels() -> None:
    event = {"plan": None, "properties": {"plan": "pro", "x": {"y": 1}}, "context": {"r": "eu"}}
    assert lookup(event, "plan") == "pro"  # a top-level null is missing: properties is next
    assert lookup(event, "properties.x.y") == 1
    assert lookup(event, "context.r") == "eu"
    assert lookup(event, "r") is lookup(event, "nope")
    assert lookup({"properties": {"plan": None}}, "plan") is lookup(event, "nope")
    assert [label(v) for v in ("a", True, False, 3, 3.0, 0.5, 1e20, -2.0)] == [
        "a",
        "true",
        "false",
        "3",
        "3",
        "0.5",
        "100000000000000000000",
        "-2",
    ]
    assert label({"b": [1, 2.5], "a": None}) == '{"a":null,"b":[1,2.5]}'
    assert label(["é"]) == '["é"]'


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"s": 1}, 2),  # 1 and 1.0
        ({"s": True}, 1),
        ({"s": "1"}, 1),
        ({"s": {"in": [1, "x"]}}, 3),
        ({"s": {"not_in": [1]}}, 3),  # True, "1", "x": the missing and null ones never
        ({"s": {"not": True}}, 4),
        ({"s": {"gt": 0.5}}, 2),  # booleans and strings are not numbers
        ({"s": {"gte": 1, "lt": 1}}, 0),
        ({"s": {"exists": True}}, 5),
        ({"s": {"exists": False}}, 2),
        ({"s": {"exists": False, "not": 3}}, 0),
        ({"s": 1, "k": "x"}, 1),
    ],
)
def test_filters(where: dict[str, Any], expected: int) -> None:
    values = [1, 1.0, True, "1", "x", None]
    raw = [ev("a", T, s=v, k="x" if i == 0 else "y") for i, v in enumerate(values)]
    raw.append(ev("a", T))
    assert run(raw, [agg("n", {"event": "a", "where": where, "count": True})])["n"]["value"] == (
        expected
    )


def test_event_types() -> None:
    raw = [ev("a", T), ev("b", T), ev("c", T)]
    metrics = [
        agg("one", {"event": "a", "count": True}),
        agg("two", {"event": ["a", "c"], "count": True}),
    ]
    out = run(raw, metrics)
    assert (out["one"]["value"], out["two"]["value"]) == (1, 2)


# --- aggregates ---------------------------------------------------------------------------------


def test_aggregates_exact_sums_distinct_and_segments() -> None:
    raw = [
        ev("a", T, amount=0.1, plan="pro", user=1),
        ev("a", T, amount=0.2, plan="pro", user=1.0),
        ev("a", T, properties={"amount": "7", "plan": "free", "user": "1"}),
        ev("a", T, amount=True, user=True),
        ev("b", T, amount=100, plan="pro"),
    ]
    metrics = [
        agg("total", {"event": "a", "sum": "amount"}, segments=["plan"]),
        agg("users", {"event": "a", "distinct": "user"}, segments=["plan"]),
        agg("none", {"event": "zzz", "sum": "amount"}, segments=["plan"]),
    ]
    out = run(raw, metrics)
    assert out["total"] == {
        "value": 0.3,
        "segments": {"plan": {"pro": 0.3, "free": 0.0, "unknown": 0.0}},
    }
    assert out["users"] == {"value": 2, "segments": {"plan": {"pro": 1, "free": 1, "unknown": 1}}}
    assert out["none"] == {"value": 0.0, "segments": {"plan": {}}}


def test_cap_folds_into_other_with_literal_other() -> None:
    plans = ["a", "a", "a", "b", "b", "c", "c", "d", "other"]
    raw = [ev("x", T, plan=p, user=i % 3) for i, p in enumerate(plans)]
    capped = agg("n", COUNT, segments=["plan"], max_segment_values=2)
    assert run(raw, [capped])["n"]["segments"] == {"plan": {"a": 3, "b": 2, "other": 4}}
    # with a literal `other` that keeps its label, the folded ones are added to it
    raw += [ev("x", T, plan="other")] * 3
    assert run(raw, [capped])["n"]["segments"] == {"plan": {"other": 4 + 5, "a": 3}}
    # a distinct aggregate folds the union of the labels: users 0..2 below
    distinct = agg("u", {"event": "x", "distinct": "user"}, segments=["plan"], max_segment_values=1)
    raw = [
        ev("x", T, plan=p, user=u) for p, u in [("a", 1), ("a", 2), ("b", 0), ("c", 0), ("c", 1)]
    ]
    assert run(raw, [distinct])["u"]["segments"] == {"plan": {"a": 2, "other": 2}}


# --- entities -----------------------------------------------------------------------------------


def test_entities_nested_threshold_7_seats_each_3_plus() -> None:
    cond = {"event": "wf", "distinct": "seat", "at_least": 2, "each_count_at_least": 3}
    raw = []
    for account, seats in {"A": [3, 3], "B": [3, 2, 2], "C": [5]}.items():
        for seat, count in enumerate(seats):
            raw += [ev("wf", T, account_id=account, seat=seat)] * count
    raw.append(ev("wf", T, account_id="B", seat=None))
    assert run(raw, [ent("n", [cond])])["n"]["value"] == 1  # only A has 2 seats with 3+


def test_entities_several_conditions_exact_sum_and_key_labels() -> None:
    conds = [
        {"event": "pay", "sum": "amount", "at_least": 0.3},
        {"event": "login", "where": {"ok": True}, "count_at_least": 2},
    ]
    raw = [
        ev("pay", T, account_id=7, amount=0.1),
        ev("pay", T, account_id="7", amount=0.2),  # same entity as 7: 0.1 + 0.2 >= 0.3 exactly
        ev("login", T, account_id=7.0, ok=True),
        ev("login", T, properties={"account_id": 7, "ok": True}),
        ev("pay", T, account_id="x", amount=1),
        ev("login", T, account_id="x", ok=True),
        ev("login", T, account_id="x", ok=1),  # 1 is not true
        ev("login", T, ok=True),  # no key: ignored
    ]
    assert run(raw, [ent("n", conds)])["n"]["value"] == 1


def test_entity_segments_latest_matching_event_ties_by_arrival() -> None:
    cond = {"event": "use", "count_at_least": 2}
    raw = [
        ev("use", T - H, account_id="A", plan="free"),
        ev("use", T - 2 * H, account_id="A", plan="pro"),
        ev("other", T, account_id="A", plan="ent"),  # does not match: no effect on the segment
        ev("use", T, account_id="B", plan="pro"),
        ev("use", T, account_id="B", plan="free"),  # same time, later arrival: wins
        ev("use", T, account_id="C", plan="pro"),
        ev("use", T - 5 * H, account_id="C", plan="ent"),  # outside the window
        ev("use", T, account_id="D"),
        ev("use", T - H, account_id="D", plan="pro"),
        ev("use", T - H, account_id="D", plan="pro"),
    ]
    out = run(raw, [ent("n", [cond], segments=["plan"])])["n"]
    assert out == {"value": 3, "segments": {"plan": {"free": 2, "pro": 0, "unknown": 1}}}
    capped = ent("n", [cond], segments=["plan"], max_segment_values=1)
    assert run(raw, [capped])["n"]["segments"] == {"plan": {"free": 2, "other": 1}}


# --- formulas -----------------------------------------------------------------------------------


def test_formulas_totals_zero_denominators_union_and_cap() -> None:
    won = agg("won", {"event": "won", "count": True}, segments=["plan"])
    opp = agg("opp", {"event": "opp", "count": True}, segments=["plan", "region"])
    raw = [ev("won", T, plan=p) for p in ["a", "a", "b", "c"]]
    raw += [ev("opp", T, plan=p, region="eu") for p in ["a", "a", "a", "a", "b", "d", "d"]]
    rate = formula("rate", "won / opp", max_segment_values=2)
    spread = formula("spread", "(won - opp) * 2 + 1")
    out = run(raw, [won, opp, rate, spread])
    # a: 2/4, b: 1/1, c: 1/0 (no value, ranks last), d: 0/2; kept b and a; other = (1+0)/(0+2)
    assert out["rate"] == {"value": 4 / 7, "segments": {"plan": {"b": 1.0, "a": 0.5, "other": 0.5}}}
    assert out["spread"]["value"] == -5.0
    assert out["spread"]["segments"] == {"plan": {"a": -3.0, "b": 1.0, "c": 3.0, "d": -3.0}}
    none = run([], [won, opp, rate])["rate"]
    assert none == {"value": None, "segments": {"plan": {}}}


def test_formula_declared_segments_and_folded_other_without_value() -> None:
    a = agg("a", {"event": "a", "count": True}, segments=["plan", "region"])
    b = agg("b", {"event": "b", "count": True}, segments=["region", "plan"])
    f = formula("f", "a / b", segments=["region"], max_segment_values=1)
    raw = [ev("a", T, region="x"), ev("a", T, region="y"), ev("b", T, region="x")]
    out = run(raw, [f, a, b])["f"]  # operands may come later in the list
    assert out == {"value": 2.0, "segments": {"region": {"x": 1.0, "other": None}}}


def test_numbers_compare_by_value_even_beyond_float_precision() -> None:
    raw = [ev("a", T, s=2**60 + 4), ev("a", T, s=2**60)]
    where = {"s": {"gt": float(2**60)}}
    assert run(raw, [agg("n", {"event": "a", "where": where, "count": True})])["n"]["value"] == 1


def test_entities_are_those_with_a_matching_event_in_the_window() -> None:
    # with `sum ... at_least: 0` an entity qualifies without events of that condition, but only an
    # entity with some event matching some condition is counted at all
    conds = [
        {"event": "x", "count_at_least": 1},
        {"event": "y", "sum": "amount", "at_least": 0},
    ]
    raw = [
        ev("x", T, account_id="A"),  # qualifies: no y events, sum 0 >= 0
        ev("y", T, account_id="B", amount=-1),  # x missing; sum -1
        ev("z", T, account_id="C"),  # no matching event: not an entity of this metric
        ev("x", T, account_id="D"),
        ev("y", T, account_id="D", amount=0.5),
    ]
    only_sum = ent("s", [conds[1]], segments=["plan"])
    out = run(raw, [ent("n", conds), only_sum])
    assert out["n"]["value"] == 2
    assert out["s"] == {"value": 1, "segments": {"plan": {"unknown": 1}}}
