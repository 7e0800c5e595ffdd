"""Seeded workloads for the end-to-end tests: generator streams for the example definitions, and
small random catalogues with random events that stress windows, dedup horizons and segments.

Every workload keeps the worker's exactness precondition: an entity's events share a partition
(messages keyed by account, entity keys are the account) and so do an event id's repeats.
"""

from __future__ import annotations

import random
import time
from typing import Any

import orjson

from processor.generate import RecordStream, plan_history
from tests.integration.worker.harness import Message, partition_for

MINUTE_MS = 60_000
# (window, bucket): small enough that a few hours of events cross many buckets and windows.
WINDOWS = [("1h", "10m"), ("30m", "5m"), ("2h", "1h"), ("10m", "1m"), ("4h", "30m")]
TYPES = ["report.sent", "seat.active", "deal.won"]
PLANS = ["free", "pro", "team", None]
STATUSES = ["sent", "failed", 1, True, None]
REGIONS = ["eu", "us", "apac"]


def generated_messages(
    seed: int,
    partitions: int,
    *,
    accounts: int = 25,
    days: float = 10,
    events: int = 3000,
    duplicates: float = 0.0,
    invalid: float = 0.0,
    disorder_s: float = 0.0,
    end_ms: int | None = None,
) -> list[Message]:
    """`nsm generate` records (key: the account), routed to partitions by key."""
    config = plan_history(
        seed=seed,
        accounts=accounts,
        days=days,
        max_events=events,
        end_ms=end_ms if end_ms is not None else int(time.time() * 1000) - 60_000,
        duplicates_pct=duplicates,
        invalid_pct=invalid,
        disorder_ms=int(disorder_s * 1000),
    )
    return [
        (partition_for(key, value, partitions), key, value) for key, value in RecordStream(config)
    ]


# ---- random catalogues -----------------------------------------------------------------------


def _where(rng: random.Random) -> dict[str, Any]:
    choice = rng.randrange(5)
    if choice == 0:
        return {"plan": rng.choice(["free", "pro", "team"])}
    if choice == 1:
        return {"plan": {"in": rng.sample(["free", "pro", "team"], 2)}}
    if choice == 2:
        return {"amount": {rng.choice(["gt", "gte", "lt"]): rng.choice([0, 1, 2.5])}}
    if choice == 3:
        return {"status": {"not": "failed"}}
    return {"properties.region": {"exists": rng.choice([True, False])}}


def _event(rng: random.Random) -> Any:
    return rng.choice([*TYPES, "*", [TYPES[0], TYPES[1]]])


def _condition(rng: random.Random) -> dict[str, Any]:
    cond: dict[str, Any] = {"event": _event(rng)}
    if rng.random() < 0.4:
        cond["where"] = _where(rng)
    ending = rng.choice(["count", "count", "distinct", "sum"])
    if ending == "count":
        cond["count_at_least"] = rng.choice([1, 2, 3])
    elif ending == "distinct":
        cond["distinct"] = rng.choice(["user_id", "plan"])
        cond["at_least"] = rng.choice([1, 2, 3])
        if rng.random() < 0.5:
            cond["each_count_at_least"] = rng.choice([1, 2])
    else:
        cond["sum"] = "amount"
        cond["at_least"] = rng.choice([0.5, 2, 5])
    return cond


