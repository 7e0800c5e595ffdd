"""The event types and fields each metric reads, held to the declared `events:` (CONTRACT §2)
and, with `nsm validate --events FILE`, to a sample of real events.

Where no event type is declared, metrics are not held to any: the `events:` list is optional.
Once one is declared, a metric that names an undeclared type, or a field that none of the types
it reads declares, is an error, with a did-you-mean. A field is named as a metric names it: `plan`
is looked up at the top level, then in `properties`; a dotted path is taken literally
(docs/semantics.md). `type`, `timestamp` and `event_id` are fields of every event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from processor.definitions.loader import Declared, DeclaredEvent
from processor.definitions.messages import Loc, did_you_mean
from processor.definitions.model import ANY_EVENT, STANDARD_FIELDS, Metric
from processor.definitions.problems import Problem

# How deep a sample event's nested objects are walked for dotted paths (context.page.url).
_MAX_DEPTH = 4


@dataclass(frozen=True)
class TypeUse:
    """An event type a metric reads, and where it is written."""

    type: str
    loc: Loc


@dataclass(frozen=True)
class FieldUse:
    """A field a metric reads, on events of `types` (None: any type), and where it is written."""

    field: str
    types: tuple[str, ...] | None
    loc: Loc
    role: str  # key, where, distinct, sum, segment


def _types(events: Sequence[str]) -> tuple[str, ...] | None:
    return None if ANY_EVENT in events else tuple(events)


def _type_uses(events: Sequence[str], loc: Loc) -> list[TypeUse]:
    if len(events) == 1:
        return [] if events[0] == ANY_EVENT else [TypeUse(events[0], loc)]
    return [TypeUse(t, (*loc, i)) for i, t in enumerate(events) if t != ANY_EVENT]


def uses(metric: Metric) -> tuple[list[TypeUse], list[FieldUse]]:
    """Every event type and field the metric reads (a formula reads none itself)."""
    types: list[TypeUse] = []
    fields: list[FieldUse] = []
    read_by: list[tuple[str, ...] | None] = []
    if metric.entities is not None:
        entities = metric.entities
        for i, condition in enumerate(entities.all):
            at: Loc = ("entities", "all", i)
            on = _types(condition.event)
            read_by.append(on)
            types += _type_uses(condition.event, (*at, "event"))
            fields.append(FieldUse(entities.key, on, ("entities", "key"), "key"))
            fields += [FieldUse(f, on, (*at, "where", f), "where") for f in condition.where]
            for role in ("distinct", "sum"):
                name = getattr(condition, role)
                if name is not None:
                    fields.append(FieldUse(name, on, (*at, role), role))
    elif metric.aggregate is not None:
        aggregate = metric.aggregate
        on = _types(aggregate.event)
        read_by.append(on)
        types += _type_uses(aggregate.event, ("aggregate", "event"))
        fields += [FieldUse(f, on, ("aggregate", "where", f), "where") for f in aggregate.where]
        for role in ("distinct", "sum"):
            name = getattr(aggregate, role)
            if name is not None:
                fields.append(FieldUse(name, on, ("aggregate", role), role))
    if read_by:
        # A segment is read on the events of any of the metric's conditions.
        segment_types: tuple[str, ...] | None = None
        if all(t is not None for t in read_by):
            segment_types = tuple(dict.fromkeys(t for ts in read_by if ts for t in ts))
        fields += [
            FieldUse(name, segment_types, ("segments", k), "segment")
            for k, name in enumerate(metric.segments)
        ]
    return types, fields


def _on(types: Sequence[str]) -> str:
    shown = ", ".join(types[:5]) + (f" and {len(types) - 5} more" if len(types) > 5 else "")
    return shown


# ---- the declared event types ------------------------------------------------------------------


def check_events(declared: Sequence[Declared], events: Sequence[DeclaredEvent]) -> list[Problem]:
    """Duplicate declarations, and every metric's types and fields against the declared ones."""
    if not events:
        return []
    problems: list[Problem] = []
    known: dict[str, DeclaredEvent] = {}
    for entry in events:
        first = known.setdefault(entry.event.type, entry)
        if first is not entry:
            problems.append(
                Problem(
                    entry.file,
                    entry.line,
                    f"event type {entry.event.type} is declared twice (first at "
                    f"{first.file}:{first.line}): declare each type once, with all its fields",
                )
            )
    names = list(known)
    for item in declared:
        metric = item.metric
        type_uses, field_uses = uses(metric)
        for type_use in type_uses:
            if type_use.type not in known:
                problems.append(
                    Problem(
                        item.file,
                        item.line_at(type_use.loc),
                        f"metric {metric.name}: event type {type_use.type!r} is not declared "
                        f"in events:{did_you_mean(type_use.type, names)}: fix the name, or "
                        "declare the type under events:",
                    )
                )
        for use in field_uses:
            on = [t for t in (use.types if use.types is not None else names) if t in known]
            # Read on undeclared types only (reported above): held to every declared type.
            on = on or names
            if any(known[t].event.carries(use.field) for t in on):
                continue
            fields = sorted({f for t in on for f in known[t].event.fields} | set(STANDARD_FIELDS))
            problems.append(
                Problem(
                    item.file,
                    item.line_at(use.loc),
                    f"metric {metric.name}: field {use.field!r} ({use.role}) is not a declared "
                    f"field of {_on(on)}{did_you_mean(use.field, fields)}: fix the name, or add "
                    "it to the type's fields: under events:",
                )
            )
    return problems


