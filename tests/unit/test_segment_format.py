"""NSM_INPUT_FORMAT=segment: how a Segment/RudderStack call decodes, and the generator's segment
mode measured by definitions/segment/ giving the north stars definitions/ gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from processor.definitions import load_definitions
from processor.engine import compute_metrics
from processor.events import Event, InvalidEvent, parse_event
from processor.generate import RecordStream, plan_history
from processor.times import parse_time as parse_time_ms

DEFINITIONS = Path(__file__).resolve().parents[2] / "definitions"
NOW = parse_time_ms("2026-11-21T00:00:00Z")


def decode(call: dict[str, Any]) -> Event | InvalidEvent:
    return parse_event(orjson.dumps(call), NOW, 300_000, "segment")


@pytest.mark.parametrize(
    ("call", "event_type"),
    [
        ({"type": "track", "event": "report.sent"}, "report.sent"),
        ({"type": "group", "event": "ignored"}, "group"),
        ({"type": "identify"}, "identify"),
        ({"type": "page", "name": "Home"}, "page"),
        ({"type": "screen"}, "screen"),
        ({"type": "alias"}, "alias"),
    ],
)
def test_the_type_is_the_track_event_or_the_call_type(
    call: dict[str, Any], event_type: str
) -> None:
    event = decode({**call, "messageId": 12, "timestamp": "2026-11-20T10:00:00.5+01:00"})
    assert isinstance(event, Event)
    assert (event.type, event.event_id, event.ts_ms) == (
        event_type,
        "12",
        parse_time_ms("2026-11-20T09:00:00.500Z"),
    )


@pytest.mark.parametrize(
    "call",
    [
        {"type": "track"},
        {"type": "track", "event": ""},
        {"type": "track", "event": 5},
        {"type": "report.sent"},
        {"event": "report.sent"},
    ],
)
def test_a_call_without_a_type_is_missing_type(call: dict[str, Any]) -> None:
    event = decode({**call, "timestamp": "2026-11-20T10:00:00Z"})
    assert isinstance(event, InvalidEvent) and event.reason == "missing_type"


def test_the_nsm_format_reads_a_call_by_its_own_rules() -> None:
    call = {"type": "track", "event": "a", "timestamp": 5, "messageId": "m", "event_id": "e"}
    event = parse_event(orjson.dumps(call), NOW)
    assert isinstance(event, Event) and (event.type, event.event_id) == ("track", "e")


@pytest.mark.parametrize("faults", [{}, {"disorder_ms": 6 * 3_600_000, "duplicates_pct": 5.0}])
def test_the_segment_shape_measures_the_same_north_stars(faults: dict[str, Any]) -> None:
    """Over the same generated history (shuffled by up to 6 h, with repeats), definitions/segment
    over the calls gives every north star and diagnostic, breakdowns included, that definitions/
    gives over NSM's events: group traits stand in for the plan on every event."""
    shape = plan_history(seed=11, accounts=60, days=30, end_ms=NOW - 86_400_000, **faults)
    nsm = compute_metrics((v for _, v in RecordStream(shape)), load_definitions(DEFINITIONS))
    calls_config = plan_history(
        seed=11, accounts=60, days=30, end_ms=NOW - 86_400_000, event_format="segment", **faults
    )
    segment = compute_metrics(
        (v for _, v in RecordStream(calls_config)),
        load_definitions(DEFINITIONS / "segment"),
        input_format="segment",
    )
    assert segment.as_of_ms == nsm.as_of_ms
    compared = 0
    for name, value in segment.values.items():
        if name == "weekly_reports_sent":  # broken down by delivery there: traits are not
            assert value.value == nsm.values[name].value  # for aggregates
            continue
        expected = nsm.values[name]
        assert value.value == expected.value, name
        renamed = {field.removeprefix("group."): v for field, v in value.segments.items()}
        assert renamed == expected.segments, name
        assert set(renamed["plan"]) - {"unknown"}, name  # the traits did label entities
        compared += 1
    assert compared == 7
