"""Event times as people and outputs write them, and the reasons an event is invalid.

Whether a message is a valid event, and its time, is the engine's decision (native/engine,
docs/semantics.md, Events); this module only writes times (`format_time`) and reads the times of
command-line options the strict way events write them (`parse_time`), with the engine's parser.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Literal

import nsm_native

DEFAULT_MAX_FUTURE_SKEW_MS = 300_000

# How a Kafka message reads: NSM's own events, or Segment/RudderStack calls (CONTRACT §1).
InputFormat = Literal["nsm", "segment"]
INPUT_FORMATS: tuple[InputFormat, ...] = ("nsm", "segment")

INVALID_REASONS: tuple[str, ...] = tuple(nsm_native.invalid_reasons())
# Anything else the engine failed on with this one message (docs/semantics.md, Events).
UNPROCESSABLE = "unprocessable"
assert UNPROCESSABLE in INVALID_REASONS

_EPOCH_MS = re.compile(r"-?[0-9]+")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_rfc3339_ms(text: str) -> int | None:
    """Epoch milliseconds of an RFC 3339 date-time with a zone (as event timestamps are read),
    or None when it is not one."""
    return nsm_native.parse_rfc3339(text)


class MessageFailed(Exception):
    """The engine failed on one message while applying it (`position`: its offset in a batch,
    its position in `nsm compute`); `detail` says what went wrong.

    The state that applied it may hold part of it: the processor restores the state (a partition
    from the store, a computation from the start) and applies the rest as if the message were
    not there, counting it as `unprocessable`."""

    def __init__(self, position: int, detail: str) -> None:
        super().__init__(f"message {position}: {detail}")
        self.position = position
        self.detail = detail


def parse_time(text: str) -> int:
    """Epoch milliseconds from RFC 3339 with a zone or from integer epoch milliseconds.

    Raises ValueError saying what is accepted.
    """
    stripped = str(text).strip()
    if _EPOCH_MS.fullmatch(stripped):
        return int(stripped)
    ms = parse_rfc3339_ms(stripped)
    if ms is None:
        raise ValueError(
            f"invalid time {text!r}: write RFC 3339 with a zone (2026-11-22T10:00:00Z, "
            "2026-11-22T12:00:00+02:00) or integer epoch milliseconds"
        )
    return ms


def format_time(ms: int) -> str:
    """RFC 3339 in UTC with `Z`; milliseconds only when there are some.

    A time RFC 3339 cannot write (outside the years 1 to 9999) is written as its epoch
    milliseconds, which parse_time reads back.
    """
    try:
        moment = _EPOCH + timedelta(milliseconds=ms)
    except OverflowError:
        return str(ms)
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    if ms % 1000:
        text += f".{ms % 1000:03d}"
    return text + "Z"