def random_catalogue(seed: int) -> list[dict[str, Any]]:
    """2-5 base metrics (entities keyed by account, aggregates) over one or two windows, and up to
    two formulas of one window over them."""
    rng = random.Random(seed)
    windows = rng.sample(WINDOWS, 2)
    metrics: list[dict[str, Any]] = []
    for i in range(rng.randint(2, 5)):
        window, bucket = windows[0] if rng.random() < 0.7 else windows[1]
        metric: dict[str, Any] = {
            "name": f"m{i}",
            "tier": "diagnostic",
            "window": window,
            "bucket": bucket,
            "segments": rng.sample(
                ["plan", "status", "properties.region", "user_id"], rng.randint(0, 2)
            ),
        }
        if rng.random() < 0.4:
            metric["max_segment_values"] = rng.randint(1, 3)
        if rng.random() < 0.5:
            metric["entities"] = {
                "key": "account_id",
                "all": [_condition(rng) for _ in range(rng.randint(1, 2))],
            }
        else:
            aggregate: dict[str, Any] = {"event": _event(rng)}
            if rng.random() < 0.4:
                aggregate["where"] = _where(rng)
            measure = rng.choice(["count", "sum", "distinct"])
            if measure == "count":
                aggregate["count"] = True
            elif measure == "sum":
                aggregate["sum"] = "amount"
            else:
                aggregate["distinct"] = rng.choice(["user_id", "account_id"])
            metric["aggregate"] = aggregate
        metrics.append(metric)
    by_window: dict[str, list[dict[str, Any]]] = {}
    for metric in metrics:
        by_window.setdefault(metric["window"], []).append(metric)
    for j in range(rng.randint(0, 2)):
        pool = rng.choice(list(by_window.values()))
        top = rng.choice(pool)["name"]
        other = rng.choice(pool)["name"]
        formula = rng.choice([f"{top} + {other}", f"{top} / {other}", f"({top} - 1) * 2"])
        metrics.append(
            {
                "name": f"f{j}",
                "tier": "north_star",
                "window": pool[0]["window"],
                "bucket": pool[0]["bucket"],
                "formula": formula,
            }
        )
    return metrics


def random_messages(
    seed: int,
    partitions: int,
    now_ms: int,
    *,
    count: int = 1500,
    span_ms: int = 6 * 3_600_000,
    duplicates: float = 0.05,
    reused_ids: float = 0.03,
    disorder_ms: int = 20 * MINUTE_MS,
    invalid: float = 0.03,
) -> list[Message]:
    """Events over `span_ms` up to `now_ms`, roughly in time order with local disorder: exact
    repeats (retries), ids reused with other content and time (within and beyond the dedup
    horizon), fields at the top level or in `properties`, and a few invalid messages."""
    rng = random.Random(seed)
    accounts = [f"acct-{i}" for i in range(12)]
    start = now_ms - span_ms
    out: list[Message] = []
    sent: list[tuple[bytes, dict[str, Any]]] = []
    for i in range(count):
        account = rng.choice(accounts)
        ts = start + span_ms * i // count + rng.randint(-disorder_ms, disorder_ms)
        ts = min(ts, now_ms)
        event: dict[str, Any] = {
            "type": rng.choice(TYPES),
            "timestamp": ts,
            "event_id": f"{account}-{i}",
            "account_id": account,
            "user_id": f"{account}-u{rng.randrange(4)}",
        }
        props: dict[str, Any] = {}
        for name, values in (("plan", PLANS), ("status", STATUSES)):
            value = rng.choice(values)
            if value is not None:
                (event if rng.random() < 0.7 else props)[name] = value
        if rng.random() < 0.8:
            (event if rng.random() < 0.5 else props)["amount"] = rng.choice([0.1, 0.2, 1, 2.5, 3])
        if rng.random() < 0.6:
            props["region"] = rng.choice(REGIONS)
        if props:
            event["properties"] = props
        if rng.random() < 0.3:  # RFC 3339 instead of epoch milliseconds
            event["timestamp"] = _rfc3339(ts)
        key = account.encode()
        if rng.random() < reused_ids and sent:
            old_key, old = rng.choice(sent)
            if old_key == key:  # same account, so same partition: a reused id
                event["event_id"] = old["event_id"]
        value = orjson.dumps(event)
        out.append((partition_for(key, None, partitions), key, value))
        sent.append((key, event))
        if rng.random() < duplicates:
            out.append((partition_for(key, None, partitions), key, value))
        if rng.random() < invalid:
            bad = rng.choice([b"{oops", b"[1]", orjson.dumps({"type": "x"}), b'"text"'])
            out.append((partition_for(key, None, partitions), key, bad))
    return out


def _rfc3339(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{text}.{millis:03d}Z"
