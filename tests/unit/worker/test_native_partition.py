"""The native core gives what the Python engine gives: batch by batch, and in its summaries.

`PartitionState` (all Python) is the reference; `NativePartitionState` must return the same
outcome for every batch (counts, late events, invalid messages, new ids, the encoded writes) and
the same summaries, whichever events it handles itself and whichever it hands back to Python.
"""

from __future__ import annotations

import copy
import json
import math
import struct
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.definitions import load_definitions
from processor.definitions.model import Catalog
from processor.engine.state import EntitiesState
from processor.events import InputFormat, MessageFailed
from processor.store.codec import TRAITS_BUCKET, decode_cell
from processor.worker import native as native_module
from processor.worker.native import NativePartitionState
from processor.worker.partition import BatchOutcome, Message, PartitionState
from tests.strategies import BASE_MS, Scenario, catalog_of, scenarios
from tests.unit.worker.test_partitioned_processing import DictStore


def _raw(item: Any) -> bytes | None:
    if item is None or isinstance(item, bytes):
        return item
    return item.encode() if isinstance(item, str) else orjson.dumps(item)


def _comparable(outcome: BatchOutcome, catalog: Catalog) -> dict[str, Any]:
    """An outcome with entity cells decoded: the order of a cell's value counts in its JSON is
    not part of the state (it follows the order in which merges met the values)."""
    writes = {}
    for w in outcome.writes.unpack():
        cells = catalog[w.metric].kind == "entities" and w.bucket != TRAITS_BUCKET
        fields = {key: decode_cell(value) if cells else value for key, value in w.fields.items()}
        writes[(w.metric, w.bucket)] = (w.expires_at_ms, fields)
    return {
        "counts": (outcome.applied, outcome.skipped, outcome.duplicates),
        "offsets": (outcome.previous_offset, outcome.new_offset, outcome.max_ts),
        "late": dict(outcome.late),
        "invalid": [(i.offset, i.reason, i.detail) for i in outcome.invalid],
        "ids": (sorted(outcome.ids.unpack()), outcome.ids.newest),
        "writes": writes,
    }


def apply_restoring(
    native: NativePartitionState, store: DictStore, batch: list[Message], *args: Any
) -> tuple[BatchOutcome, NativePartitionState]:
    """A batch through the native core as the worker applies it: when a message fails, the
    partition is restored from what is stored and the batch applied again with that message
    named unprocessable. Returns the outcome and the state (a new one after a restore)."""
    unprocessable: dict[int, str] = {}
    while True:
        try:
            return native.apply_batch(batch, *args, unprocessable=unprocessable), native
        except MessageFailed as failure:
            assert failure.position not in unprocessable, "failed again on a skipped message"
            unprocessable[failure.position] = failure.detail
            native = NativePartitionState(native.catalog, native.partition, native.input_format)
            native.restore(store.stored())


def _run_both(
    scenario: Scenario,
    choose: st.DataObject,
    event_clock: bool,
    drop_late: bool,
    input_format: InputFormat = "nsm",
) -> PartitionState:
    """Returns the Python partition at the end."""
    catalog = catalog_of(scenario.metrics)
    messages = [Message(i, _raw(item)) for i, item in enumerate(copy.deepcopy(scenario.raw))]
    python = PartitionState(catalog, 0, input_format=input_format)
    native = NativePartitionState(catalog, 0, input_format)
    store = DictStore()
    position = 0
    restart_at = choose.draw(st.integers(0, len(messages)))
    while position < len(messages):
        batch = messages[position : position + choose.draw(st.integers(1, 8))]
        expected = python.apply_batch(batch, scenario.now_ms, 300_000, event_clock, drop_late)
        got, native = apply_restoring(
            native, store, batch, scenario.now_ms, 300_000, event_clock, drop_late
        )
        assert _comparable(got, catalog) == _comparable(expected, catalog)
        store.write(got)
        position += len(batch)
        clock = native.max_ts if event_clock else scenario.now_ms
        if clock is not None and choose.draw(st.booleans()):
            python.expire(clock)
            native.expire(clock)
            store.expire(clock, native.forget_ids_until(clock))
            assert native.seen_ids == python.seen_ids
        if position >= restart_at and choose.draw(st.booleans()):
            native = NativePartitionState(catalog, 0, input_format)
            native.restore(store.stored())
            restart_at = len(messages) + 1
    for as_of in [BASE_MS, *(t for t in scenario.as_of if t is not None)]:
        assert native.summarize(as_of) == python.summarize(as_of)
    for name in native.native_metrics:
        state = python.engine.states[name]
        assert isinstance(state, EntitiesState)
        cells = {
            bucket: {entity: decode_cell(raw) for entity, raw in encoded.items()}
            for bucket, encoded in native.native_cells(name).items()
        }
        assert cells == {bucket: found for bucket, found in state.buckets.items() if found}
    return python


