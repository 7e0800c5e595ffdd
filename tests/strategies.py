"""Hypothesis strategies: random metric definitions and random event streams that stress the engine.

Vocabularies are small on purpose so that collisions happen: entity ids that share a label (`1`,
`"1"`, `1.0`), event ids repeated with the same or another content, segment values beyond small
caps, numbers, strings and booleans in the same filtered field, fields at the top level, in
`properties` or behind a dotted path, timestamps around bucket and window edges, as integers or
RFC 3339 strings in several zones, some after the as-of time and some too far in the future.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from processor.definitions.model import Catalog, Metric

BASE_MS = 1_795_168_800_000  # 2026-11-20T10:00:00Z
SKEW_MS = 300_000
UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
WINDOWS = [("4h", "1h"), ("3m", "1m"), ("2h", "30m"), ("10s", "5s"), ("1h", "1h"), ("1d", "6h")]
TYPES = ["report.sent", "seat.active", "deal.won"]

# Every field an event may carry, with the values it takes (None: a JSON null).
VALUES: dict[str, list[Any]] = {
    "account_id": ["a", "b", "c", 1, "1", 1.0, 2, None],
    "user_id": ["u1", "u2", "u3", 1, "1", True, "true", 2.5, {"a": 1, "b": [1, 2]}],
    "seat": [1, 2, 3, "1", "s"],
    "plan": ["free", "pro", "team", "other", "unknown", True, 1, None],
    "status": ["sent", "failed", 1, 1.0, True, "1", 0, None],
    "score": [0, 1, 2.5, 3, -1, "2", False, 0.1, 0.2],
    "amount": [0.1, 0.2, 0.3, 1, 2, -1, 2.5, "3", True, None, 1e-7],
}
TIERS = ["gold", "silver", 3]
REGIONS = ["eu", "us", 1, None]
EVENT_IDS = ["e1", "e2", "e3", 7, "7", 8, None]

FILTER_FIELDS = ["status", "score", "plan", "amount", "properties.tier", "context.region"]
SEGMENT_FIELDS = ["plan", "status", "context.region", "properties.tier", "account_id"]
SUM_FIELDS = ["amount", "score"]
DISTINCT_FIELDS = ["user_id", "seat", "plan", "account_id"]
KEY_FIELDS = ["account_id", "account_id", "user_id", "properties.account_id"]
FILTER_VALUES: dict[str, list[Any]] = {
    **{f: [v for v in VALUES[f] if v is not None] for f in ("status", "score", "plan", "amount")},
    "properties.tier": TIERS,
    "context.region": [r for r in REGIONS if r is not None],
}
NUMBERS = [-1, 0, 0.1, 0.3, 1, 2, 2.5, 3]


def window_ms(window: tuple[str, str]) -> tuple[int, int]:
    """(window, bucket) in ms."""
    return tuple(int(d[:-1]) * UNIT_MS[d[-1]] for d in window)  # type: ignore[return-value]


# --- definitions --------------------------------------------------------------------------------


def event_types() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(TYPES),
        st.lists(st.sampled_from(TYPES), min_size=1, max_size=2, unique=True),
        st.just("*"),
    )


@st.composite
def filter_specs(draw: st.DrawFn, name: str) -> Any:
    value = st.sampled_from(FILTER_VALUES[name])
    number = st.sampled_from(NUMBERS)
    choice = draw(st.integers(0, 7))
    if choice == 0:
        return draw(value)
    if choice in (1, 2):
        op = "in" if choice == 1 else "not_in"
        return {op: draw(st.lists(value, max_size=3))}
    if choice == 3:
        return {"not": draw(value)}
    if choice == 4:
        return {draw(st.sampled_from(["gt", "gte", "lt", "lte"])): draw(number)}
    if choice == 5:
        return {"gte": draw(number), "lt": draw(number)}
    if choice == 6:
        return {"exists": draw(st.booleans())}
    return {"exists": draw(st.booleans()), "not": draw(value)}


@st.composite
def wheres(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(FILTER_FIELDS), max_size=2, unique=True))
    return {name: draw(filter_specs(name)) for name in names}


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    cond: dict[str, Any] = {"event": draw(event_types())}
    if draw(st.integers(0, 2)) == 0:
        cond["where"] = draw(wheres())
    ending = draw(st.sampled_from(["count", "count", "distinct", "sum"]))
    if ending == "count":
        cond["count_at_least"] = draw(st.sampled_from([1, 1, 2, 3]))
    elif ending == "distinct":
        cond["distinct"] = draw(st.sampled_from(DISTINCT_FIELDS))
        cond["at_least"] = draw(st.sampled_from([1, 2, 3, 1.5]))
        if draw(st.booleans()):
            cond["each_count_at_least"] = draw(st.integers(1, 3))
    else:
        cond["sum"] = draw(st.sampled_from(SUM_FIELDS))
        cond["at_least"] = draw(st.sampled_from([0.3, 1, 2.5, 3, 0.1, 0, -1]))
    return cond


@st.composite
def base_metric(draw: st.DrawFn, name: str, window: tuple[str, str]) -> dict[str, Any]:
    metric: dict[str, Any] = {
        "name": name,
        "tier": "diagnostic",
        "window": window[0],
        "bucket": window[1],
        "segments": draw(st.lists(st.sampled_from(SEGMENT_FIELDS), max_size=2, unique=True)),
    }
    if draw(st.integers(0, 3)):
        metric["max_segment_values"] = draw(st.integers(1, 3))
    if draw(st.booleans()):
        key = draw(st.sampled_from(KEY_FIELDS))
        metric["entities"] = {
            "key": key,
            "all": draw(st.lists(conditions(), min_size=1, max_size=3)),
        }
    else:
        agg: dict[str, Any] = {"event": draw(event_types())}
        if draw(st.booleans()):
            agg["where"] = draw(wheres())
        measure = draw(st.sampled_from(["count", "sum", "distinct"]))
        if measure == "count":
            agg["count"] = True
        else:
            fields = SUM_FIELDS if measure == "sum" else DISTINCT_FIELDS
            agg[measure] = draw(st.sampled_from(fields))
        metric["aggregate"] = agg
    return metric


@st.composite
def division_free(draw: st.DrawFn, names: list[str], depth: int = 0) -> str:
    """An expression with + - * only: exact in any decimal arithmetic."""
    leaf = st.one_of(st.sampled_from(names), st.sampled_from(["0", "1", "2", "0.5"]))
    if depth >= 2 or draw(st.integers(0, 2)) == 0:
        return draw(st.sampled_from(names)) if depth == 0 else draw(leaf)
    left = draw(division_free(names, depth + 1))
    right = draw(division_free(names, depth + 1))
    op = draw(st.sampled_from(["+", "-", "*"]))
    text = f"{left} {op} {right}"
    return f"({text})" if draw(st.booleans()) else text


@st.composite
def formula_metric(draw: st.DrawFn, name: str, operands: list[dict[str, Any]]) -> dict[str, Any]:
    names = [m["name"] for m in operands]
    top = draw(division_free(names))
    if draw(st.integers(0, 3)):
        bottom = draw(division_free(names)) if draw(st.integers(0, 5)) else "0"
        top = f"({top}) / ({bottom})" if draw(st.booleans()) else f"{top} / {bottom}"
    metric: dict[str, Any] = {
        "name": name,
        "tier": "north_star",
        "window": operands[0]["window"],
        "bucket": operands[0]["bucket"],
        "formula": top,
    }
    used = [m for m in operands if m["name"] in top.replace("(", " ").replace(")", " ").split()]
    common = (
        [f for f in used[0]["segments"] if all(f in m["segments"] for m in used)] if used else []
    )
    if common and draw(st.booleans()):
        metric["segments"] = draw(st.lists(st.sampled_from(common), min_size=1, unique=True))
    if draw(st.booleans()):
        metric["max_segment_values"] = draw(st.integers(1, 3))
    return metric


def effective_segments(metric: dict[str, Any], by_name: dict[str, dict[str, Any]]) -> list[str]:
    """The fields a metric breaks down by (a formula without its own: those of every operand)."""
    if "formula" not in metric or metric.get("segments"):
        return list(metric.get("segments") or [])
    words = metric["formula"].replace("(", " ").replace(")", " ").split()
    used = [by_name[w] for w in words if w in by_name]
    fields = [effective_segments(m, by_name) for m in used]
    return [f for f in fields[0] if all(f in other for other in fields)] if fields else []


@st.composite
def definitions(draw: st.DrawFn, window: tuple[str, str]) -> list[dict[str, Any]]:
    """1-6 valid metrics: base metrics on `window` or another one, and formulas over them."""
    other = draw(st.sampled_from(WINDOWS))
    metrics = []
    for i in range(draw(st.integers(1, 4))):
        metrics.append(draw(base_metric(f"m{i}", window if draw(st.integers(0, 2)) else other)))
    by_name = {m["name"]: m for m in metrics}
    for j in range(draw(st.integers(0, 2))):
        w = draw(st.sampled_from([m["window"] for m in metrics]))
        # operands: base metrics of that window, and formulas without a division
        pool = [
            m
            for m in metrics
            if m["window"] == w and ("formula" not in m or "/" not in m["formula"])
        ]
        view = [{**m, "segments": effective_segments(m, by_name)} for m in pool]
        metric = draw(formula_metric(f"f{j}", view))
        metrics.append(metric)
        by_name[metric["name"]] = metric
    for m in metrics:
        Metric.model_validate(m)
    return draw(st.permutations(metrics))  # a formula may be declared before its operands


def catalog_of(metrics: list[dict[str, Any]]) -> Catalog:
    models = [Metric.model_validate(d) for d in metrics]
    return Catalog(metrics={m.name: m for m in models})


# --- events -------------------------------------------------------------------------------------


@st.composite
def placed_fields(draw: st.DrawFn) -> dict[str, Any]:
    """Some fields at the top level, some in `properties`, some both ways or as nulls."""
    event: dict[str, Any] = {}
    props: dict[str, Any] = {}
    for name, values in VALUES.items():
        where = draw(st.sampled_from(["absent", "top", "top", "props", "null_then_props", "both"]))
        if where == "absent":
            continue
        value = draw(st.sampled_from(values))
        if where == "top":
            event[name] = value
        elif where == "props":
            props[name] = value
        elif where == "null_then_props":
            event[name] = None
            props[name] = value
        else:
            event[name] = value
            props[name] = draw(st.sampled_from(values))
    tier = draw(st.sampled_from([*TIERS, None, "absent"]))
    if tier != "absent":
        props["tier"] = tier
    if props or draw(st.booleans()):
        event["properties"] = props
    context = draw(st.sampled_from(["absent", "object", "object", "string"]))
    if context == "object":
        region = draw(st.sampled_from([*REGIONS, "absent"]))
        event["context"] = {} if region == "absent" else {"region": region}
    elif context == "string":
        event["context"] = "eu"
    return event


def timestamp_text(ms: int, minutes_east: int, with_ms: bool) -> str:
    zone = timezone(timedelta(minutes=minutes_east))
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    text = moment.astimezone(zone).isoformat(timespec="milliseconds" if with_ms else "seconds")
    return text.replace("+00:00", "Z") if minutes_east == 0 else text


@st.composite
def rendered_timestamp(draw: st.DrawFn, ms: int) -> Any:
    if draw(st.integers(0, 2)):
        return ms
    zone = draw(st.sampled_from([0, 0, 120, -330, 60]))
    return timestamp_text(ms, zone, with_ms=ms % 1000 != 0 or draw(st.booleans()))


@st.composite
def timestamps_ms(draw: st.DrawFn, window: tuple[str, str]) -> int:
    """Times around BASE_MS, crowded at the edges of buckets and of the window."""
    w_ms, b_ms = window_ms(window)
    n = w_ms // b_ms
    bucket = draw(st.one_of(st.integers(-n + 1, 0), st.integers(-n + 1, 0), st.integers(-n - 1, 2)))
    within = draw(st.sampled_from([0, 1, b_ms - 1, b_ms // 2, None]))
    if within is None:
        within = draw(st.integers(0, b_ms - 1))
    return BASE_MS + bucket * b_ms + within


@st.composite
def events(
    draw: st.DrawFn, window: tuple[str, str], unique_ids: bool = False, max_size: int = 30
) -> list[dict[str, Any]]:
    """Valid events (timestamps still integers); event ids from a small pool unless unique."""
    out = []
    for i in range(draw(st.integers(0, max_size)) if draw(st.integers(0, 4)) else max_size):
        event = {"type": draw(st.sampled_from(TYPES)), "timestamp": draw(timestamps_ms(window))}
        event.update(draw(placed_fields()))
        if unique_ids:
            event["event_id"] = f"id{i}"
        elif draw(st.integers(0, 2)) == 0:
            event["event_id"] = draw(st.sampled_from(EVENT_IDS))
        out.append(event)
    return out


INVALID_RAW: list[Any] = [
    "{not json",
    "[1, 2]",
    '"text"',
    {"timestamp": BASE_MS},
    {"type": 5, "timestamp": BASE_MS},
    {"type": "report.sent"},
    {"type": "report.sent", "timestamp": None},
    {"type": "report.sent", "timestamp": "2026-11-20T10:00:00"},
    {"type": "report.sent", "timestamp": True},
    {"type": "report.sent", "timestamp": "yesterday"},
    {"type": "report.sent", "timestamp": BASE_MS + 0.5},
    {"type": "report.sent", "timestamp": [BASE_MS]},
]


@dataclass
class Scenario:
    metrics: list[dict[str, Any]]
    raw: list[Any]
    now_ms: int
    as_of: list[int | None]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """Definitions, a raw stream with duplicates, invalid and future events, and as-of times."""
    window = draw(st.sampled_from(WINDOWS))
    _, b_ms = window_ms(window)
    metrics = draw(definitions(window))
    base = draw(events(window))
    now_ms = BASE_MS + draw(st.sampled_from([0, b_ms, 2 * b_ms, -SKEW_MS]))
    # repeats of applied ids: identical copies, and the same id with other content
    stream: list[Any] = list(base)
    for _ in range(draw(st.integers(0, 4))):
        if not base:
            break
        copy = dict(draw(st.sampled_from(base)))
        if draw(st.booleans()):
            copy["type"] = draw(st.sampled_from(TYPES))
            copy["timestamp"] = draw(timestamps_ms(window))
        if "event_id" not in copy:
            copy["event_id"] = draw(st.sampled_from(EVENT_IDS))
        stream.insert(draw(st.integers(0, len(stream))), copy)
    # too far ahead of the clock (invalid), or exactly at the limit (valid)
    for delta in draw(st.lists(st.sampled_from([SKEW_MS, SKEW_MS + 1, 3 * b_ms]), max_size=2)):
        stream.append({"type": draw(st.sampled_from(TYPES)), "timestamp": now_ms + delta})
    for bad in draw(st.lists(st.sampled_from(INVALID_RAW), max_size=3)):
        position = draw(st.integers(0, len(stream)))
        if isinstance(bad, dict) and draw(st.booleans()):
            bad = {**bad, "event_id": draw(st.sampled_from(EVENT_IDS))}  # registers no id
        stream.insert(position, bad)
    raw: list[Any] = []
    for item in stream:
        if isinstance(item, dict) and draw(st.integers(0, 4)) == 0:
            item = dict(item)
            if isinstance(item.get("timestamp"), int) and not isinstance(item["timestamp"], bool):
                item["timestamp"] = draw(rendered_timestamp(item["timestamp"]))
            raw.append(json.dumps(item) if draw(st.booleans()) else json.dumps(item).encode())
        elif isinstance(item, dict) and isinstance(item.get("timestamp"), int):
            item = {**item, "timestamp": draw(rendered_timestamp(item["timestamp"]))}
            raw.append(item)
        else:
            raw.append(item)
    as_of = [None, *draw(st.lists(timestamps_ms(window), min_size=1, max_size=3))]
    return Scenario(metrics, raw, now_ms, as_of)


def distinct_timestamps(stream: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same events with pairwise distinct integer timestamps (shifted by a few ms)."""
    seen: set[int] = set()
    out = []
    for event in stream:
        ts = event["timestamp"]
        while ts in seen:
            ts += 1
        seen.add(ts)
        out.append({**event, "timestamp": ts})
    return out
