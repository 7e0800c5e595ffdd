"""Hostile messages: what a producer can put on the topic, to show that nothing stops a processor.

One generator for the unit tests (the Python engine, the native core, `nsm compute` and the
oracle side by side) and for the fuzz test through the real worker. A message is raw bytes (or a
tombstone): mostly events whose every field a definition reads (`type`, `timestamp`, `event_id`,
entity keys, `where` fields, distinct and summed fields, segments, dotted paths) holds any JSON
value, and some that are not events at all. Values cover every JSON type, numbers at the edges of
64-bit integers and doubles, long strings, odd Unicode (control characters, line separators,
combining marks, non-ASCII digits, emoji, a byte order mark) and nesting up to and past the
decoder's limit of 1,024 levels, which no serialiser here writes: those are built as text.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import strategies as st

BASE_MS = 1_795_168_800_000  # 2026-11-20T10:00:00Z
DECODER_DEPTH = 1024  # orjson's limit: a value nested deeper is not JSON to the processor
TYPES = ["report.sent", "invoice.paid", "seat.active"]

# Definitions that read fields in every way a definition can: entity keys (plain, in
# `properties`, dotted), every `where` operator, distinct (with and without each_count), sums,
# aggregates of each kind, segments of each kind and a formula over them.
METRICS: list[dict[str, Any]] = [
    {"name": "paying_accounts", "tier": "north_star", "window": "1d", "bucket": "1h",
     "segments": ["plan", "context.region"], "max_segment_values": 5,
     "entities": {"key": "account_id", "all": [
         {"event": "invoice.paid", "where": {"amount": {"gt": 0}}, "count_at_least": 1},
         {"event": "*", "distinct": "user_id", "at_least": 2}]}},
    {"name": "busy_seats", "tier": "diagnostic", "parent": "paying_accounts", "window": "1d",
     "bucket": "1h", "segments": ["status"],
     "entities": {"key": "properties.seat", "all": [
         {"event": ["report.sent", "seat.active"], "where": {"status": {"in": ["ok", 1, True]}},
          "distinct": "report_id", "at_least": 2, "each_count_at_least": 2}]}},
    {"name": "big_spenders", "tier": "diagnostic", "parent": "paying_accounts", "window": "1d",
     "bucket": "1h", "segments": ["plan"],
     "entities": {"key": "account_id", "all": [
         {"event": "invoice.paid", "where": {"plan": {"not_in": ["free"]}}, "sum": "amount",
          "at_least": 10}]}},
    {"name": "revenue", "tier": "diagnostic", "parent": "paying_accounts", "window": "1d",
     "bucket": "1h", "segments": ["plan", "currency"],
     "aggregate": {"event": "invoice.paid", "where": {"currency": {"exists": True}},
                   "sum": "amount"}},
    {"name": "reports", "tier": "granular", "parent": "busy_seats", "window": "1d",
     "bucket": "1h", "segments": ["account_id", "properties.tier"], "max_segment_values": 3,
     "aggregate": {"event": "report.sent", "where": {"status": {"not": "failed"},
                                                     "score": {"gte": 1, "lt": 1e300}},
                   "count": True}},
    {"name": "reporters", "tier": "granular", "parent": "busy_seats", "window": "1d",
     "bucket": "1h", "segments": ["status"],
     "aggregate": {"event": "*", "where": {"context.region": {"exists": False}},
                   "distinct": "user_id"}},
    {"name": "revenue_per_payer", "tier": "granular", "parent": "paying_accounts",
     "window": "1d", "bucket": "1h", "formula": "revenue / paying_accounts"},
]  # fmt: skip

# Every field the definitions above read, and where in an event it may sit.
FIELDS = ["account_id", "user_id", "seat", "status", "report_id", "amount", "plan", "currency",
          "score", "tier"]  # fmt: skip
PLACES = ["absent", "top", "top", "properties", "both", "null_then_properties"]

SMALL_INTS = [0, 1, -1, 2, 7, 10, 100]
EDGE_INTS = [2**31 - 1, 2**53, 2**53 + 1, 2**63 - 1, -(2**63), 2**63, 2**64 - 1]
EDGE_FLOATS = [0.0, -0.0, 0.1, 1.5, 1e16, 1e300, -1e300, 5e-324, 2.2250738585072014e-308,
               1.7976931348623157e308, 123456789.125, 3.0]  # fmt: skip
# Written as text: integers beyond 64 bits (read as floats), exponents that round to 0.
NUMBER_TEXTS = ["18446744073709551616", "-9223372036854775809", "1" + "0" * 40, "1e-400",
                "-0", "0e0", "1E2", "1.0"]  # fmt: skip
ODD_STRINGS = [
    "", " ", "a", "pro", "free", "ok", "failed", "eu", "1", "true", "unknown", "other", "null",
    "\x00", "\x1f", "\x7f", "\u2028\u2029", "\ufeff", "\u200b", "e\u0301", "\U0001f600",
    "\u0661\u0662", "\u05e9\u05dc\u05d5\u05dd", "\\", '"', "{", "[1]", "a\nb",
    "\U0010ffff", "ǅ", "ß", "İ",
]  # fmt: skip
LONG_SIZES = [1_000, 20_000, 200_000]

TIMESTAMP_TEXTS = [
    "2026-11-20T10:00:00Z", "2026-11-20t10:00:00z", "2026-11-20 10:00:00+01:00",
    "2026-11-20T10:00:00.123456789Z", "2026-11-20T10:00:00.9999Z", "2026-11-20T10:00:00",
    "2026-11-20T10:00:60Z", "2026-02-30T10:00:00Z", "2026-11-20T24:00:00Z",
    "2026-11-20T10:00:00+24:00", "2026-11-20T10:00:00-23:59", "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z", "\u0662\u0660\u0662\u0666-11-20T10:00:00Z",
    "2026-11-20T10:00:00.\u0661Z", "２０２６-11-20T10:00:00Z", "2026-11-20T10:00:00Z ",
    " 2026-11-20T10:00:00Z", "1795168800000", "", "2026-W47-5T10:00:00Z",
]  # fmt: skip
DEPTHS = [2, 3, 127, 128, 129, 254, 255, 256, 998, 999, 1000, 1001, 1022, 1023, 1024]


def _text(value: Any) -> bytes:
    return orjson.dumps(value)


@st.composite
def scalar_texts(draw: st.DrawFn) -> bytes:
    """The JSON text of a scalar: null, booleans, numbers at every edge, odd strings."""
    choice = draw(st.integers(0, 19))
    if choice == 0:
        return draw(st.sampled_from([b"null", b"true", b"false"]))
    if choice == 1:
        return _text(draw(st.sampled_from(SMALL_INTS + EDGE_INTS)))
    if choice == 2:
        return _text(draw(st.sampled_from(EDGE_FLOATS)))
    if choice == 3:
        return draw(st.sampled_from(NUMBER_TEXTS)).encode()
    if choice == 4:
        number = draw(st.floats(allow_nan=False, allow_infinity=False))
        return _text(number)
    if choice == 5:
        return _text(draw(st.integers(-(2**63), 2**64 - 1)))
    if choice == 6:
        size = draw(st.sampled_from(LONG_SIZES))
        return _text(draw(st.sampled_from(["x", "\u00e9", "\U0001f600"])) * (size // 4))
    if choice <= 9:
        return _text(draw(st.text(max_size=8)))
    return _text(draw(st.sampled_from(ODD_STRINGS)))


def _object_text(members: list[tuple[str, bytes]]) -> bytes:
    return b"{" + b",".join(_text(k) + b":" + v for k, v in members) + b"}"


@st.composite
def nested_texts(draw: st.DrawFn, depth: int) -> bytes:
    """A value `depth` levels deep (a scalar is one level), as arrays or objects or both."""
    text = draw(scalar_texts()) if draw(st.booleans()) else b"[]"
    style = draw(st.sampled_from(["array", "object", "mixed"]))
    for level in range(depth - 1):
        as_array = style == "array" or (style == "mixed" and level % 2 == 0)
        text = b"[" + text + b"]" if as_array else b'{"k":' + text + b"}"
    return text


@st.composite
def value_texts(draw: st.DrawFn, level: int = 1) -> bytes:
    """Any JSON value, as text, for a field that sits `level` levels deep in the message."""
    choice = draw(st.integers(0, 15))
    if choice <= 10:
        return draw(scalar_texts())
    if choice <= 13 and level < 4:
        items = draw(st.lists(value_texts(level + 1), max_size=3))
        if draw(st.booleans()):
            return b"[" + b",".join(items) + b"]"
        keys = draw(st.lists(st.sampled_from(["a", "b", "k", "", "\u00e9", "plan"]),
                             min_size=len(items), max_size=len(items)))  # fmt: skip
        return _object_text(list(zip(keys, items, strict=True)))
    depth = draw(st.sampled_from(DEPTHS))
    # The message itself is one level, and each object a field sits in another.
    return draw(nested_texts(min(depth, DECODER_DEPTH - level)))


def timestamp_ms(draw: st.DrawFn) -> int:
    return BASE_MS + draw(st.integers(-30, 2)) * 3_600_000 + draw(st.integers(0, 3_599_999))


@st.composite
def timestamp_texts(draw: st.DrawFn) -> bytes:
    choice = draw(st.integers(0, 14))
    if choice <= 9:
        return _text(timestamp_ms(draw))
    if choice == 10:
        return _text(draw(st.sampled_from(TIMESTAMP_TEXTS)))
    if choice == 11:
        return _text(draw(st.sampled_from([-(2**63), 2**63 - 1, 2**64 - 1, 0, -1, BASE_MS * 10])))
    return draw(value_texts(2))


@st.composite
def event_texts(draw: st.DrawFn) -> bytes:
    """An event's JSON text: type, timestamp, id and fields, any of which may be hostile."""
    top: list[tuple[str, bytes]] = []
    if draw(st.integers(0, 14)):
        top.append(("type", _text(draw(st.sampled_from(TYPES)))))
    else:
        top.append(("type", draw(value_texts(2))))
    if draw(st.integers(0, 19)):
        top.append(("timestamp", draw(timestamp_texts())))
    id_choice = draw(st.integers(0, 5))
    if id_choice in (1, 2):
        top.append(("event_id", _text(draw(st.sampled_from(["e1", "e2", 1, "1", 1.0])))))
    elif id_choice == 3:
        top.append(("event_id", draw(value_texts(2))))
    properties: list[tuple[str, bytes]] = []
    for name in FIELDS:
        place = draw(st.sampled_from(PLACES))
        if place == "absent":
            continue
        if place in ("top", "both"):
            top.append((name, draw(value_texts(2))))
        if place in ("properties", "both"):
            properties.append((name, draw(value_texts(3))))
        if place == "null_then_properties":
            top.append((name, b"null"))
            properties.append((name, draw(value_texts(3))))
    shape = draw(st.integers(0, 6))
    if shape == 0:
        top.append(("properties", draw(value_texts(2))))  # not necessarily an object
    elif properties or shape == 1:
        top.append(("properties", _object_text(properties)))
    context = draw(st.integers(0, 3))
    if context == 1:
        top.append(("context", _object_text([("region", draw(value_texts(3)))])))
    elif context == 2:
        top.append(("context", draw(value_texts(2))))
    order = draw(st.permutations(range(len(top))))
    return _object_text([top[i] for i in order])


