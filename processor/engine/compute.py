"""Batch computation: a sequence of raw events in, every metric as of T out (`nsm compute`)."""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from processor.definitions.model import Catalog
from processor.engine.engine import Deduplicator, Engine
from processor.engine.segments import MetricValue, Value


def json_number(value: Value) -> int | float | None:
    """Counts stay integers; sums and formulas become floats; no value is null."""
    if isinstance(value, Decimal):
        return float(value)
    return value


@dataclass(slots=True)
class ComputeResult:
    as_of_ms: int
    values: dict[str, MetricValue]
    invalid: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    applied: int = 0

    def to_json(self) -> dict[str, Any]:
        """The document of CONTRACT §4: `{"as_of": ..., "metrics": {name: {value, segments}}}`."""
        from processor.events import format_time

        return {
            "as_of": format_time(self.as_of_ms),
            "metrics": {
                name: {
                    "value": json_number(result.value),
                    "segments": {
                        segment: {label: json_number(v) for label, v in values.items()}
                        for segment, values in result.segments.items()
                    },
                }
                for name, result in self.values.items()
            },
        }


def compute_metrics(
    events: Iterable[bytes | str | dict[str, Any]],
    catalog: Catalog,
    at_ms: int | None = None,
    now_ms: int | None = None,
    max_future_skew_ms: int = 300_000,
    input_format: Literal["nsm", "segment"] = "nsm",
) -> ComputeResult:
    """Apply the events in the given order (the arrival order) and evaluate every metric.

    `input_format="segment"` reads Segment/RudderStack calls (processor/events.py).

    `at_ms` None means the largest timestamp among applied events, or `now_ms` (default the wall
    clock) when none was applied. Invalid events and repeated event ids are counted, not applied.
    """
    clock_now = int(time.time() * 1000) if now_ms is None else now_ms
    # The state is millions of small containers without reference cycles; the cyclic collector
    # would rescan them over and over (about 5x the whole run on a million events) for nothing.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _compute(events, catalog, at_ms, clock_now, max_future_skew_ms, input_format)
    finally:
        if collecting:
            gc.enable()


# processor.events is imported inside, because it depends on this package.
def _compute(
    events: Iterable[bytes | str | dict[str, Any]],
    catalog: Catalog,
    at_ms: int | None,
    clock_now: int,
    max_future_skew_ms: int,
    input_format: Literal["nsm", "segment"],
) -> ComputeResult:
    from processor.events import InvalidEvent, parse_event

    engine = Engine(catalog)
    dedup = Deduplicator(engine.horizon)
    invalid: Counter[str] = Counter()
    duplicates = applied = 0
    latest: int | None = None
    for seq, raw in enumerate(events):
        event = parse_event(raw, clock_now, max_future_skew_ms, input_format)
        if type(event) is InvalidEvent:
            invalid[event.reason] += 1
            continue
        assert not isinstance(event, InvalidEvent)
        if event.event_id is not None and not dedup.first_time(event.event_id, event.ts_ms):
            duplicates += 1
            continue
        # With a known T, events already out of its window need not be kept at all.
        engine.apply(event, seq, at_ms)
        applied += 1
        if latest is None or event.ts_ms > latest:
            latest = event.ts_ms
    as_of = at_ms if at_ms is not None else (latest if latest is not None else clock_now)
    return ComputeResult(as_of, engine.evaluate(as_of), invalid, duplicates, applied)
