"""A brute-force recomputation of every metric from the raw events.

Written from the contract and docs/semantics.md alone, to hold the engine to them. For one as-of
time it validates and deduplicates the raw events, keeps each metric's window, and recomputes every
number with plain loops over the events: no buckets kept as state, no caps on sets, nothing
incremental. Sums and formulas use exact fractions. It is meant to be obviously correct, not fast.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

MAX_FUTURE_SKEW_MS = 300_000
UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
OTHER = "other"
UNKNOWN = "unknown"
MISSING: Any = object()
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# RFC 3339 section 5.6: "T" and "Z" may be lower case, and a space may separate date and time.
RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|([+-])(\d{2}):(\d{2}))$",
    re.ASCII,  # RFC 3339's digits are ASCII
)
DECODER_DEPTH = 1024  # docs/semantics.md: nesting deeper than this is not JSON to the processor

# ---------------------------------------------------------------------------------------------
# Events: validity, timestamps, dedup


def duration_ms(text: str) -> int:
    return int(text[:-1]) * UNIT_MS[text[-1]]


def parse_timestamp(value: Any) -> int | None:
    """Epoch ms of a valid timestamp, or None when it is not one."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str):
        return None
    match = RFC3339.match(value)
    if not match:
        return None
    y, mo, d, h, mi, s = (int(match.group(i)) for i in range(1, 7))
    try:
        local = datetime(y, mo, d, h, mi, s, tzinfo=UTC)
    except ValueError:
        return None
    offset_ms = 0
    if match.group(8) not in ("Z", "z"):
        oh, om = int(match.group(10)), int(match.group(11))
        if oh > 23 or om > 59:
            return None
        offset_ms = (oh * 60 + om) * 60_000 * (1 if match.group(9) == "+" else -1)
    frac_ms = int(Fraction(match.group(7) or ".0") * 1000)  # floor: it is not negative
    return (local - EPOCH) // timedelta(milliseconds=1) + frac_ms - offset_ms


@contextmanager
def deep_recursion() -> Iterator[None]:
    """Room for the standard library's recursive JSON code on values nested 1,024 deep."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(max(before, 20_000))
    try:
        yield
    finally:
        sys.setrecursionlimit(before)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _int64_or_float(text: str) -> int | float:
    """docs/semantics.md: integers beyond 64 bits are read as floats."""
    value = int(text)
    return value if -(2**63) <= value < 2**64 else _finite_float(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is beyond a double")
    return value


def _strict_shape(value: Any) -> bool:
    """No nesting beyond DECODER_DEPTH and no lone surrogate (an escape like \\ud800) in any
    string or key, which the standard library lets through."""
    pending = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if any(0xD800 <= ord(c) <= 0xDFFF for c in item):
                return False
        elif isinstance(item, dict | list):
            if depth + 1 > DECODER_DEPTH:
                return False
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
    return True


def decode(raw: bytes | str) -> tuple[bool, Any]:
    """(whether `raw` is JSON by docs/semantics.md, its value): UTF-8, RFC 8259, no NaN or
    Infinity, numbers that fit a double, at most DECODER_DEPTH levels."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        with deep_recursion():
            value = json.loads(text, parse_constant=_reject_constant,
                               parse_int=_int64_or_float, parse_float=_finite_float)  # fmt: skip
    except (ValueError, RecursionError):
        return False, None
    return _strict_shape(value), value


SEGMENT_CALLS = ("track", "identify", "group", "page", "screen", "alias")


class Event(dict[str, Any]):
    """A valid event: its fields, and the type and id the input format gives it."""

    event_type: str
    event_id: Any


