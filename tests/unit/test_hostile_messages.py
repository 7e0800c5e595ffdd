"""No message stops a processor: hostile messages (tests/hostile.py) through every implementation.

The fast variant of the fuzz test through the real worker
(tests/integration/worker/test_worker_fuzz.py), with the same generator: `nsm compute`'s engine
must take every message without raising and give the oracle's numbers and counts, and the native
core must give, batch by batch, what the Python partition gives (the differential harness of
test_native_partition.py).

The body runs at Python's default recursion limit: hypothesis raises the limit while a test runs,
which would hide the failures of recursive code that the worker, whose batches are applied in
threads at the default limit, meets.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.engine import compute_metrics
from processor.events import InvalidEvent, parse_event
from tests import hostile
from tests.oracle import apply_events
from tests.oracle import oracle_compute as oracle
from tests.strategies import Scenario, catalog_of
from tests.unit.test_engine_vs_oracle import assert_same
from tests.unit.worker.test_native_partition import _run_both

CATALOG = catalog_of(hostile.METRICS)
NOW_MS = hostile.BASE_MS
HOSTILE = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                            HealthCheck.data_too_large],
)  # fmt: skip


@contextmanager
def default_recursion_limit() -> Iterator[None]:
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)  # CPython's default
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


@HOSTILE
@given(hostile.messages())
def test_compute_takes_any_message_and_equals_the_oracle(raw: list[bytes | None]) -> None:
    with default_recursion_limit():
        result = compute_metrics(raw, CATALOG, now_ms=NOW_MS)
    io = apply_events(raw, NOW_MS, metrics=hostile.METRICS)
    assert dict(result.invalid) == dict(io.invalid)
    assert (result.applied, result.duplicates) == (len(io.events), io.duplicates)
    assert result.applied + result.duplicates + sum(result.invalid.values()) == len(raw)
    assert_same(result.to_json(), oracle(raw, hostile.METRICS, None, NOW_MS), hostile.METRICS)


@HOSTILE
@given(raw=hostile.messages(max_size=25), choose=st.data(), event_clock=st.booleans())
def test_native_core_and_python_agree_on_any_message(
    raw: list[bytes | None], choose: st.DataObject, event_clock: bool
) -> None:
    scenario = Scenario(hostile.METRICS, list(raw), NOW_MS, [None, NOW_MS])
    with default_recursion_limit():
        _run_both(scenario, choose, event_clock, drop_late=True)


def _reason(raw: Any) -> str | None:
    with default_recursion_limit():
        event = parse_event(raw, NOW_MS)
    return event.reason if isinstance(event, InvalidEvent) else None


def test_the_generator_reaches_every_reason_and_depth() -> None:
    """The generator is not vacuous: among its messages are valid events with values nested
    past the recursion limit, and messages rejected for every reason."""
    reasons: set[str | None] = set()
    deep_valid: list[bytes] = []

    @settings(max_examples=40, database=None, derandomize=True, deadline=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(hostile.messages())
    def collect(raw: list[bytes | None]) -> None:
        for message in raw:
            reason = _reason(message)
            reasons.add(reason)
            if reason is None and message is not None and message.count(b"[") > 1000:
                deep_valid.append(message)

    collect()
    assert {None, "not_json", "not_object", "missing_type", "missing_timestamp",
            "bad_timestamp", "future_timestamp"} <= reasons  # fmt: skip
    assert deep_valid
