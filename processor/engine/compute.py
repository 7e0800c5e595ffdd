"""Batch computation: a sequence of raw events in, every metric as of T out (`nsm compute`)."""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, NamedTuple

from processor.definitions.model import Catalog
from processor.engine.engine import Deduplicator, Engine
from processor.engine.segments import MetricValue, Value


def json_number(value: Value) -> int | float | None:
    """Counts stay integers; sums and formulas become floats; no value is null."""
    if isinstance(value, Decimal):
        return float(value)
    return value


class Rejected(NamedTuple):
    """An event that was not applied: its position in the input (0-based), why, and the detail."""

    position: int
    reason: str
    detail: str


@dataclass(slots=True)
class ComputeResult:
    as_of_ms: int
    values: dict[str, MetricValue]
    invalid: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    applied: int = 0
    rejected: list[Rejected] = field(default_factory=list)  # every invalid event, in order

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

    An event the engine fails on (any error while labelling, filtering or applying it) is invalid
    with reason `unprocessable`, and the computation starts again without it, so that nothing of
    it remains: `events` is iterated once more. Pass something that can be iterated again (a
    list, processor.cli.options.JsonLinesFile); a one-shot iterator is kept as it is read.
    """
    from processor.events import MessageFailed  # it imports from this package

    clock_now = int(time.time() * 1000) if now_ms is None else now_ms
    source = _Replayable(events) if iter(events) is events else events
    failed: dict[int, str] = {}
    # The state is millions of small containers without reference cycles; the cyclic collector
    # would rescan them over and over (about 5x the whole run on a million events) for nothing.
    collecting = gc.isenabled()
    gc.disable()
    try:
        while True:
            try:
                return _compute(
                    source, catalog, at_ms, clock_now, max_future_skew_ms, input_format, failed
                )
            except MessageFailed as failure:
                failed[failure.position] = failure.detail
    finally:
        if collecting:
            gc.enable()


class _Replayable:
    """A one-shot iterator that can be iterated again: what was read is kept."""

    def __init__(self, items: Iterable[Any]) -> None:
        self._source = iter(items)
        self._read: list[Any] = []

    def __iter__(self) -> Iterator[Any]:
        yield from self._read[:]
        for item in self._source:
            self._read.append(item)
            yield item


def _compute(
    events: Iterable[bytes | str | dict[str, Any]],
    catalog: Catalog,
    at_ms: int | None,
    clock_now: int,
    max_future_skew_ms: int,
    input_format: Literal["nsm", "segment"],
    failed: dict[int, str],
) -> ComputeResult:
    from processor.events import (
        UNPROCESSABLE,
        InvalidEvent,
        MessageFailed,
        failure_detail,
        parse_event,
    )

    engine = Engine(catalog)
    dedup = Deduplicator(engine.horizon)
    invalid: Counter[str] = Counter()
    rejected: list[Rejected] = []
    duplicates = applied = 0
    latest: int | None = None
    seq = -1
    try:
        for seq, raw in enumerate(events):
            if failed and seq in failed:
                invalid[UNPROCESSABLE] += 1
                rejected.append(Rejected(seq, UNPROCESSABLE, failed[seq]))
                continue
            event = parse_event(raw, clock_now, max_future_skew_ms, input_format)
            if type(event) is InvalidEvent:
                invalid[event.reason] += 1
                rejected.append(Rejected(seq, event.reason, event.detail))
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
    except Exception as error:
        raise MessageFailed(seq, failure_detail(error)) from error
    as_of = at_ms if at_ms is not None else (latest if latest is not None else clock_now)
    return ComputeResult(as_of, engine.evaluate(as_of), invalid, duplicates, applied, rejected)
