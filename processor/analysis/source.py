"""Where metric values come from: a `ValueSource` gives every metric's value as of given times,
computed from events (`EventsSource`) or read from a replayed namespace's history (`HistorySource`).

`EventsSource` computes them from events with the engine, in one pass: events are validated and
deduplicated in arrival order (exactly as `nsm compute` does, `read_event_log`), applied with their
arrival sequence numbers to a state kept whole per bucket, and every metric is then evaluated at
each time in one sweep (the windows only move forward from one time to the next): what `nsm
compute --at T` gives at each T.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from nsm_native import Compute

from processor.definitions.model import Catalog
from processor.engine import MetricValue
from processor.engine.compute import message_bytes
from processor.engine.spec import compile_catalog
from processor.events import InputFormat

Snapshot = dict[str, MetricValue]
"""Every metric's value as of one time."""

# Kept events were judged valid when read: applying them again needs no clock.
_ANY_TIME_MS = 2**62


class ValueSource(Protocol):
    def values_at(self, times_ms: Sequence[int]) -> dict[int, Snapshot]:
        """Every metric's value (with its breakdowns) as of each of `times_ms`."""
        ...


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    ts_ms: int
    seq: int  # arrival order, which breaks ties of event time in the engine
    raw: bytes  # the message as read (nsm_native.FieldReader reads its fields)


@dataclass(slots=True)
class EventLog:
    """The valid, deduplicated events of an input, in time order (ties by arrival)."""

    events: list[LoggedEvent]
    invalid: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    input_format: InputFormat = "nsm"  # how the messages read

    @property
    def first_ms(self) -> int | None:
        return self.events[0].ts_ms if self.events else None

    @property
    def last_ms(self) -> int | None:
        return self.events[-1].ts_ms if self.events else None


def read_event_log(
    raw_events: Iterable[bytes | str | dict[str, Any]],
    catalog: Catalog,
    now_ms: int | None = None,
    max_future_skew_ms: int = 300_000,
    input_format: InputFormat = "nsm",
) -> EventLog:
    """Validate and deduplicate in arrival order, with the horizon rule of the catalogue's
    windows (the engine decides, as for `nsm compute`)."""
    clock = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    engine = Compute(compile_catalog(catalog), None, clock, max_future_skew_ms, input_format)
    messages = [message_bytes(raw) for raw in raw_events]
    times = engine.feed(messages)
    kept = [
        LoggedEvent(ts, seq, raw)
        for seq, (raw, ts) in enumerate(zip(messages, times, strict=True))
        if ts is not None and raw is not None
    ]
    kept.sort(key=lambda item: (item.ts_ms, item.seq))
    return EventLog(kept, Counter(engine.invalid), engine.duplicates, input_format)


class EventsSource:
    """Metric values computed from an event log with the engine."""

    def __init__(self, log: EventLog, catalog: Catalog) -> None:
        self.log = log
        self.catalog = catalog

    def values_at(self, times_ms: Sequence[int]) -> dict[int, Snapshot]:
        engine = Compute(
            compile_catalog(self.catalog), None, _ANY_TIME_MS, 0, self.log.input_format
        )
        events = self.log.events
        engine.feed_kept([e.raw for e in events], [e.seq for e in events])
        times = sorted(set(times_ms))
        return {
            at_ms: {r.name: MetricValue(r.value, r.segments) for r in results}
            for at_ms, results in zip(times, engine.sweep(times), strict=True)
        }


class HistorySource:
    """Metric values from a replayed namespace's history (`nsm replay`, docs/backfill.md).

    The history holds every metric as of each bucket boundary, in the JSON of `nsm compute`; a
    value holds from its point until the next one, because values only change at boundaries, and
    the last point holds until `end_ms`, the newest replayed event.
    """

    def __init__(self, points: Sequence[tuple[int, dict[str, Any]]], end_ms: int) -> None:
        self.times = [t for t, _ in points]
        self.documents = [document for _, document in points]
        self.end_ms = end_ms

    def values_at(self, times_ms: Sequence[int]) -> dict[int, Snapshot]:
        out: dict[int, Snapshot] = {}
        for t in times_ms:
            index = bisect.bisect_right(self.times, t) - 1
            if index < 0 or t > self.end_ms:
                first = self.times[0] if self.times else None
                raise ValueError(
                    f"the history covers {first} to {self.end_ms} (epoch ms), not {t}: "
                    "choose times in that span, or replay further back with --from"
                )
            out[t] = {
                name: MetricValue(
                    _number(found["value"]),
                    {
                        field: {label: _number(v) for label, v in labels.items()}
                        for field, labels in found["segments"].items()
                    },
                )
                for name, found in self.documents[index].items()
            }
        return out


def _number(value: Any) -> int | Decimal | None:
    """JSON numbers back into the engine's values: counts int, sums and ratios Decimal."""
    if value is None or isinstance(value, int):
        return value
    return Decimal(repr(value))