@pytest.mark.parametrize(("event_clock", "drop_late"), [(True, True), (False, True), (True, False)])
@settings(max_examples=60, deadline=None)
@given(scenario=scenarios(), choose=st.data())
def test_every_batch_and_summary_equal_the_python_engines(
    event_clock: bool, drop_late: bool, scenario: Scenario, choose: st.DataObject
):
    _run_both(scenario, choose, event_clock, drop_late)


# Messages at the edge of what the native core decides itself: each must end as in Python
# (valid or invalid, with the same reason), whether the native core reads it or hands it over.
EDGE_MESSAGES: list[Any] = [
    None,
    b"",
    b"\xef\xbb\xbf{}",
    b'{"type": "report.sent", "timestamp": 1795168800000, "account_id": "a\xff"}',
    b'{"type": "report.sent", "timestamp": 1795168800000, "account_id": "\\ud800"}',
    b'{"type": "report.sent", "timestamp": 1795168800000, "account_id": "\\ud83d\\ude00"}',
    b'{"type": "report.sent", "timestamp": 1795168800000, "account_id": "caf\\u00e9"}',
    b'{"type": "report.sent", "timestamp": 1795168800000, "amount": 1e400, "account_id": "a"}',
    b'{"type": "report.sent", "timestamp": 1795168800000, "account_id": 18446744073709551616}',
    b'{"type": "report.sent", "timestamp": 1795168800000, "account_id": 18446744073709551615}',
    b'{"type": "report.sent", "timestamp": 1795168800000, "account_id": -9223372036854775809}',
    b'{"type": "report.sent", "timestamp": 1795168800000, "account_id": 2.0}',
    b'{"type": "report.sent", "timestamp": 1795168800000, "account_id": 1e16}',
    b'{"type": "report.sent", "timestamp": 1795168800000, "account_id": -0}',
    b'{"type": "report.sent", "timestamp": 1795168800000, "account_id": 1e-07}',
    b'{"type": "report.sent", "timestamp": 1795168800000, "account_id": 1.5e16}',
    b'{"type": "report.sent", "timestamp": 1795168800000, "account_id": {"b": 1, "a": [2]}}',
    b'{"type": "report.sent", "timestamp": 1795168800000, "account_id": "a", "account_id": "b"}',
    b'{"type": "report.sent", "type": 5, "timestamp": 1795168800000, "account_id": "a"}',
    b'{"type": "report.sent", "timestamp": 1795168800000, "account_id": "a", "x": '
    + b"[" * 200
    + b"]" * 200
    + b"}",
    b'{"type": "report.sent", "timestamp": 1795168800000, "account_id": "a", "x": '
    + b"[" * 100
    + b"]" * 100
    + b"}",
    b'{"type": "report.sent", "timestamp": 1795168800000, "account_id": "a"} x',
    b'{"type": "report.sent", "timestamp": 1795168800000.0, "account_id": "a"}',
    b'{"type": "report.sent", "timestamp": 1795168800000, "event_id": 1.5, "account_id": "a"}',
    b'{"type": "report.sent", "timestamp": 1795168800000, "event_id": true, "account_id": "a"}',
    b'{"type": "report.sent", "timestamp": 1795168800000, "event_id": 12, "account_id": "a"}',
    b'{"type": "report.sent", "timestamp": 1795168800000, "event_id": "12", "account_id": "b"}',
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
    "2026-11-20T10:00:00.٣٣٣Z",
    "2026-13-20T10:00:00Z",
    "2026-11-20T10:07:00Z",
]
EDGE_DEFINITIONS = [
    {
        "name": "accounts_with_reports",
        "title": "Accounts with reports",
        "tier": "north_star",
        "window": "1d",
        "bucket": "1h",
        "segments": ["plan"],
        "entities": {
            "key": "account_id",
            "all": [
                {"event": "report.sent", "count_at_least": 2},
                {"event": "*", "distinct": "user_id", "at_least": 1},
            ],
        },
    },
    {
        "name": "reports",
        "title": "Reports",
        "tier": "diagnostic",
        "window": "1d",
        "bucket": "1h",
        "aggregate": {"event": "report.sent", "count": True},
    },
]


