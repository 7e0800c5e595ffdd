"""Account traits from group calls (docs/semantics.md, Traits) against the brute-force oracle.

Segment/RudderStack calls: track calls of a few accounts and users, and group calls carrying
traits, some late (timestamped before events already sent), repeated (same messageId) or
without the trait. For random entities metrics segmented by `group.<trait>`, `nsm compute`
must equal the oracle at any as-of time, for any arrival order, and across partitions.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from processor.engine import compute_metrics
from tests.oracle import oracle_compute as oracle
from tests.strategies import BASE_MS, catalog_of, window_ms
from tests.unit.test_engine_vs_oracle import assert_same

WINDOWS = [("4h", "1h"), ("3m", "1m"), ("1d", "6h")]
ACCOUNTS = ["a1", "a2", 3, None]
USERS = ["u1", "u2", "u3"]
PLANS = ["free", "pro", 2, None]
NOW = BASE_MS + 86_400_000


@st.composite
def metric(draw: st.DrawFn, name: str, window: tuple[str, str]) -> dict[str, Any]:
    key = draw(st.sampled_from(["context.groupId", "userId", "workspace"]))
    traits = draw(st.lists(st.sampled_from(["group.plan", "group.geo.region"]), unique=True))
    segments = draw(st.permutations([*traits, *draw(st.sampled_from([[], ["workspace"]]))]))
    condition: dict[str, Any] = {"event": draw(st.sampled_from(["a", ["a", "b"], "*"]))}
    if draw(st.booleans()):
        condition["count_at_least"] = draw(st.integers(1, 3))
    else:
        condition.update(distinct="userId", at_least=draw(st.integers(1, 2)))
    return {
        "name": name,
        "tier": "diagnostic",
        "window": window[0],
        "bucket": window[1],
        "segments": list(segments)[:3],
        "entities": {"key": key, "all": [condition]},
    }


@st.composite
def timestamp(draw: st.DrawFn, window: tuple[str, str]) -> int:
    w_ms, b_ms = window_ms(window)
    return BASE_MS + draw(st.integers(-2 * w_ms, b_ms))


@st.composite
def calls(draw: st.DrawFn, window: tuple[str, str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(draw(st.integers(0, 30))):
        ts = draw(timestamp(window))
        message_id = draw(st.sampled_from([f"m{i}", f"m{i}", "dup", None]))
        if draw(st.integers(0, 2)) == 0:
            traits: dict[str, Any] = {}
            if draw(st.integers(0, 3)):
                traits["plan"] = draw(st.sampled_from(PLANS))
            if draw(st.booleans()):
                traits["geo"] = {"region": draw(st.sampled_from(["eu", "us"]))}
            call = {"type": "group", "groupId": draw(st.sampled_from(ACCOUNTS)), "traits": traits}
            if draw(st.integers(0, 4)) == 0:
                call["event"] = "a"  # ignored: a group call is named `group`
        else:
            call = {
                "type": "track",
                "event": draw(st.sampled_from(["a", "b"])),
                "context": {"groupId": draw(st.sampled_from(ACCOUNTS))},
                "properties": {"workspace": draw(st.sampled_from(["w1", "w2"]))},
            }
        call.update(userId=draw(st.sampled_from(USERS)), timestamp=ts)
        if message_id is not None:
            call["messageId"] = message_id
        out.append(call)
    return out


def engine(raw: list[Any], metrics: list[dict[str, Any]], at: int | None) -> dict[str, Any]:
    result = compute_metrics(
        copy.deepcopy(raw), catalog_of(metrics), at_ms=at, now_ms=NOW, input_format="segment"
    )
    return json.loads(json.dumps(result.to_json()))


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[int | None]]:
    window = draw(st.sampled_from(WINDOWS))
    metrics = [draw(metric(f"m{i}", window)) for i in range(draw(st.integers(1, 2)))]
    stream = draw(calls(window))
    as_of = [None, *draw(st.lists(timestamp(window), min_size=1, max_size=3))]
    return metrics, stream, as_of


@settings(max_examples=300, report_multiple_bugs=False)
@given(cases())
def test_trait_segments_equal_the_oracle(case: Any) -> None:
    metrics, stream, as_of = case
    for at in as_of:
        want = oracle(stream, metrics, at, NOW, input_format="segment")
        assert_same(engine(stream, metrics, at), want, metrics)


@settings(max_examples=150, report_multiple_bugs=False)
@given(cases(), st.randoms(use_true_random=False))
def test_any_arrival_order_gives_the_same_traits(case: Any, rng: Any) -> None:
    """Without repeated ids or equal timestamps, the order of arrival changes nothing."""
    metrics, stream, as_of = case
    seen: set[int] = set()
    unique = []
    for i, call in enumerate(stream):
        ts = call["timestamp"]
        while ts in seen:
            ts += 1
        seen.add(ts)
        unique.append({**call, "timestamp": ts, "messageId": f"u{i}"})
    order = list(unique)
    rng.shuffle(order)
    for at in as_of:
        first = engine(unique, metrics, at)
        assert_same(first, oracle(unique, metrics, at, NOW, input_format="segment"), metrics)
        assert_same(engine(order, metrics, at), first, metrics)


def test_a_late_group_call_labels_the_events_it_precedes() -> None:
    """A hand-made case, so the comparison cannot pass vacuously: the upgrade to pro is sent
    after the events it precedes, and still labels them; a call without the plan changes
    nothing; a later one after the entity's last event does not count."""
    hour = 3_600_000
    metrics = [
        {
            "name": "active",
            "tier": "north_star",
            "window": "1d",
            "segments": ["group.plan"],
            "entities": {"key": "context.groupId", "all": [{"event": "a", "count_at_least": 1}]},
        }
    ]

    def track(account: str, ts: int) -> dict[str, Any]:
        return {"type": "track", "event": "a", "userId": "u", "timestamp": ts,
                "context": {"groupId": account}}  # fmt: skip

    def group(account: str, ts: int, traits: dict[str, Any]) -> dict[str, Any]:
        return {"type": "group", "groupId": account, "userId": "u", "timestamp": ts,
                "traits": traits}  # fmt: skip

    stream = [
        group("x", BASE_MS - 5 * hour, {"plan": "free"}),
        track("x", BASE_MS - hour),
        track("y", BASE_MS - hour),
        group("x", BASE_MS - 2 * hour, {"plan": "pro"}),  # late, and it precedes x's event
        group("x", BASE_MS - 90 * 60_000, {"seats": 3}),  # no plan: does not count for it
        group("y", BASE_MS, {"plan": "enterprise"}),  # after y's event
    ]
    got = engine(stream, metrics, BASE_MS)["metrics"]["active"]
    assert got == {"value": 2, "segments": {"group.plan": {"pro": 1, "unknown": 1}}}
    want = oracle(stream, metrics, BASE_MS, NOW, input_format="segment")
    assert_same(engine(stream, metrics, BASE_MS), want, metrics)
