"""The one time syntax of every `nsm` option that takes a time.

A time is written as:

- RFC 3339 with a zone: `2026-11-22T10:00:00Z`, `2026-11-22T12:00:00+02:00`;
- a date, meaning its midnight in UTC: `2026-11-22`;
- integer epoch milliseconds: `1795168800000`;
- a duration ago, `<int><unit>` with unit one of s m h d w: `7d`, `12h`;
- `now`.

Event timestamps are stricter (CONTRACT §1: RFC 3339 with a zone or epoch ms, `processor.events`);
this is what people type on a command line.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from processor.durations import parse_duration_ms
from processor.events import parse_rfc3339_ms

SYNTAX = "RFC 3339 with a zone, a date (UTC midnight), epoch ms, a duration ago (7d) or now"
_EPOCH_MS = re.compile(r"-?[0-9]+")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DURATION = re.compile(r"[0-9]+[smhdw]")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def parse_time(text: str, now: int | None = None) -> int:
    """Epoch milliseconds of a time in any of the forms above; `now` is the clock for `now` and
    durations (the wall clock by default). ValueError says what is accepted."""
    raw = str(text).strip()
    clock = now_ms() if now is None else now
    if raw.lower() == "now":
        return clock
    if _EPOCH_MS.fullmatch(raw):
        return int(raw)
    if _DURATION.fullmatch(raw):
        return clock - parse_duration_ms(raw)
    if _DATE.fullmatch(raw):
        try:
            day = datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            raise ValueError(f"invalid date {text!r}: write YYYY-MM-DD") from None
        return int(day.timestamp()) * 1000
    ms = parse_rfc3339_ms(raw)
    if ms is None:
        zone = (
            " (it has no zone: add Z or an offset such as +02:00)"
            if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9:.]+", raw)
            else ""
        )
        raise ValueError(f"invalid time {text!r}{zone}: write {SYNTAX}")
    return ms
