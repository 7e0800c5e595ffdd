"""The engine judges messages and writes labels exactly as the references do.

The references: orjson's judgement of JSON and the Python rules of docs/semantics.md
(`tests/oracle.py`'s `label` and `classify`), Python's own `repr` of floats and `json.dumps` of
nested values. Every case here is decided by the engine (native/engine) alone.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import nsm_native
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.oracle import classify, label

NOW = 1_795_168_800_000  # 2026-11-20T10:00:00Z
SKEW = 300_000


def _float_of_bits(bits: int) -> float:
    return float(struct.unpack("<d", struct.pack("<Q", bits))[0])


ANY_FLOAT = st.integers(0, 2**64 - 1).map(_float_of_bits).filter(math.isfinite)
FLOATS = st.one_of(
    ANY_FLOAT,
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.1, 1e-7, 1e-5, 1e-4, 1e15, 1e16, 1.5e16, 1e22, -0.0, 5e-324, 2.0**53]),
)


@settings(max_examples=3000, deadline=None)
@given(value=FLOATS)
def test_floats_are_written_as_pythons_repr(value: float):
    assert nsm_native.float_repr(value) == repr(value)


@settings(max_examples=3000, deadline=None)
@given(value=FLOATS)
def test_labels_of_floats_are_pythons(value: float):
    """An integral float is its exact integer (`1e22` → 22 digits), any other its `repr`."""
    assert nsm_native.label(orjson.dumps(value)) == label(value)


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    FLOATS,
    st.text(),
)
NESTED = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=2000, deadline=None)
@given(value=NESTED)
def test_labels_of_any_value_are_pythons(value: Any):
    """Objects and arrays: compact JSON with sorted keys, non-ASCII kept, floats as `repr`."""
    raw = orjson.dumps(value)
    decoded = orjson.loads(raw)
    expected = None if decoded is None else label(decoded)
    assert nsm_native.label(raw) == expected


def test_labels_of_what_python_dicts_cannot_hold():
    assert nsm_native.label(b'{"a": 1, "b": 2, "a": 3}') == '{"a":3,"b":2}'
    assert nsm_native.label(b"[18446744073709551616, -9223372036854775809]") == (
        "[1.8446744073709552e+19,-9.223372036854776e+18]"
    )
    assert nsm_native.label(b"18446744073709551616") == "18446744073709551616"
    assert nsm_native.label(b'"\\u0000\\u001f\\u007f"') == "\x00\x1f\x7f"
    assert nsm_native.label(b'["\\u0000\\b\\f\\n\\r\\t\\"\\\\/"]') == (
        json.dumps(['\x00\b\f\n\r\t"\\/'], ensure_ascii=False, separators=(",", ":"))
    )


def _judge(raw: bytes | None) -> tuple[str | None, int | None, bool]:
    """The engine's judgement: (reason, event time, has an id)."""
    check = nsm_native.check_event(raw, NOW, SKEW)
    return check.reason, check.ts_ms, check.event_id is not None


def _reference(raw: bytes | None) -> tuple[str | None, int | None, bool]:
    if raw is None:
        return "not_json", None, False
    try:
        decoded = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "not_json", None, False
    if not isinstance(decoded, dict):
        return "not_object", None, False
    reason, event, ts = classify(decoded, NOW, SKEW)
    if reason is not None:
        return reason, None, False
    return None, ts, event.get("event_id") is not None


