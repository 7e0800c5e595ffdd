"""Where metric values come from: a `ValueSource` gives every metric's value as of given times,
computed from events (`EventsSource`) or read from a replayed namespace's history (`HistorySource`).

`EventsSource` computes them from events with the exact engine, in one pass: events are
deduplicated in arrival order (exactly as `nsm compute` does), then applied in time order with their
arrival sequence number, which the engine's state does not depend on. Evaluating as of T needs
every event up to the end of T's buckets; later events are outside every window as of T, so one
pass serves a whole series of times, and the state is expired as it goes.
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from processor.definitions.model import Catalog
from processor.engine import Deduplicator, Engine, MetricValue
from processor.events import Event, InputFormat, InvalidEvent, parse_event

Snapshot = dict[str, MetricValue]
"""Every metric's value as of one time."""


class ValueSource(Protocol):
    def values_at(self, times_ms: Sequence[int]) -> dict[int, Snapshot]:
        """Every metric's value (with its breakdowns) as of each of `times_ms`."""
        ...


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    ts_ms: int
    seq: int  # arrival order, which breaks ties of event time in the engine
    event: Event


@dataclass(slots=True)
class EventLog:
    """The valid, deduplicated events of an input, in time order (ties by arrival)."""

    events: list[LoggedEvent]
    invalid: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0

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
    """Parse and deduplicate in arrival order, with the horizon rule of the catalogue's windows."""
    clock = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    dedup = Deduplicator(Engine(catalog).horizon)
    kept: list[LoggedEvent] = []
    invalid: Counter[str] = Counter()
    duplicates = 0
    for seq, raw in enumerate(raw_events):
        event = parse_event(raw, clock, max_future_skew_ms, input_format)
        if isinstance(event, InvalidEvent):
            invalid[event.reason] += 1
            continue
        if not dedup.first_time(event.event_id, event.ts_ms):
            duplicates += 1
            continue
        kept.append(LoggedEvent(event.ts_ms, seq, event))
    kept.sort(key=lambda item: (item.ts_ms, item.seq))
    return EventLog(kept, invalid, duplicates)


class EventsSource:
    """Metric values computed from an event log with the exact engine."""

    def __init__(self, log: EventLog, catalog: Catalog) -> None:
        self.log = log
        self.catalog = catalog

    def values_at(self, times_ms: Sequence[int]) -> dict[int, Snapshot]:
        engine = Engine(self.catalog)
        bucket_sizes = [m.bucket_ms for m in engine.entities_metrics.values()]
        bucket_sizes += [m.bucket_ms for m in engine.aggregate_metrics.values()]
        events = self.log.events
        position = 0
        result: dict[int, Snapshot] = {}
        for at_ms in sorted(set(times_ms)):
            # Every event in a bucket up to T's own bucket, for each metric's bucket size.
            until_ms = max(((at_ms // b + 1) * b for b in bucket_sizes), default=at_ms + 1)
            while position < len(events) and events[position].ts_ms < until_ms:
                item = events[position]
                engine.apply(item.event, item.seq)
                position += 1
            result[at_ms] = engine.evaluate(at_ms)
            engine.expire(at_ms)
        return result


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
