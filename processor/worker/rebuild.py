"""Which metrics of a partition are complete, which are rebuilt from the topic, and how a rebuilt
metric is handed over to the live state. No I/O: the worker (runtime.py) and the rebuild's
reader (backfill.py) carry out what is decided here.

A partition's state is complete for a metric when it holds every event of the topic's partition
that the metric needs. It is not, and the metric is not exported (CONTRACT §4), while:

- the partition is catching up from the topic's beginning (a first start, or a changed dedup
  horizon): nothing is complete until the offset that was the end when it started is applied;
- the metric is **pending**: new, or defined differently than the stored state. The live stream
  applies it from the offset it was restored at (the group's *end*, L) on, and a rebuild group
  applies the partition's events before L to a state of its own, from the first offset the topic
  still holds. Once the group reaches L its state is merged into the live one in one atomic
  step, and the metric is complete. A live state restored meanwhile (a restart, a rebalance, a
  reload) loads the metric's cells as the live stream wrote them, from L on, and goes on.

Why a rebuild starts at the beginning of what the topic holds (docs/backfill.md, "Why it is
exact"): a duplicate is decided by the first occurrence of its id, which can lie at any earlier
offset, so no later start offset can be shown to decide every repeat as `nsm compute` does.
After the hand-over the metric's events are deduplicated by the live stream's ids, which decide
each event exactly as the rebuild would have: both follow the same rule over the same events in
the same order, as long as the dedup horizon (the longest window per bucket size) is the one the
live ids were registered with. A change of the horizon changes which repeats are duplicates for
every metric, so it restarts the whole partition from the topic's beginning instead.

Marks in the partition's meta hash (store/partition_store.py), all strings:

    pending     JSON {metric: group}: metrics waiting for a rebuild group (fenced with the offset)
    shadows     JSON [group, ...]: groups whose keys may still exist (deleted after a hand-over)
    covered     JSON {metric: ms}: the time from which the metric's state holds every event,
                when the topic no longer held its beginning (absent: all of them)
    ready_at    the end offset a partition catching up from the beginning must reach
    horizon     JSON [[bucket ms, buckets], ...]: the dedup horizon the stored ids were made with
    dlq_until   invalid messages up to this offset went to the dead-letter topic already
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from processor.definitions.model import Catalog
from processor.engine.spec import compile_catalog
from processor.partition.state import fingerprints
from processor.store.protocol import DEFINITION_PREFIX, StoredPartition

PENDING, SHADOWS, COVERED = "pending", "shadows", "covered"
READY_AT, HORIZON, DLQ_UNTIL = "ready_at", "horizon", "dlq_until"
# A rebuild group's own meta: the offset it started reading at.
START = "start"


def dumps(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def horizon_mark(catalog: Catalog) -> str:
    """The dedup horizon as the engine derives it from the catalogue (docs/semantics.md)."""
    return dumps([list(term) for term in compile_catalog(catalog).horizon_terms])


def state_marks(catalog: Catalog) -> dict[str, str]:
    """The meta fields that say which definitions a partition's state was built with: each
    metric's fingerprint (`def:<metric>`) and the dedup horizon."""
    marks = {DEFINITION_PREFIX + m: f for m, f in fingerprints(catalog).items()}
    marks[HORIZON] = horizon_mark(catalog)
    return marks


def covered_marks(metrics: Iterable[str], first_ms: int) -> dict[str, str]:
    """The `covered` mark of a state built from the first message the topic still held (at
    `first_ms`, its Kafka timestamp), not from the partition's beginning."""
    return {COVERED: dumps({m: int(first_ms) for m in metrics})}


def incomplete(stored: StoredPartition, metrics: Iterable[str]) -> set[str]:
    """The metrics a stored partition does not hold completely: pending a rebuild, or all of
    them while it catches up from the topic's beginning."""
    if stored.marks.get(READY_AT):
        return set(metrics)
    pending: dict[str, str] = _json(stored.marks, PENDING, {})
    return {m for m in metrics if m in pending}


def group_id(end_offset: int, started_ms: int) -> str:
    """A rebuild group's name: the live offset it rebuilds up to, and when it started (two
    groups may end at one offset, after a reload that consumed nothing in between)."""
    return f"{end_offset}-{started_ms}"


def group_end(group: str) -> int:
    """The first offset the live stream applied to the group's metrics: the group reads up to
    it, not including it."""
    return int(group.split("-", 1)[0])


def scope(group: str) -> str:
    """The key scope of a group's state beside the partition's (PartitionStore(scope=...))."""
    return f"r.{group}"


def pending_token(pending: Mapping[str, str]) -> str:
    """The `pending` mark as stored: "" when nothing is pending (the field is then absent)."""
    return dumps(dict(pending)) if pending else ""


def _json(marks: Mapping[str, str], name: str, default: Any) -> Any:
    raw = marks.get(name)
    return orjson.loads(raw) if raw else default


