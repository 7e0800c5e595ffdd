"""One raw event in, one validated `Event` (or the reason it is invalid) out.

Pure: the clock is a parameter, so the worker, a replay and `nsm compute` classify the same bytes
the same way. Decoding uses orjson; nothing else is done to the payload, which the engine reads as
is.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, NamedTuple

import orjson

from processor import segment
from processor.engine.fields import label, preview

DEFAULT_MAX_FUTURE_SKEW_MS = 300_000

InputFormat = Literal["nsm", "segment"]
INPUT_FORMATS: tuple[InputFormat, ...] = ("nsm", "segment")

UNPROCESSABLE = "unprocessable"
INVALID_REASONS = (
    "not_json",
    "not_object",
    "missing_type",
    "missing_timestamp",
    "bad_timestamp",
    "future_timestamp",
    UNPROCESSABLE,  # anything else a processor failed on with this one message
)
_FAILURE_CHARS = 200

# ASCII digits only: `\d` would also match other scripts' digits, which int() reads.
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:[Zz]|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)
_EPOCH_MS = re.compile(r"-?\d+", re.ASCII)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Event(NamedTuple):
    """A valid event. A named tuple because one is built per message on the hot path."""

    type: str
    ts_ms: int
    event_id: str | None
    data: dict[str, Any]


class InvalidEvent(NamedTuple):
    """Why a message is not an event; `reason` is one of INVALID_REASONS."""

    reason: str
    detail: str


def failure_detail(error: BaseException) -> str:
    """The detail of an `unprocessable` message: the error's type and the start of its message,
    never a stack trace (that goes to the log)."""
    text = " ".join(str(error).split())
    if len(text) > _FAILURE_CHARS:
        text = text[:_FAILURE_CHARS] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class MessageFailed(Exception):
    """Processing one message failed (`offset` in a batch, a position in `nsm compute`).

    The processor counts the message as `unprocessable` and applies the rest as if it were not
    there; `detail` says why (failure_detail)."""

    def __init__(self, position: int, detail: str) -> None:
        super().__init__(f"message {position}: {detail}")
        self.position = position
        self.detail = detail


# The shape producers nearly always send, `YYYY-MM-DDTHH:MM:SS[.fff]Z`, is read by datetime's C
# parser: timestamps are the largest cost per event after decoding, and it is three times as fast
# as the regex. It reads more than RFC 3339 (other separators, week dates; hour 24 on newer
# Pythons), so only that exact shape goes to it, and anything it rejects takes the full parser,
# which decides.
_ISO = datetime.fromisoformat
_ONE_MS = timedelta(milliseconds=1)


def parse_rfc3339_ms(text: str) -> int | None:
    """Epoch milliseconds of an RFC 3339 date-time with a zone, or None when it is not one.

    Fractions below a millisecond are dropped (floor, since the fraction is never negative).
    """
    size = len(text)
    if (
        ((size == 24 and text[19] == ".") or size == 20)
        and text[-1] == "Z"
        and text[10] == "T"
        and text[4] == "-"
        and text[7] == "-"
        and text[13] == ":"
        and text[16] == ":"
        and text[11:13] != "24"
    ):
        try:
            return (_ISO(text) - _EPOCH) // _ONE_MS
        except ValueError:
            pass
    return _parse_full(text)


def _parse_full(text: str) -> int | None:
    match = _RFC3339.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    hour_i, minute_i, second_i = int(hour), int(minute), int(second)
    if hour_i > 23 or minute_i > 59 or second_i > 59:
        return None
    try:
        days = date(int(year), int(month), int(day)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None
    ms = (((days * 24 + hour_i) * 60 + minute_i) * 60 + second_i) * 1000
    if fraction:
        ms += int(fraction[:3].ljust(3, "0"))
    if sign is not None:
        off_h_i, off_m_i = int(off_h), int(off_m)
        if off_h_i > 23 or off_m_i > 59:
            return None
        offset_ms = (off_h_i * 60 + off_m_i) * 60_000
        ms = ms - offset_ms if sign == "+" else ms + offset_ms
    return ms


def parse_event(
    raw: bytes | bytearray | memoryview | str | dict[str, Any] | None,
    now_ms: int,
    max_future_skew_ms: int = DEFAULT_MAX_FUTURE_SKEW_MS,
    input_format: InputFormat = "nsm",
) -> Event | InvalidEvent:
    """Decode and validate one message (docs/semantics.md, Events).

    `input_format="segment"` reads a Segment/RudderStack call: its type and event id come from
    the call (processor/segment.py), everything else as for NSM's own events.
    """
    if type(raw) is not bytes and isinstance(raw, dict):
        data: Any = raw
    else:
        try:
            data = orjson.loads(raw)  # type: ignore[arg-type]  # None: not_json below
        except orjson.JSONDecodeError as exc:
            if raw is None:
                return InvalidEvent("not_json", "the message has no value (a tombstone)")
            return InvalidEvent("not_json", str(exc))
    if not isinstance(data, dict):
        return InvalidEvent("not_object", f"{preview(data)} is not an object")
    if input_format == "segment":
        mapped = segment.event_type(data)
        if type(mapped) is tuple:
            return InvalidEvent("missing_type", mapped[0])
        event_type: Any = mapped
        id_field = segment.MESSAGE_ID
    else:
        event_type = data.get("type")
        if not isinstance(event_type, str):
            detail = (
                "no type" if event_type is None else f"type {preview(event_type)} is not a string"
            )
            return InvalidEvent("missing_type", detail)
        id_field = "event_id"
    raw_ts = data.get("timestamp")
    if raw_ts is None:
        return InvalidEvent("missing_timestamp", "no timestamp")
    kind = type(raw_ts)
    # Integer epoch milliseconds or RFC 3339; bool is an int subclass but never a timestamp.
    ts_ms = raw_ts if kind is int else parse_rfc3339_ms(raw_ts) if kind is str else None
    if ts_ms is None:
        return InvalidEvent(
            "bad_timestamp",
            f"timestamp {preview(raw_ts)} is neither integer epoch milliseconds nor RFC 3339 "
            "with a zone",
        )
    if ts_ms > now_ms + max_future_skew_ms:
        return InvalidEvent(
            "future_timestamp",
            f"timestamp {preview(raw_ts)} is more than {max_future_skew_ms} ms ahead of the clock "
            f"({now_ms} ms)",
        )
    raw_id = data.get(id_field)
    if raw_id is not None and type(raw_id) is not str:
        raw_id = label(raw_id)
    return Event(event_type, ts_ms, raw_id, data)


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