EDGE_MESSAGES: list[bytes | None] = [
    None,
    b"",
    b" ",
    b"\xef\xbb\xbf{}",
    b"[]",
    b"5",
    b'"x"',
    b"null",
    b'{"type": "t", "timestamp": 1795168800000, "account_id": "a\xff"}',
    b'{"type": "t", "timestamp": 1795168800000, "account_id": "\\ud800"}',
    b'{"type": "t", "timestamp": 1795168800000, "account_id": "\\udc00\\ud800"}',
    b'{"type": "t", "timestamp": 1795168800000, "account_id": "\\ud83d\\ude00"}',
    b'{"type": "t", "timestamp": 1795168800000, "amount": 1e400}',
    b'{"type": "t", "timestamp": 1795168800000, "amount": 1' + b"0" * 400 + b"}",
    b'{"type": "t", "timestamp": 1795168800000, "amount": 1e-400}',
    b'{"type": "t", "timestamp": 1795168800000, "x": ' + b"[" * 1023 + b"]" * 1023 + b"}",
    b'{"type": "t", "timestamp": 1795168800000, "x": ' + b"[" * 1024 + b"]" * 1024 + b"}",
    b'{"type": "t", "timestamp": 1795168800000} x',
    b'{"type": "t", "timestamp": 1795168800000.0}',
    b'{"type": "t", "timestamp": 18446744073709551615}',
    b'{"type": "t", "timestamp": 18446744073709551616}',
    b'{"type": "t", "timestamp": -9223372036854775808}',
    b'{"type": "t", "timestamp": true}',
    b'{"type": "t", "timestamp": null}',
    b'{"type": "t"}',
    b'{"type": 5, "timestamp": 1}',
    b'{"type": null, "timestamp": 1}',
    b'{"type": "a", "type": 5, "timestamp": 1}',
    b'{"type": 5, "type": "a", "timestamp": 1}',
    b'{"type": "t", "timestamp": 1795168800000, "event_id": null}',
    b'{"type": "t", "timestamp": 1795168800000, "event_id": {"a": [1.5]}}',
    b'{"type": "t", "timestamp": 1795169100000}',
    b'{"type": "t", "timestamp": 1795169100001}',
]
TIMESTAMPS = [
    "2026-11-20T10:00:00Z",
    "2026-11-20T10:00:00.123Z",
    "2026-11-20T10:00:00.1234Z",
    "2026-11-20T10:00:00.12Z",
    "2026-11-20t10:00:00Z",
    "2026-11-20T10:00:00z",
    "2026-11-20 10:00:00Z",
    "2026-11-19T24:00:00Z",
    "2026-11-19T23:60:00Z",
    "2026-11-20T23:59:60Z",
    "2024-02-29T10:00:00Z",
    "2026-02-29T10:00:00Z",
    "2026-04-31T10:00:00Z",
    "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "2026-11-20T10:00:00+00:00",
    "2026-11-20T11:00:00.500+01:00",
    "2026-11-20T10:00:00+24:00",
    "2026-11-20T10:00:00-23:59",
    "2026-11-20T10:00:00.٣٣٣Z",
    "٢٠٢٦-11-20T10:00:00Z",
    "2026-13-20T10:00:00Z",
    "2026-11-20T10:07:00Z",
    "2026-11-20T10:00:00Z\n",
    "2026-11-20T10:00:00",
    "1795168800000",
]


def test_messages_at_the_edge_are_judged_as_the_reference_judges_them():
    messages = list(EDGE_MESSAGES)
    for text in TIMESTAMPS:
        messages.append(json.dumps({"type": "t", "timestamp": text}, ensure_ascii=False).encode())
    for raw in messages:
        assert _judge(raw) == _reference(raw), raw


BASE_MESSAGE = (
    b'{"type": "report.sent", "timestamp": "2026-11-20T09:30:00.250Z", "event_id": "e\\u00e91",'
    b' "account_id": "acc", "user_id": 12, "plan": true,'
    b' "properties": {"plan": "pro", "score": 1.5e2, "list": [1, -0, "x"]}}'
)
EDIT_BYTES = b'"\\u{}[],:.-+eE0123456789 \t\n\r\x00\x1f\x7f\xc3\xa9\xed\xa0\x80\xff\xef\xbb\xbf'


@settings(max_examples=3000, deadline=None)
@given(
    edits=st.lists(
        st.tuples(
            st.sampled_from(["replace", "insert", "delete"]),
            st.integers(0, len(BASE_MESSAGE)),
            st.sampled_from(list(EDIT_BYTES)),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_damaged_messages_are_judged_as_the_reference_judges_them(
    edits: list[tuple[str, int, int]],
):
    """Bytes edited at random into the usual shape: the engine must accept exactly what orjson
    accepts, and classify what it accepts as the semantics say."""
    raw = bytearray(BASE_MESSAGE)
    for action, position, byte in edits:
        position = min(position, len(raw))
        if action == "replace" and position < len(raw):
            raw[position] = byte
        elif action == "insert":
            raw.insert(position, byte)
        elif position < len(raw):
            del raw[position]
    assert _judge(bytes(raw)) == _reference(bytes(raw))


@settings(max_examples=1000, deadline=None)
@given(value=NESTED, ts=st.one_of(st.integers(-(2**63), 2**64 - 1), FLOATS, st.text(max_size=30)))
def test_any_json_is_judged_as_the_reference_judges_it(value: Any, ts: Any):
    event = {"type": "t", "timestamp": ts, "x": value}
    assert _judge(orjson.dumps(event)) == _reference(orjson.dumps(event))
    assert _judge(orjson.dumps(value)) == _reference(orjson.dumps(value))


def test_ids_compare_by_label():
    def event_id(value: str) -> str | None:
        raw = f'{{"type": "t", "timestamp": 1, "event_id": {value}}}'.encode()
        return nsm_native.check_event(raw, NOW, SKEW).event_id

    assert event_id("7") == event_id('"7"') == event_id("7.0")
    assert event_id('{"b": 1, "a": 2}') == event_id('"{\\"a\\":2,\\"b\\":1}"')
    assert event_id("7") != event_id("8")
    assert event_id("true") == event_id('"true"') != event_id("1")
