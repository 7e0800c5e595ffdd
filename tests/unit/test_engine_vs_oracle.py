"""Property tests: the engine equals a brute-force recomputation from the raw events.

For random definitions and random streams (duplicates, invalid and future events, out-of-order and
edge timestamps), `compute_metrics` must give the same numbers as the oracle at every as-of time,
and the same numbers for any arrival order of events that carry no repeated id.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from processor.engine import compute_metrics
from tests.oracle import apply_events, label, parse_timestamp
from tests.oracle import oracle_compute as oracle
from tests.strategies import (
    BASE_MS,
    WINDOWS,
    Scenario,
    catalog_of,
    definitions,
    distinct_timestamps,
    events,
    scenarios,
    timestamps_ms,
)


def engine_json(
    raw: list[Any], metrics: list[dict[str, Any]], at: int | None, now: int
) -> dict[str, Any]:
    result = compute_metrics(copy.deepcopy(raw), catalog_of(metrics), at_ms=at, now_ms=now)
    out = result.to_json()
    return json.loads(out) if isinstance(out, str | bytes) else out


def kind_of(metric: dict[str, Any]) -> str:
    if "formula" in metric:
        return "formula"
    if "aggregate" in metric and metric["aggregate"].get("sum") is not None:
        return "sum"
    return "int"


def same_number(kind: str, got: Any, want: Any) -> bool:
    if kind == "int":
        return type(got) is int and got == want
    if want is None:
        return got is None
    if not isinstance(got, float):
        return False
    if kind == "sum":
        return got == want
    return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12)


def assert_same(got: dict[str, Any], want: dict[str, Any], metrics: list[dict[str, Any]]) -> None:
    assert parse_timestamp(got["as_of"]) == parse_timestamp(want["as_of"]), (got, want)
    assert set(got["metrics"]) == set(want["metrics"])
    for metric in metrics:
        name, kind = metric["name"], kind_of(metric)
        g, w = got["metrics"][name], want["metrics"][name]
        context = f"{name}: engine {g} != oracle {w}"
        assert same_number(kind, g["value"], w["value"]), context
        assert set(g.get("segments") or {}) == set(w["segments"]), context
        for field, labels in w["segments"].items():
            assert set(g["segments"][field]) == set(labels), context
            for lab, value in labels.items():
                assert same_number(kind, g["segments"][field][lab], value), context


@settings(max_examples=400, report_multiple_bugs=False)
@given(scenarios())
def test_engine_equals_oracle(scn: Scenario) -> None:
    expected_io = apply_events(scn.raw, scn.now_ms, metrics=scn.metrics)
    for at in scn.as_of:
        result = compute_metrics(
            copy.deepcopy(scn.raw), catalog_of(scn.metrics), at_ms=at, now_ms=scn.now_ms
        )
        out = result.to_json()
        got = json.loads(out) if isinstance(out, str | bytes) else out
        want = oracle(scn.raw, scn.metrics, at, scn.now_ms)
        assert_same(got, want, scn.metrics)
        assert result.as_of_ms == parse_timestamp(want["as_of"])
        assert dict(result.invalid) == dict(expected_io.invalid)
        assert result.duplicates == expected_io.duplicates
        assert result.applied == len(expected_io.events)


Case = tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], int | None]


@st.composite
def shuffled(draw: st.DrawFn) -> Case:
    """Definitions, a stream without repeated ids or equal timestamps, a permutation, an as-of."""
    window = draw(st.sampled_from(WINDOWS))
    metrics = draw(definitions(window))
    stream = distinct_timestamps(draw(events(window, unique_ids=draw(st.booleans()))))
    ids = [label(e["event_id"]) for e in stream if e.get("event_id") is not None]
    if len(set(ids)) != len(ids):  # which repeat wins depends on the order: no ids here
        stream = [{k: v for k, v in e.items() if k != "event_id"} for e in stream]
    order = draw(st.permutations(stream))
    at = draw(st.one_of(st.none(), timestamps_ms(window)))
    return metrics, stream, list(order), at


@settings(max_examples=150, report_multiple_bugs=False)
@given(shuffled())
def test_any_arrival_order_gives_the_same_numbers(case: Case) -> None:
    metrics, stream, order, at = case
    now = BASE_MS + 10 * 86_400_000
    first = engine_json(stream, metrics, at, now)
    assert_same(first, oracle(stream, metrics, at, now), metrics)
    assert_same(engine_json(order, metrics, at, now), first, metrics)
    # the shuffled stream cut in two parts applied the other way round
    half = len(order) // 2
    assert_same(engine_json(order[half:] + order[:half], metrics, at, now), first, metrics)


def test_a_fixed_stream_through_both() -> None:
    """A small hand-made stream through both, so a broken comparison cannot pass vacuously."""
    base = BASE_MS
    raw: list[Any] = [
        {"type": "a", "timestamp": base, "event_id": 7, "account_id": "x", "amount": 0.1},
        {"type": "a", "timestamp": base + 1, "event_id": "7", "account_id": "y"},
        {"type": "a", "timestamp": base + 2, "account_id": "y", "amount": 0.2},
        "{oops",
        {"type": "a", "timestamp": "2026-11-20T10:00:00"},
    ]
    metrics = [
        {
            "name": "total",
            "tier": "diagnostic",
            "window": "4h",
            "aggregate": {"event": "a", "sum": "amount"},
            "segments": ["account_id"],
        }
    ]
    result = compute_metrics(copy.deepcopy(raw), catalog_of(metrics), now_ms=base)
    assert (dict(result.invalid), result.duplicates, result.applied, result.as_of_ms) == (
        {"not_json": 1, "bad_timestamp": 1},
        1,
        2,
        base + 2,
    )
    got = engine_json(raw, metrics, None, base)
    want = oracle(raw, metrics, None, base)
    assert want["metrics"]["total"] == {
        "value": 0.3,
        "segments": {"account_id": {"x": 0.1, "y": 0.2}},
    }
    assert_same(got, want, metrics)
