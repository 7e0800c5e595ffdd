"""Engine state <-> Redis hash fields.

One Redis hash holds one bucket of one metric of one partition. Its fields:

    entities   field = entity label             value = [ts, seq, labels, counts, sets,
                                                          value_counts, sums]
    count/sum  field = ["t"]                    value = total
               field = ["s", segment, label]    value = that label's count or sum
    distinct   field = ["t", value]             value = 1    (membership of the total set)
               field = ["s", segment, label, value]  value = 1
               field = ["s", segment, label]         value = 1    (a label without values)

    traits     (bucket TRAITS_BUCKET) field = account (`@<label>`)   value = {trait: [[ts, seq,
               label], ...]}: a metric's trait history (engine/traits.py), kept until the
               metric is dropped, pruned by the batch that writes an account (only then)

Field names other than entity labels are compact JSON arrays, so labels may hold any character.
Sums are written as decimal strings, so they load back exactly. Values are absolute, not
increments: writing a field twice is harmless, which keeps a retried write safe.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal

import orjson

from processor.engine.state import (
    CountBucket,
    CountState,
    DistinctBucket,
    DistinctState,
    EntitiesState,
    EntityCell,
    MetricState,
    SumBucket,
    SumState,
)

TOTAL = orjson.dumps(["t"])
# The bucket number a metric's trait history is stored under: below every bucket an event can
# have (timestamps are 64-bit integers), so it never meets a real one.
TRAITS_BUCKET = -(2**63) - 1

Fields = dict[bytes, bytes]


def _segment_key(segment: str, label: str) -> bytes:
    return orjson.dumps(["s", segment, label])


def encode_cell(cell: EntityCell) -> bytes:
    return orjson.dumps(
        [
            cell.latest_ts,
            cell.latest_seq,
            cell.labels,
            cell.counts,
            [sorted(s) for s in cell.sets],
            cell.value_counts,
            [str(s) for s in cell.sums],
        ]
    )


def decode_cell(raw: bytes) -> EntityCell:
    ts, seq, labels, counts, sets, value_counts, sums = orjson.loads(raw)
    return EntityCell(
        ts, seq, tuple(labels), counts, [set(s) for s in sets], value_counts,
        [Decimal(s) for s in sums],
    )  # fmt: skip


def changed_fields(stored: MetricState, delta: MetricState, bucket: int) -> Fields:
    """The fields of `stored` (already merged with `delta`) that `delta` touched in `bucket`."""
    if isinstance(stored, EntitiesState):
        assert isinstance(delta, EntitiesState)
        cells = stored.buckets[bucket]
        return {entity.encode(): encode_cell(cells[entity]) for entity in delta.buckets[bucket]}
    if isinstance(stored, DistinctState):
        assert isinstance(delta, DistinctState)
        return dict(_distinct_fields(delta.buckets[bucket]))
    assert isinstance(stored, CountState | SumState) and isinstance(delta, CountState | SumState)
    mine, theirs = stored.buckets[bucket], delta.buckets[bucket]
    fields: Fields = {TOTAL: str(mine.total).encode()}
    for segment, values in theirs.by_segment.items():
        for label in values:
            fields[_segment_key(segment, label)] = str(mine.by_segment[segment][label]).encode()
    return fields


def _distinct_fields(bucket: DistinctBucket) -> Iterator[tuple[bytes, bytes]]:
    for value in bucket.total:
        yield orjson.dumps(["t", value]), b"1"
    for segment, labels in bucket.by_segment.items():
        for label, values in labels.items():
            if not values:  # matching events without the field: the label is listed, with 0
                yield orjson.dumps(["s", segment, label]), b"1"
            for value in values:
                yield orjson.dumps(["s", segment, label, value]), b"1"


def all_fields(state: MetricState, bucket: int) -> Fields:
    """Every field of one bucket (used when a whole bucket is written, and in tests)."""
    return changed_fields(state, state, bucket)


def load_bucket(state: MetricState, bucket: int, fields: Mapping[bytes, bytes]) -> None:
    """Put one stored bucket into `state` (which has no such bucket yet)."""
    if isinstance(state, EntitiesState):
        if bucket == TRAITS_BUCKET:
            if state.traits is not None:
                state.traits.load(fields)
            return
        state.buckets[bucket] = {
            entity.decode(): decode_cell(raw) for entity, raw in fields.items()
        }
    elif isinstance(state, DistinctState):
        distinct = state.buckets[bucket] = DistinctBucket()
        for name in fields:
            parts = orjson.loads(name)
            if parts[0] == "t":
                distinct.total.add(parts[1])
            else:
                members = distinct.by_segment.setdefault(parts[1], {}).setdefault(parts[2], set())
                if len(parts) == 4:
                    members.add(parts[3])
    elif isinstance(state, CountState):
        counts = state.buckets[bucket] = CountBucket()
        for name, raw in fields.items():
            parts = orjson.loads(name)
            if parts[0] == "t":
                counts.total = int(raw)
            else:
                counts.by_segment.setdefault(parts[1], {})[parts[2]] = int(raw)
    else:
        sums = state.buckets[bucket] = SumBucket()
        for name, raw in fields.items():
            parts = orjson.loads(name)
            if parts[0] == "t":
                sums.total = Decimal(raw.decode())
            else:
                sums.by_segment.setdefault(parts[1], {})[parts[2]] = Decimal(raw.decode())
