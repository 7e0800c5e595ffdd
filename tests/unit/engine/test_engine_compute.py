"""compute_metrics: order, dedup, invalid events, the default as-of time, the JSON document."""

from __future__ import annotations

import orjson
from engine_support import BASE, HOUR, NOW, catalog, compute, event, metric

from processor.engine import compute_metrics

COUNT = metric("n", aggregate={"event": "*", "count": True}, segments=["plan"])
SUM = metric("s", aggregate={"event": "*", "sum": "x"})


def test_duplicates_by_event_id_label_first_wins() -> None:
    stream = [
        event("a", BASE, event_id=7, plan="pro"),
        event("a", BASE, event_id="7", plan="free"),
        event("a", BASE, event_id=7.0, plan="gold"),
        event("a", BASE, plan="x"),
        event("a", BASE, plan="x"),
        event("a", BASE, event_id=None, plan="x"),
    ]
    result = compute(stream, COUNT)
    assert result.duplicates == 2
    assert result.applied == 4
    assert result.values["n"].segments == {"plan": {"pro": 1, "x": 3}}


def test_invalid_events_register_no_id_and_are_counted_by_reason() -> None:
    stream = [
        {"type": "a", "event_id": "1"},
        b"not json",
        "[]",
        event("a", NOW + HOUR, event_id="1"),
        event("a", BASE, event_id="1", plan="pro"),
    ]
    result = compute(stream, COUNT)
    assert dict(result.invalid) == {
        "missing_timestamp": 1,
        "not_json": 1,
        "not_object": 1,
        "future_timestamp": 1,
    }
    assert result.duplicates == 0
    assert result.values["n"].value == 1


def test_as_of_defaults_to_the_largest_applied_timestamp() -> None:
    stream = [
        event("a", BASE + 5 * HOUR),
        event("a", BASE),
        event("a", NOW + HOUR),
    ]  # the last: future
    result = compute(stream, COUNT)
    assert result.as_of_ms == BASE + 5 * HOUR
    assert result.values["n"].value == 2


def test_as_of_without_events_is_now() -> None:
    assert compute([], COUNT).as_of_ms == NOW
    assert compute([b"{}"], COUNT).as_of_ms == NOW


def test_the_skew_is_a_parameter() -> None:
    stream = [event("a", NOW + 10)]
    assert compute_metrics(stream, catalog(COUNT), now_ms=NOW, max_future_skew_ms=0).applied == 0
    assert compute_metrics(stream, catalog(COUNT), now_ms=NOW).applied == 1


def test_a_given_as_of_excludes_older_and_later_events() -> None:
    stream = [event("a", BASE - 2 * 24 * HOUR), event("a", BASE), event("a", BASE + HOUR)]
    result = compute(stream, COUNT, at=BASE + 1)
    assert result.as_of_ms == BASE + 1
    assert result.applied == 3
    assert result.values["n"].value == 1


def test_the_json_document() -> None:
    stream = [
        orjson.dumps(event("a", BASE, plan="pro", x=0.5)),
        orjson.dumps(event("a", BASE, x=2)).decode(),
    ]
    document = compute(stream, COUNT, SUM, metric("r", formula="s / n")).to_json()
    assert document == {
        "as_of": "2026-11-20T10:00:00Z",
        "metrics": {
            "n": {"value": 2, "segments": {"plan": {"pro": 1, "unknown": 1}}},
            "s": {"value": 2.5, "segments": {}},
            "r": {"value": 1.25, "segments": {}},
        },
    }
    assert type(document["metrics"]["n"]["value"]) is int
    assert orjson.loads(orjson.dumps(document)) == document


def test_events_are_not_modified() -> None:
    item = event("a", BASE, plan=None, properties={"plan": "pro"})
    snapshot = orjson.dumps(item)
    compute([item], COUNT)
    assert orjson.dumps(item) == snapshot