def classify(
    raw: Any, now_ms: int, max_future_skew_ms: int, input_format: str = "nsm"
) -> tuple[str | None, Any, int]:
    """(invalid reason or None, the event object, its timestamp in ms)."""
    if raw is None:
        return "not_json", None, 0  # a tombstone
    if isinstance(raw, bytes | str):
        ok, raw = decode(raw)
        if not ok:
            return "not_json", None, 0
    if not isinstance(raw, dict):
        return "not_object", None, 0
    event = Event(raw)
    if input_format == "segment":
        # A track call's `event` names it; any other call is named by its call type.
        call = raw.get("type")
        name = raw.get("event") if call == "track" else call
        if call not in SEGMENT_CALLS or not isinstance(name, str) or name == "":
            return "missing_type", None, 0
        event.event_type, event.event_id = name, raw.get("messageId")
    else:
        if not isinstance(raw.get("type"), str):
            return "missing_type", None, 0
        event.event_type, event.event_id = raw["type"], raw.get("event_id")
    if raw.get("timestamp") is None:
        return "missing_timestamp", None, 0
    ts = parse_timestamp(raw["timestamp"])
    if ts is None:
        return "bad_timestamp", None, 0
    if ts > now_ms + max_future_skew_ms:
        return "future_timestamp", None, 0
    return None, event, ts


@dataclass
class Applied:
    events: list[tuple[int, Event]] = field(default_factory=list)  # (ts, event), arrival order
    invalid: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0