def test_messages_at_the_edge_end_as_in_python():
    catalog = catalog_of(EDGE_DEFINITIONS)
    raw = list(EDGE_MESSAGES)
    for text in TIMESTAMPS:
        event = {"type": "report.sent", "timestamp": text, "account_id": "t", "user_id": "u"}
        raw.append(json.dumps(event, ensure_ascii=False).encode())
    messages = [Message(i, value) for i, value in enumerate(raw)]
    now = BASE_MS + 3_600_000
    python, native = PartitionState(catalog, 0), NativePartitionState(catalog, 0)
    for size in (1, len(messages)):
        python, native = PartitionState(catalog, 0), NativePartitionState(catalog, 0)
        for start in range(0, len(messages), size):
            batch = messages[start : start + size]
            expected = python.apply_batch(batch, now, 300_000, event_clock=True)
            got = native.apply_batch(batch, now, 300_000, event_clock=True)
            assert _comparable(got, catalog) == _comparable(expected, catalog)
    assert native.summarize(now) == python.summarize(now)


def test_usual_events_never_reach_the_python_parser(monkeypatch: pytest.MonkeyPatch):
    """The example definitions and events of the usual shape: the native core decides every
    event a Python-held metric does not need (else it would only be as fast as Python)."""
    catalog = load_definitions("definitions")
    native = NativePartitionState(catalog, 0)
    parsed: list[bytes] = []
    original = native_module.parse_event

    def counting(raw: Any, *args: Any) -> Any:
        parsed.append(raw)
        return original(raw, *args)

    monkeypatch.setattr(native_module, "parse_event", counting)
    events = [
        {"type": "report.viewed", "account_id": "acc_1", "user_id": "u1", "report_id": "r1"},
        {"type": "workflow.completed", "account_id": "acc_1", "user_id": "u2", "seat": 3},
        {"type": "login", "account_id": "acc_2", "properties": {"method": "sso"}},
        {"type": "page.viewed", "account_id": 7, "plan": "pro", "segment": True},
        {"type": "report.sent", "account_id": "acc_1", "user_id": "u1"},
    ]
    messages = [
        Message(i, orjson.dumps({**e, "timestamp": "2026-11-20T10:00:00.250Z", "event_id": f"{i}"}))
        for i, e in enumerate(events)
    ]
    outcome = native.apply_batch(messages, BASE_MS, 300_000, event_clock=True)
    assert outcome.applied == len(events)
    # report.sent also feeds the `weekly_reports_sent` aggregate, kept in Python.
    assert [orjson.loads(p)["type"] for p in parsed] == ["report.sent"]
    assert native.native_metrics >= {"weekly_active_accounts_3plus_reports"}


def _float_of_bits(bits: int) -> float:
    return float(struct.unpack("<d", struct.pack("<Q", bits))[0])


ANY_FLOAT = st.integers(0, 2**64 - 1).map(_float_of_bits).filter(math.isfinite)


