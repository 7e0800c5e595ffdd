"""From events to Kafka-ready records: JSON bytes with their message key, plus the faults a test may
ask for (repeats, invalid messages, slightly shuffled order) and the `--events` limit.

Every sink (a file, standard output, a Kafka topic) consumes the same iterator of (key, value), so
what goes to a topic is byte for byte what goes to a file.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from random import Random

import orjson

from processor.generate.config import GeneratorConfig
from processor.generate.product import Event
from processor.generate.segment import SegmentShaper
from processor.generate.simulation import Simulation

Record = tuple[bytes | None, bytes]
"""(message key, message value)."""
Tagged = tuple[str, Record]
"""A record with what it is: an event, a repeat of one, or an invalid message."""

# The ways a message can be invalid (CONTRACT §1), each produced from a real event.
INVALID_KINDS = ("not_json", "not_object", "missing_type", "missing_timestamp", "bad_timestamp")


def message_key(event: Event) -> bytes | None:
    """The partitioning key: the account; for spend, which has no customer account, the campaign
    or the department."""
    account_id = event.get("account_id")
    if account_id is not None:
        return str(account_id).encode()
    properties = event.get("properties", {})
    owner = properties.get("campaign") or properties.get("department")
    return None if owner is None else str(owner).encode()


def invalid_value(event: Event, kind: str, id_field: str = "event_id") -> bytes:
    """An invalid message made from a valid event (or call); its own id never hides the event."""
    broken = {**event, id_field: f"{event[id_field]}-bad"}
    if kind == "not_json":
        return orjson.dumps(broken)[:-7]
    if kind == "not_object":
        return orjson.dumps([broken["type"], broken["timestamp"]])
    if kind == "missing_type":
        del broken["type"]
    elif kind == "missing_timestamp":
        del broken["timestamp"]
    elif kind == "bad_timestamp":
        broken["timestamp"] = str(broken["timestamp"]).removesuffix("Z")  # no zone
    else:
        raise ValueError(f"unknown invalid kind {kind!r}; one of {', '.join(INVALID_KINDS)}")
    return orjson.dumps(broken)


@dataclass
class StreamStats:
    records: int = 0
    duplicates: int = 0
    invalid: int = 0
    last_event_ms: int = 0


class RecordStream:
    """The records of one generator run, in time order (up to `--disorder`), then live if asked."""

    def __init__(self, config: GeneratorConfig, follow: bool = False) -> None:
        self.config = config
        self.follow = follow
        self.simulation = Simulation(config)
        self.stats = StreamStats()
        self.is_live = False
        self._faults = Random(f"{config.seed}:faults")
        self._jitter = Random(f"{config.seed}:disorder")

    def __iter__(self) -> Iterator[Record]:
        limit = self.config.max_events
        stats = self.stats
        for kind, record in self._ordered():
            if limit is not None and stats.records >= limit:
                return
            stats.records += 1
            if kind == "duplicate":
                stats.duplicates += 1
            elif kind == "invalid":
                stats.invalid += 1
            yield record

    def _with_faults(self, events: Iterator[tuple[int, Event]]) -> Iterator[tuple[int, Tagged]]:
        duplicate_share = self.config.duplicates_pct / 100
        invalid_share = self.config.invalid_pct / 100
        faults = self._faults
        shaper = SegmentShaper() if self.config.event_format == "segment" else None
        id_field = "event_id" if shaper is None else "messageId"
        for ts, event in events:
            self.stats.last_event_ms = ts
            key = message_key(event)
            for shaped in (event,) if shaper is None else shaper.calls(event):
                value = orjson.dumps(shaped)
                yield ts, ("event", (key, value))
                if duplicate_share and faults.random() < duplicate_share:
                    yield ts, ("duplicate", (key, value))  # a producer retry: the same bytes
                if invalid_share and faults.random() < invalid_share:
                    kind = faults.choice(INVALID_KINDS)
                    yield ts, ("invalid", (key, invalid_value(shaped, kind, id_field)))

    def _ordered(self) -> Iterator[Tagged]:
        history = self._with_faults(self.simulation.history())
        disorder_ms = self.config.disorder_ms
        if not disorder_ms:
            for _, tagged in history:
                yield tagged
        else:
            # Each record is held back by a random delay of up to disorder_ms, and released once
            # the stream has moved past that point: a local shuffle, never a large one.
            pending: list[tuple[int, int, Tagged]] = []
            for sequence, (ts, tagged) in enumerate(history):
                delay = int(self._jitter.random() * disorder_ms)
                heapq.heappush(pending, (ts + delay, sequence, tagged))
                while pending and pending[0][0] <= ts:
                    yield heapq.heappop(pending)[2]
            while pending:
                yield heapq.heappop(pending)[2]
        if self.follow:
            self.is_live = True
            for _, tagged in self._with_faults(self.simulation.live()):
                yield tagged


def iter_events(config: GeneratorConfig) -> Iterator[Event]:
    """The valid events of the history as dicts, without injected faults, up to `max_events`."""
    for count, (_, event) in enumerate(Simulation(config).history()):
        if config.max_events is not None and count >= config.max_events:
            return
        yield event