def horizon(ts: int, metrics: list[dict[str, Any]]) -> int:
    """docs/semantics.md, Dedup: when an event at `ts` has left every metric's window for good,
    i.e. the end of its bucket's last window, over every metric that keeps a window."""
    ends = []
    for metric in metrics:
        if "formula" not in metric:
            bucket = duration_ms(metric.get("bucket", "1h"))
            n = duration_ms(metric["window"]) // bucket
            ends.append((ts // bucket + n) * bucket)
    return max(ends, default=ts + 1)


def apply_events(
    raw_events: list[Any],
    now_ms: int,
    skew_ms: int = MAX_FUTURE_SKEW_MS,
    metrics: list[dict[str, Any]] | None = None,
    input_format: str = "nsm",
) -> Applied:
    """Validate every raw event, then drop repeats of an applied id timestamped before the
    original's horizon (with no `metrics`, ids are remembered forever)."""
    out = Applied()
    until: dict[str, int] = {}  # event id label -> horizon of its original
    for raw in raw_events:
        reason, event, ts = classify(raw, now_ms, skew_ms, input_format)
        if reason is not None:
            out.invalid[reason] += 1
            continue
        event_id = event.event_id
        if event_id is not None:
            original = until.get(label(event_id))
            if original is not None and (metrics is None or ts < original):
                out.duplicates += 1
                continue
            until[label(event_id)] = horizon(ts, metrics or [])
        out.events.append((ts, event))
    return out


# ---------------------------------------------------------------------------------------------
# Fields, labels, numbers, filters


def lookup(event: dict[str, Any], name: str) -> Any:
    """The field's value, or MISSING (a JSON null counts as missing)."""
    if "." in name:
        value: Any = event
        for part in name.split("."):
            if not isinstance(value, dict) or value.get(part) is None:
                return MISSING
            value = value[part]
        return value
    if event.get(name) is not None:
        return event[name]
    props = event.get("properties")
    if isinstance(props, dict) and props.get(name) is not None:
        return props[name]
    return MISSING


def label(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    with deep_recursion():
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def exact(value: int | float) -> Fraction:
    """A JSON number as the decimal it is written as."""
    return Fraction(value) if isinstance(value, int) else Fraction(Decimal(repr(value)))


def equal(actual: Any, expected: Any) -> bool:
    if isinstance(actual, bool) or isinstance(expected, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
    if is_number(actual) and is_number(expected):
        return Fraction(actual) == Fraction(expected)  # by value: 1 equals 1.0
    if isinstance(actual, str) and isinstance(expected, str):
        return actual == expected
    return False


def compare(op: str, left: Fraction, right: Fraction) -> bool:
    if op == "gt":
        return left > right
    if op == "gte":
        return left >= right
    return left < right if op == "lt" else left <= right


def filter_holds(value: Any, spec: Any) -> bool:
    if not isinstance(spec, dict):
        return value is not MISSING and equal(value, spec)
    for op, arg in spec.items():
        if op == "exists":
            ok = (value is not MISSING) == arg
        elif value is MISSING:
            ok = False
        elif op == "in":
            ok = any(equal(value, v) for v in arg)
        elif op == "not_in":
            ok = not any(equal(value, v) for v in arg)
        elif op == "not":
            ok = not equal(value, arg)
        else:
            ok = is_number(value) and compare(op, Fraction(value), Fraction(arg))  # by value
        if not ok:
            return False
    return True


def matches(event: dict[str, Any], spec: dict[str, Any]) -> bool:
    """`spec` has `event` (a type, a list of types or "*") and an optional `where`."""
    types = [spec["event"]] if isinstance(spec["event"], str) else spec["event"]
    if "*" not in types and event.event_type not in types:
        return False
    return all(filter_holds(lookup(event, f), s) for f, s in (spec.get("where") or {}).items())


def in_window(ts: int, metric: dict[str, Any], at_ms: int) -> bool:
    bucket = duration_ms(metric.get("bucket", "1h"))
    n = duration_ms(metric["window"]) // bucket
    k = at_ms // bucket
    return k - n + 1 <= ts // bucket <= k


# ---------------------------------------------------------------------------------------------
# Metrics. Each evaluated metric knows its total, its uncapped labels per segment field, and the
# value of any set of labels taken together (one label, or the labels folded into `other`).


@dataclass
class Evaluated:
    kind: str  # "int", "sum" or "formula": how values print
    total: Fraction | None
    fields: list[str]
    labels: dict[str, set[str]]
    value_of: Callable[[str, set[str]], Fraction | None]


def sum_of(events: list[dict[str, Any]], name: str) -> Fraction:
    total = Fraction(0)
    for event in events:
        value = lookup(event, name)
        if is_number(value):
            total += exact(value)
    return total


def eval_aggregate(metric: dict[str, Any], window: list[tuple[int, dict[str, Any]]]) -> Evaluated:
    agg = metric["aggregate"]
    matching = [e for _, e in window if matches(e, agg)]

    def measure(events: list[dict[str, Any]]) -> Fraction:
        if agg.get("count"):
            return Fraction(len(events))
        if agg.get("sum") is not None:
            return sum_of(events, agg["sum"])
        values = [lookup(e, agg["distinct"]) for e in events]
        return Fraction(len({label(v) for v in values if v is not MISSING}))

    def seg_label(event: dict[str, Any], name: str) -> str:
        value = lookup(event, name)
        return UNKNOWN if value is MISSING else label(value)

    fields = list(metric.get("segments") or [])
    labels = {f: {seg_label(e, f) for e in matching} for f in fields}

    def value_of(name: str, chosen: set[str]) -> Fraction:
        return measure([e for e in matching if seg_label(e, name) in chosen])

    kind = "sum" if agg.get("sum") is not None else "int"
    return Evaluated(kind, measure(matching), fields, labels, value_of)


def condition_holds(cond: dict[str, Any], events: list[dict[str, Any]]) -> bool:
    matching = [e for e in events if matches(e, cond)]
    if cond.get("count_at_least") is not None:
        return len(matching) >= cond["count_at_least"]
    if cond.get("sum") is not None:
        return sum_of(matching, cond["sum"]) >= exact(cond["at_least"])
    per_label: Counter[str] = Counter()
    for event in matching:
        value = lookup(event, cond["distinct"])
        if value is not MISSING:
            per_label[label(value)] += 1
    each = cond.get("each_count_at_least") or 1
    enough = [lab for lab, count in per_label.items() if count >= each]
    return len(enough) >= exact(cond["at_least"])


def account(event: dict[str, Any]) -> Any:
    """docs/semantics.md, Traits: `groupId` (read like any field), else `context.groupId`."""
    found = lookup(event, "groupId")
    return lookup(event, "context.groupId") if found is MISSING else found


def trait_at(history: list[tuple[int, Event]], owner: Any, name: str, ts: int) -> str:
    """The label of trait `group.<path>` of account `owner` as of `ts`: the latest group call
    (largest timestamp at or before `ts`, then the later arrival) whose traits hold it."""
    path = name[len("group.") :]
    best: tuple[int, int, str] | None = None
    for arrival, (call_ts, call) in enumerate(history):
        if call.event_type != "group" or call_ts > ts or owner is MISSING:
            continue
        call_account = account(call)
        if call_account is MISSING or label(call_account) != label(owner):
            continue
        traits = call.get("traits")
        if not isinstance(traits, dict):
            continue
        value: Any = traits
        for part in path.split("."):  # a literal path inside the traits
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            continue
        if best is None or (call_ts, arrival) > best[:2]:
            best = (call_ts, arrival, label(value))
    return UNKNOWN if best is None else best[2]


def eval_entities(
    metric: dict[str, Any],
    window: list[tuple[int, dict[str, Any]]],
    history: list[tuple[int, Event]] | None = None,
) -> Evaluated:
    """`history`: every applied event in arrival order, where group calls are found."""
    spec = metric["entities"]
    by_entity: dict[str, list[tuple[int, int, dict[str, Any]]]] = {}
    for arrival, (ts, event) in enumerate(window):
        key = lookup(event, spec["key"])
        if key is MISSING or not any(matches(event, c) for c in spec["all"]):
            continue
        by_entity.setdefault(label(key), []).append((ts, arrival, event))
    qualifies = {
        entity: all(condition_holds(c, [e for _, _, e in rows]) for c in spec["all"])
        for entity, rows in by_entity.items()
    }
    fields = list(metric.get("segments") or [])
    seg: dict[str, dict[str, str]] = {f: {} for f in fields}
    for entity, rows in by_entity.items():
        latest_ts, _, latest = max(rows, key=lambda row: (row[0], row[1]))
        for f in fields:
            if f.startswith("group."):
                seg[f][entity] = trait_at(history or [], account(latest), f, latest_ts)
                continue
            value = lookup(latest, f)
            seg[f][entity] = UNKNOWN if value is MISSING else label(value)
    labels = {f: set(seg[f].values()) for f in fields}

    def value_of(name: str, chosen: set[str]) -> Fraction:
        return Fraction(
            sum(1 for ent, lab in seg[name].items() if lab in chosen and qualifies[ent])
        )

    return Evaluated("int", Fraction(sum(qualifies.values())), fields, labels, value_of)


# Formulas: a tiny recursive-descent parser producing a tree, evaluated with fractions.
TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?)|([a-z][a-z0-9_]*)|(.))")


def parse_formula(text: str) -> Any:
    tokens = [m.group(1) or m.group(2) or m.group(3) for m in TOKEN.finditer(text.strip())]
    tokens = [t for t in tokens if t and not t.isspace()]
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def expr() -> Any:
        node = term()
        while peek() in ("+", "-"):
            node = (take(), node, term())
        return node

    def term() -> Any:
        node = unary()
        while peek() in ("*", "/"):
            node = (take(), node, unary())
        return node

    def unary() -> Any:
        if peek() == "-":
            take()
            return ("neg", unary())
        if peek() == "+":
            take()
            return unary()
        if peek() == "(":
            take()
            node = expr()
            assert take() == ")"
            return node
        tok = take()
        return ("num", Fraction(Decimal(tok))) if tok[0].isdigit() else ("name", tok)

    tree = expr()
    assert pos == len(tokens), f"trailing tokens in {text!r}"
    return tree


def formula_names(tree: Any) -> list[str]:
    if tree[0] == "name":
        return [tree[1]]
    if tree[0] == "num":
        return []
    return [n for child in tree[1:] for n in formula_names(child)]


def evaluate(tree: Any, operand: Callable[[str], Fraction | None]) -> Fraction | None:
    op = tree[0]
    if op == "num":
        return tree[1]
    if op == "name":
        return operand(tree[1])
    if op == "neg":
        inner = evaluate(tree[1], operand)
        return None if inner is None else -inner
    left, right = evaluate(tree[1], operand), evaluate(tree[2], operand)
    if left is None or right is None:
        return None
    if op == "/":
        return None if right == 0 else left / right
    return {"+": left + right, "-": left - right, "*": left * right}[op]


def eval_formula(metric: dict[str, Any], done: dict[str, Evaluated]) -> Evaluated:
    tree = parse_formula(metric["formula"])
    operands = {name: done[name] for name in formula_names(tree)}
    if metric.get("segments"):
        fields = list(metric["segments"])
    else:
        common = [set(ev.fields) for ev in operands.values()]
        first = next(iter(operands.values())).fields if operands else []
        fields = [f for f in first if all(f in c for c in common)]
    labels = {f: set().union(*(ev.labels[f] for ev in operands.values())) for f in fields}

    def value_of(name: str, chosen: set[str]) -> Fraction | None:
        def operand(op_name: str) -> Fraction | None:
            ev = operands[op_name]
            mine = chosen & ev.labels[name]
            return ev.value_of(name, mine) if mine else Fraction(0)

        return evaluate(tree, operand)

    total = evaluate(tree, lambda op_name: operands[op_name].total)
    return Evaluated("formula", total, fields, labels, value_of)


# ---------------------------------------------------------------------------------------------
# Output


def printed(kind: str, value: Fraction | None) -> int | float | None:
    if value is None:
        return None
    if kind == "int":
        assert value.denominator == 1
        return int(value)
    return float(value)


def breakdown(ev: Evaluated, name: str, cap: int) -> dict[str, int | float | None]:
    labels = sorted(ev.labels[name])
    values = {lab: ev.value_of(name, {lab}) for lab in labels}
    if len(labels) <= cap:
        return {lab: printed(ev.kind, values[lab]) for lab in labels}

    def rank(lab: str) -> tuple[int, Fraction, str]:
        value = values[lab]
        return (1, Fraction(0), lab) if value is None else (0, -value, lab)

    ranked = sorted(labels, key=rank)
    kept, folded = ranked[:cap], set(ranked[cap:])
    out = {lab: printed(ev.kind, values[lab]) for lab in kept if lab != OTHER}
    if OTHER in kept:
        folded.add(OTHER)
    out[OTHER] = printed(ev.kind, ev.value_of(name, folded))
    return out


def format_as_of(ms: int) -> str:
    """RFC 3339; a time it cannot write (outside the years 1 to 9999) as epoch milliseconds."""
    try:
        moment = EPOCH + timedelta(milliseconds=ms)
    except OverflowError:
        return str(ms)
    text = f"{moment.year:04d}-" + moment.strftime("%m-%dT%H:%M:%S")
    return f"{text}.{ms % 1000:03d}Z" if ms % 1000 else f"{text}Z"


def oracle_compute(
    raw_events: list[dict[str, Any] | str],
    metrics: list[dict[str, Any]],
    at_ms: int | None,
    now_ms: int,
    max_future_skew_ms: int = MAX_FUTURE_SKEW_MS,
    input_format: str = "nsm",
) -> dict[str, Any]:
    """Every metric as of `at_ms`, in the JSON shape of `nsm compute --format json`."""
    applied = apply_events(raw_events, now_ms, max_future_skew_ms, metrics, input_format)
    if at_ms is None:
        at_ms = max((ts for ts, _ in applied.events), default=now_ms)
    done: dict[str, Evaluated] = {}
    pending = list(metrics)
    while pending:  # formulas after their operands, whatever the declaration order
        for metric in pending:
            if "formula" in metric:
                needs = formula_names(parse_formula(metric["formula"]))
                if not all(n in done for n in needs):
                    continue
                done[metric["name"]] = eval_formula(metric, done)
            else:
                window = [(ts, e) for ts, e in applied.events if in_window(ts, metric, at_ms)]
                if "entities" in metric:
                    done[metric["name"]] = eval_entities(metric, window, applied.events)
                else:
                    done[metric["name"]] = eval_aggregate(metric, window)
            pending.remove(metric)
            break
        else:
            raise ValueError("formula operands are missing or cyclic")
    result: dict[str, Any] = {}
    for metric in metrics:
        ev = done[metric["name"]]
        cap = metric.get("max_segment_values", 50)
        result[metric["name"]] = {
            "value": printed(ev.kind, ev.total),
            "segments": {f: breakdown(ev, f, cap) for f in ev.fields},
        }
    return {"as_of": format_as_of(at_ms), "metrics": result}
