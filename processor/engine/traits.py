"""Account traits from group calls, as segments of `entities` metrics (docs/semantics.md, Traits).

The rule, in one place: a segment named `group.<trait>` labels an entity with the latest value of
`<trait>` that its account's group calls carried at the time of the entity's most recent matching
event, `unknown` when there is none. An event's account is its `groupId` (read like any field),
else its `context.groupId` (`account_of`); a group call is an event of type `group`, and
its traits are its `traits` object (`group.address.city` is a path into it). "Latest" is by event
time: the call with the largest timestamp at or before the event's, on a tie the later arrival; a
call without the trait, or with null, does not count for it.

Only the time of an entity's most recent event is kept in its cells, with its account; the value
is looked up when the metric is evaluated, so a group call that arrives after the events it
precedes still labels them, whatever the order of arrival. The history kept per account and trait
is every value at or after the start of the window plus the last one before it: nothing older can
ever be the latest for an event in the window, and late events are not applied. It is pruned when
a batch writes the account's history (worker/partition.py), as of that batch's clock, and at no
other time: so the history stored is always the one kept, and a partition restored from the store
goes on exactly as one that was not.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from processor.definitions.model import GROUP_TRAIT_PREFIX as PREFIX
from processor.engine.fields import UNKNOWN, compile_lookup, label

GROUP_CALL = "group"  # the event type of a group call (processor/segment.py)
TRAITS = "traits"  # a group call's traits
# An event's account: `groupId` (a group call's, read like any field), else `context.groupId`.
ACCOUNT_FIELDS = ("groupId", "context.groupId")
_ACCOUNT_LOOKUPS = tuple(compile_lookup(name) for name in ACCOUNT_FIELDS)
# The label a trait segment's slot holds in a cell: the event's account, marked, or NO_ACCOUNT.
_ACCOUNT_MARK = "@"
NO_ACCOUNT = ""

Entry = tuple[int, int, str]
"""(timestamp, arrival sequence, label of the value): one group call's value of one trait."""


def account_of(event: Mapping[str, Any]) -> Any:
    """The account an event (a call) belongs to, None when it names none (a null is missing).

    Works on an event as decoded and on the engine's flat view of it (which holds
    `context.groupId` by that name, fields.make_flattener).
    """
    group_id, context_group_id = _ACCOUNT_LOOKUPS
    account = group_id(event)
    if account is not None:
        return account
    if ACCOUNT_FIELDS[1] in event:
        return event[ACCOUNT_FIELDS[1]]
    return context_group_id(event)


def is_trait(name: str) -> bool:
    return name.startswith(PREFIX) and len(name) > len(PREFIX)


def trait_path(name: str) -> tuple[str, ...]:
    """`group.address.city` -> ("address", "city"): the path inside a group call's `traits`."""
    return tuple(name[len(PREFIX) :].split("."))


def account_ref(account: Any) -> str:
    """What a cell holds in a trait segment's slot: the event's account, or NO_ACCOUNT."""
    if account is None:
        return NO_ACCOUNT
    return _ACCOUNT_MARK + (account if type(account) is str else label(account))


def _walk(value: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


@dataclass(slots=True)
class GroupTraits:
    """The trait history of one metric's accounts: {account ref: {trait: entries by time}}."""

    names: tuple[str, ...]  # the metric's trait segments, `group.<path>`
    bucket_ms: int  # the metric's bucket: the history is pruned to its window's first bucket
    history: dict[str, dict[str, list[Entry]]] = field(default_factory=dict)
    # Bumped on every change, so that cached labels know when to look again.
    version: int = 0

    def record(self, account: Any, ts_ms: int, seq: int, traits: Any) -> str | None:
        """Take a group call's traits; returns the account ref when anything was recorded."""
        if account is None or not isinstance(traits, dict):
            return None
        ref = account_ref(account)
        recorded = False
        for name in self.names:
            value = _walk(traits, trait_path(name))
            if value is not None:
                entries = self.history.setdefault(ref, {}).setdefault(name, [])
                bisect.insort(entries, (ts_ms, seq, label(value)))
                recorded = True
        if recorded:
            self.version += 1
            return ref
        return None

    def value(self, ref: str, name: str, ts_ms: int) -> str:
        """The label of the trait as of `ts_ms` for the account `ref`, or `unknown`."""
        entries = self.history.get(ref, {}).get(name)
        if not entries:
            return UNKNOWN
        # The first entry strictly after ts (any seq, any label) is where the latest one ends.
        at = bisect.bisect_right(entries, (ts_ms, float("inf"), ""))
        return entries[at - 1][2] if at else UNKNOWN

    def merge(self, other: GroupTraits) -> None:
        for ref, traits in other.history.items():
            mine = self.history.setdefault(ref, {})
            for name, entries in traits.items():
                merged = mine.setdefault(name, [])
                for entry in entries:
                    bisect.insort(merged, entry)
        if other.history:
            self.version += 1

    def prune(self, first_bucket: int, refs: Iterable[str]) -> None:
        """Keep, for the accounts `refs` and each trait, the entries from the window's first
        bucket on, and the last one before it."""
        first_ms = first_bucket * self.bucket_ms
        for ref in refs:
            traits = self.history.get(ref, {})
            for name, entries in traits.items():
                # Entries before the last one that is before first_ms can never be the latest.
                keep_from = bisect.bisect_left(entries, (first_ms, -1, "")) - 1
                if keep_from > 0:
                    traits[name] = entries[keep_from:]

    def accounts(self) -> Iterable[str]:
        return self.history.keys()

    # ---- stored form: one hash field per account ------------------------------------------

    def encode(self, ref: str) -> bytes:
        return orjson.dumps(self.history.get(ref, {}))

    def load(self, fields: Mapping[bytes, bytes]) -> None:
        for ref, raw in fields.items():
            stored = orjson.loads(raw)
            self.history[ref.decode()] = {
                name: [(ts, seq, value) for ts, seq, value in entries]
                for name, entries in stored.items()
                if name in self.names
            }
        self.version += 1

    def __iter__(self) -> Iterator[str]:
        return iter(self.history)