@st.composite
def junk(draw: st.DrawFn) -> bytes | None:
    """A message that is not an event, in one of the ways a producer gets it wrong."""
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return None  # a tombstone
    if choice == 1:
        return draw(st.binary(max_size=40))
    if choice == 2:
        event = draw(event_texts())
        return event[: draw(st.integers(0, max(0, len(event) - 1)))]
    if choice == 3:
        return draw(st.sampled_from([b"NaN", b'{"type":"report.sent","timestamp":Infinity}',
                                     b'\xef\xbb\xbf{"type":"report.sent","timestamp":1}',
                                     b'{"type":"report.sent","timestamp":1,"a":"\xff"}',
                                     b'{"type":"report.sent","timestamp":1,"a":"\\ud800"}',
                                     b'{"type":"report.sent","timestamp":1} {}', b"", b" ",
                                     b'{"type":"report.sent","timestamp":1e400}']))  # fmt: skip
    if choice == 4:
        return draw(nested_texts(DECODER_DEPTH + 1))  # one level too deep
    if choice == 5:
        inner = draw(nested_texts(DECODER_DEPTH))
        return b'{"type":"report.sent","timestamp":1,"a":' + inner + b"}"  # 1,025 levels
    return draw(value_texts(1))  # a JSON value that is probably not an object


@st.composite
def messages(draw: st.DrawFn, max_size: int = 40) -> list[bytes | None]:
    """A stream of messages: mostly events, some junk, some repeated."""
    out: list[bytes | None] = []
    for _ in range(draw(st.integers(1, max_size))):
        choice = draw(st.integers(0, 9))
        if choice <= 6:
            out.append(draw(event_texts()))
        elif choice == 7 and out:
            out.append(draw(st.sampled_from(out)))
        else:
            out.append(draw(junk()))
    return out