@dataclass
class RestorePlan:
    """What restoring a partition with a catalogue does to what is stored."""

    reset: bool  # start from the topic's beginning: delete everything stored first
    reset_reason: str = ""
    load: frozenset[str] = frozenset()  # stored buckets loaded: unchanged, complete or pending
    drop: tuple[str, ...] = ()  # metrics whose stored buckets go (changed or removed)
    removed: tuple[str, ...] = ()  # stored metrics the catalogue no longer defines
    changed: tuple[str, ...] = ()  # defined differently than stored, or new: rebuilt
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)  # after the restore
    new_group: str | None = None
    stale_shadows: tuple[str, ...] = ()  # groups whose keys nobody needs any more
    pending: dict[str, str] = field(default_factory=dict)
    covered: dict[str, int] = field(default_factory=dict)
    marks: dict[str, str] = field(default_factory=dict)  # to set
    unmarks: tuple[str, ...] = ()  # to delete


def plan_restore(stored: StoredPartition, catalog: Catalog, now_ms: int) -> RestorePlan:
    """Decide, from what Redis holds, which metrics are complete, which are rebuilt (and in
    which group) and what is deleted."""
    wanted = fingerprints(catalog)
    horizon = horizon_mark(catalog)
    marks = stored.marks
    shadows: list[str] = list(_json(marks, SHADOWS, []))
    if stored.offset is None:
        return _reset(catalog, shadows, "nothing applied yet", None)
    before = marks.get(HORIZON) or _legacy_horizon(stored.definitions, catalog, wanted)
    if before != horizon:
        # The reason says what changed; the ids' horizons no longer follow the rule.
        return _reset(catalog, shadows, "the dedup horizon (longest window) changed",
                      stored.offset)  # fmt: skip
    pending: dict[str, str] = dict(_json(marks, PENDING, {}))
    covered: dict[str, int] = dict(_json(marks, COVERED, {}))
    groups: dict[str, list[str]] = {}
    load: set[str] = set()
    changed: list[str] = []
    for name, fingerprint in wanted.items():
        if stored.definitions.get(name) == fingerprint:
            # Pending or not, its stored cells are loaded: those of a pending metric hold what the
            # live stream applied from the group's end on, which the stream goes on adding to and
            # the hand-over merges the group's cells (the events before it) into.
            load.add(name)
            if name in pending:
                groups.setdefault(pending[name], []).append(name)
        else:
            changed.append(name)
    removed = [name for name in stored.definitions if name not in wanted]
    # A pending metric without a def: field cannot be: it is written with its mark. Anything
    # stored for a metric that is not loaded goes, so that a rebuild starts from nothing.
    drop = sorted(
        {*changed, *removed, *(m for m in pending if m not in wanted)}
        & {*stored.definitions, *pending}
    )
    new_group = None
    if changed:
        new_group = group_id(stored.offset + 1, now_ms)
        groups[new_group] = list(changed)
    pending = {m: g for g, members in groups.items() for m in members}
    covered = {m: t for m, t in covered.items() if m in load and m not in pending}
    live_shadows = sorted(set(shadows) & set(groups) | ({new_group} if new_group else set()))
    stale = tuple(sorted(set(shadows) - set(live_shadows)))
    set_marks = {HORIZON: horizon, SHADOWS: dumps(live_shadows)}
    unmarks: list[str] = []
    if pending:
        set_marks[PENDING] = pending_token(pending)
    else:
        unmarks.append(PENDING)
    if covered:
        set_marks[COVERED] = dumps(covered)
    else:
        unmarks.append(COVERED)
    return RestorePlan(
        reset=False,
        load=frozenset(load),
        drop=tuple(drop),
        removed=tuple(removed),
        changed=tuple(changed),
        groups={g: tuple(members) for g, members in groups.items()},
        new_group=new_group,
        stale_shadows=stale,
        pending=pending,
        covered=covered,
        marks=set_marks,
        unmarks=tuple(unmarks),
    )


def _reset(catalog: Catalog, shadows: list[str], reason: str, dlq_until: int | None) -> RestorePlan:
    marks = {HORIZON: horizon_mark(catalog)}
    if dlq_until is not None:
        marks[DLQ_UNTIL] = str(dlq_until)
    return RestorePlan(reset=True, reset_reason=reason, stale_shadows=tuple(shadows), marks=marks)


def _legacy_horizon(
    stored: Mapping[str, str], catalog: Catalog, wanted: Mapping[str, str]
) -> str | None:
    """The horizon of state written before the mark existed: known when every stored metric is
    still defined as it was (the horizon of those metrics), unknown (None) otherwise."""
    if not stored or any(wanted.get(name) != fp for name, fp in stored.items()):
        return None
    kept = Catalog(metrics={name: catalog[name] for name in stored})
    return horizon_mark(kept)