@settings(max_examples=800, deadline=None)
@given(
    values=st.lists(
        st.one_of(
            ANY_FLOAT,
            st.floats(allow_nan=False, allow_infinity=False),
            st.integers(-(2**64), 2**64),
            st.sampled_from([0.1, 0.2, 0.30000000000000004, 1e-7, 2**53 + 1, 9007199254740993.0]),
        ),
        min_size=1,
        max_size=12,
    ),
    digits=st.sampled_from(["repr", "17"]),
    pick=st.data(),
)
def test_numbers_compare_in_filters_as_python_compares_them(
    values: list[Any], digits: str, pick: Any
):
    """Decoded and compared exactly, as orjson and Python do: a float read one unit in the last
    place off (serde_json's default float parsing did so for one float in ten of arbitrary bits),
    or an int compared with a float through a rounding, would change a filter."""
    bound = pick.draw(st.sampled_from(values))
    operator = pick.draw(st.sampled_from(["gt", "gte", "lt", "lte", "in", "not"]))
    if isinstance(bound, int) and abs(bound) >= 2**63:
        bound = float(bound)  # a definition's bound is a 64-bit integer or a float
    spec = [bound] if operator == "in" else bound
    definitions = [
        {"name": "scored", "tier": "north_star", "window": "1d", "bucket": "1h",
         "entities": {"key": "account_id", "all": [
             {"event": "*", "where": {"score": {operator: spec}}, "count_at_least": 1}]}},
    ]  # fmt: skip
    catalog = catalog_of(definitions)

    def written(value: Any) -> str:
        return f"{value:.17g}" if digits == "17" and isinstance(value, float) else repr(value)

    messages = [
        Message(i, (f'{{"type": "t", "timestamp": {BASE_MS}, "account_id": "a{i}", '
                    f'"score": {written(value)}}}').encode())
        for i, value in enumerate(values)
    ]  # fmt: skip
    python, native = PartitionState(catalog, 0), NativePartitionState(catalog, 0)
    python.apply_batch(messages, BASE_MS, 300_000, event_clock=True)
    native.apply_batch(messages, BASE_MS, 300_000, event_clock=True)
    assert native.summarize(BASE_MS) == python.summarize(BASE_MS)


BASE_MESSAGE = (
    b'{"type": "report.sent", "timestamp": "2026-11-20T09:30:00.250Z", "event_id": "e\\u00e91",'
    b' "account_id": "acc", "user_id": 12, "plan": true,'
    b' "properties": {"plan": "pro", "score": 1.5e2, "list": [1, -0, "x"]}}'
)
EDIT_BYTES = b'"\\u{}[],:.-+eE0123456789 \t\n\r\x00\x1f\x7f\xc3\xa9\xed\xa0\x80\xff\xef\xbb\xbf'


@settings(max_examples=1000, deadline=None)
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
def test_damaged_messages_are_judged_as_python_judges_them(edits: list[tuple[str, int, int]]):
    """Bytes edited at random into the usual shape: whatever the native decoder accepts must be
    what orjson accepts, with the same content (else it would apply an invalid event)."""
    raw = bytearray(BASE_MESSAGE)
    for action, position, byte in edits:
        position = min(position, len(raw))
        if action == "replace" and position < len(raw):
            raw[position] = byte
        elif action == "insert":
            raw.insert(position, byte)
        elif position < len(raw):
            del raw[position]
    catalog = catalog_of(EDGE_DEFINITIONS)
    messages = [Message(0, bytes(raw)), Message(1, BASE_MESSAGE)]
    now = BASE_MS + 3_600_000
    python, native = PartitionState(catalog, 0), NativePartitionState(catalog, 0)
    expected = python.apply_batch(messages, now, 300_000, event_clock=True)
    got = native.apply_batch(messages, now, 300_000, event_clock=True)
    assert _comparable(got, catalog) == _comparable(expected, catalog)
    assert native.summarize(now) == python.summarize(now)