# ---- a sample of real events -----------------------------------------------------------------


@dataclass
class SampleProfile:
    """What a sample of events holds: per type, how many events, and how many of them carry each
    field as a metric would name it (top-level and `properties` names, and dotted paths)."""

    name: str
    lines: int = 0
    invalid: int = 0
    types: Counter[str] = field(default_factory=Counter)
    fields: dict[str, Counter[str]] = field(default_factory=dict)
    first_line: dict[str, int] = field(default_factory=dict)

    @property
    def events(self) -> int:
        return sum(self.types.values())

    def carrying(self, types: Iterable[str], name: str) -> int:
        return sum(self.fields.get(t, Counter())[name] for t in types)


def _names(event: dict[str, Any]) -> set[str]:
    """The field names an event carries: a top-level or `properties` name (not null), and every
    dotted path through its objects."""
    names: set[str] = set()

    def walk(prefix: str, value: Any, depth: int) -> None:
        if value is None:
            return
        names.add(prefix)
        if isinstance(value, dict) and depth < _MAX_DEPTH:
            for key, inner in value.items():
                walk(f"{prefix}.{key}", inner, depth + 1)

    for key, value in event.items():
        walk(key, value, 1)
    properties = event.get("properties")
    if isinstance(properties, dict):
        names.update(k for k, v in properties.items() if v is not None)
    return names


def profile_sample(name: str, lines: Iterable[bytes]) -> SampleProfile:
    """Read a JSON Lines sample; lines that are not an event object with a string type count as
    invalid."""
    profile = SampleProfile(name)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        profile.lines += 1
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError:
            profile.invalid += 1
            continue
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            profile.invalid += 1
            continue
        kind = event["type"]
        profile.types[kind] += 1
        profile.first_line.setdefault(kind, number)
        profile.fields.setdefault(kind, Counter()).update(_names(event))
    return profile


def check_sample(
    declared: Sequence[Declared], events: Sequence[DeclaredEvent], sample: SampleProfile
) -> list[Problem]:
    """The types and fields metrics read that no event of the sample carries (errors, with the
    counts), and declared types and fields the sample never shows or lacks (warnings)."""
    problems: list[Problem] = []
    seen = sorted(sample.types)
    read = f"{sample.events:,} events of {len(seen)} types read"
    for item in declared:
        metric = item.metric
        type_uses, field_uses = uses(metric)
        for type_use in type_uses:
            if sample.types[type_use.type] == 0:
                problems.append(
                    Problem(
                        item.file,
                        item.line_at(type_use.loc),
                        f"metric {metric.name}: no event in {sample.name} has type "
                        f"{type_use.type!r} ({read}){did_you_mean(type_use.type, seen)}",
                    )
                )
        for use in field_uses:
            on = [t for t in (use.types if use.types is not None else seen) if sample.types[t]]
            if not on or sample.carrying(on, use.field):
                continue
            total = sum(sample.types[t] for t in on)
            carried = sorted({f for t in on for f in sample.fields[t]})
            problems.append(
                Problem(
                    item.file,
                    item.line_at(use.loc),
                    f"metric {metric.name}: field {use.field!r} ({use.role}): none of the "
                    f"{total:,} {_on(on)} events in {sample.name} carries it"
                    f"{did_you_mean(use.field, carried)}",
                )
            )
    return problems + _declared_against(events, sample, read)


def _declared_against(
    events: Sequence[DeclaredEvent], sample: SampleProfile, read: str
) -> list[Problem]:
    """Declared types and fields the sample never shows, and types it shows undeclared."""
    problems: list[Problem] = []
    declared_types = {e.event.type: e for e in events}
    for kind, event in declared_types.items():
        count = sample.types[kind]
        if count == 0:
            text = f"event type {kind}: declared, but no event in {sample.name} has it ({read})"
            problems.append(Problem(event.file, event.line, text, "warning"))
            continue
        for name in event.event.fields:
            if not sample.carrying([kind], name):
                text = (
                    f"event type {kind}: field {name!r} is declared, but none of its {count:,} "
                    f"events in {sample.name} carries it"
                )
                problems.append(Problem(event.file, event.line, text, "warning"))
    if declared_types:
        for kind in sorted(sample.types):
            if kind not in declared_types:
                text = f"{sample.types[kind]:,} events of type {kind!r} are not declared in events:"
                problems.append(Problem(sample.name, sample.first_line[kind], text, "warning"))
    return problems
