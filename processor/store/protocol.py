"""What the worker and the replay need from the store that holds the partitions' state.

A `StateStore` is the backend: it resolves the logical name workers serve to a namespace, and
gives the `PartitionStore` of a namespace. Implementations:

- Redis, one server or a Redis Cluster (`RedisStateStore`, store/partition_store.py), which keeps
  the key layout of docs/state.md and the fenced Lua step described there;
- in memory (tests/memory_store.py), so that the worker's runtime has unit tests; one contract
  scenario holds both to the same behaviour (tests/integration/cluster/test_store_contract.py).

The rules every implementation keeps: `apply_batch` is atomic and fenced (it applies only when the
stored offset is the one expected, else raises `Fenced` and changes nothing), and so is
`write_state`; counts add up over batches; the stored newest event time only grows; `load` returns
exactly what the applied batches and meta updates wrote (the engine's records, aggregate items and
packed ids, format 2), minus what `expire`, `update_meta` (its dropped metrics) and `clear`
removed. The meta fields that are not offsets, times, counts, definitions or metric ids come back
as `marks` (the worker's readiness, processor/worker/rebuild.py); a step given a `MetaUpdate` with
`expect_pending` applies only when the `pending` mark holds that value, too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from nsm_native import StateWrites

from processor.store.payloads import NewIds

# The counts each batch adds to its partition (BatchOutcome.counts): events applied, repeats
# ignored, and invalid messages per reason.
APPLIED, DUPLICATES, INVALID_PREFIX = "applied", "duplicates", "invalid:"
COUNT_FIELDS = (APPLIED, DUPLICATES)
# Fields of a partition's meta: the definition version its state was built with, the id its state
# is filed under, and the next id to give.
DEFINITION_PREFIX, METRIC_ID_PREFIX, NEXT_METRIC_ID = "def:", "mid:", "next_mid"
PENDING = "pending"  # the mark fenced with the offset (MetaUpdate.expect_pending)
# Meta fields of the store's own (the rest are marks).
_OWN_FIELDS = ("offset", "max_ts", "format", NEXT_METRIC_ID, *COUNT_FIELDS)
_OWN_PREFIXES = (DEFINITION_PREFIX, METRIC_ID_PREFIX, INVALID_PREFIX)


class Fenced(Exception):
    """The stored offset is not the one this writer expected: another worker wrote the partition
    since this one loaded it, or the store lost writes (a Redis failover). Reload, then go on."""

    def __init__(self, partition: int, stored_offset: str) -> None:
        super().__init__(
            f"partition {partition} was written by another worker (offset {stored_offset})"
        )
        self.partition = partition
        self.stored_offset = stored_offset


class UnknownFormat(Exception):
    """The stored state was written by a newer NSM: upgrade to read it (it is never misread)."""


@dataclass
class LegacyBatch:
    """One `ids` member of the first format: its batch's ids (label, horizon)."""

    member: bytes
    score: float
    ids: list[tuple[str, int]]


@dataclass
class LegacyState:
    """What the first format held: the fields of its bucket hashes (metric, bucket, field,
    value), its event ids (label, horizon: every batch's, and the `seen` zset's), and the keys the
    migration replaces."""

    fields: list[tuple[str, int, bytes, bytes]] = field(default_factory=list)
    ids: list[tuple[str, int]] = field(default_factory=list)
    batches: list[LegacyBatch] = field(default_factory=list)
    seen: list[tuple[str, int]] = field(default_factory=list)
    bucket_keys: list[str] = field(default_factory=list)


@dataclass
class StoredPartition:
    """A partition as stored: last applied offset, newest event time, the definitions' versions
    and the ids their state is filed under, the engine's entity records and aggregate items, and
    the batches of event ids (each packed by the engine)."""

    offset: int | None
    max_ts: int | None
    definitions: dict[str, str] = field(default_factory=dict)
    metric_ids: dict[str, int] = field(default_factory=dict)
    next_metric_id: int = 1
    records: list[tuple[bytes, bytes]] = field(default_factory=list)
    aggregates: list[tuple[bytes, bytes]] = field(default_factory=list)
    ids: list[bytes] = field(default_factory=list)
    # The first format's state, to migrate (None: format 2; only Redis ever held the first).
    legacy: LegacyState | None = None
    # The other meta fields that are neither counts, definitions nor ids (the worker's marks).
    marks: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MetaUpdate:
    """Meta fields an atomic step sets and deletes, and the `pending` mark it expects (None:
    any; "" when it must be absent)."""

    set: Mapping[str, str] = field(default_factory=dict)
    delete: tuple[str, ...] = ()
    expect_pending: str | None = None


def stored_marks(meta: Mapping[str, str]) -> dict[str, str]:
    """The marks among a partition's meta fields."""
    return {
        k: v for k, v in meta.items() if k not in _OWN_FIELDS and not k.startswith(_OWN_PREFIXES)
    }


def stored_from_meta(meta: Mapping[str, str]) -> StoredPartition:
    """A partition as its meta fields describe it (offset, max_ts, def:, mid:, next_mid); the
    state itself is added by the store."""
    return StoredPartition(
        offset=int(meta["offset"]) if "offset" in meta else None,
        max_ts=int(meta["max_ts"]) if "max_ts" in meta else None,
        definitions={
            k.removeprefix(DEFINITION_PREFIX): v
            for k, v in meta.items()
            if k.startswith(DEFINITION_PREFIX)
        },
        metric_ids={
            k.removeprefix(METRIC_ID_PREFIX): int(v)
            for k, v in meta.items()
            if k.startswith(METRIC_ID_PREFIX)
        },
        next_metric_id=int(meta.get(NEXT_METRIC_ID, "1")),
        marks=stored_marks(meta),
    )


class PartitionStore(Protocol):
    """One namespace's partitions."""

    @property
    def namespace(self) -> str: ...

    async def apply_batch(
        self,
        partition: int,
        expected_offset: int | None,
        new_offset: int,
        max_ts: int | None,
        writes: StateWrites | None,
        ids: NewIds,
        counts: Mapping[str, int] | None = None,
        meta: MetaUpdate | None = None,
    ) -> None:
        """Every write, the ids, the counts, the meta update and the new offset, atomically; or
        nothing and `Fenced` when the stored offset is not `expected_offset` (or the `pending`
        mark not `meta.expect_pending`)."""

    async def write_state(self, partition: int, offset: int | None, writes: StateWrites) -> None:
        """State changes without a batch (expiry, the end of a replay), fenced like a batch."""

    async def migrate(self, partition: int, stored: StoredPartition, writes: StateWrites) -> None:
        """Replace the first format's state (`stored.legacy`) with `writes`, fenced."""

    async def update_meta(
        self, partition: int, update: MetaUpdate, drop_metrics: Iterable[str] = ()
    ) -> None:
        """At once: forget the aggregate items, definition versions and ids of `drop_metrics`
        (parts of entity records filed under a forgotten id are left out when read), then set
        and delete the meta fields of `update` (definitions, `mid:` ids and marks alike)."""

    async def clear(self, partition: int) -> int:
        """Delete everything stored for the partition; returns how many keys went."""

    def scoped(self, scope: str) -> PartitionStore:
        """The store of a rebuild's state beside this namespace's partitions."""

    async def still_holds(
        self,
        partition: int,
        offset: int | None,
        fingerprints: Mapping[str, str],
        marks: Mapping[str, str | None] | None = None,
    ) -> bool:
        """Whether the partition is stored at `offset` with these definitions (and marks, None
        for one that must be absent)."""

    async def counts(self, partitions: Iterable[int]) -> dict[str, int]:
        """The counts of every batch stored in these partitions, added up."""

    async def stored_offset(self, partition: int) -> int | None:
        """The last applied offset, or None before the first batch."""

    async def load(self, partition: int) -> StoredPartition: ...

    async def expire(self, partition: int, forget_ids_until_ms: int) -> None:
        """Forget the batches of event ids whose newest horizon is at or before the time."""

    async def write_summary(self, partition: int, payload: bytes) -> None: ...

    async def read_summaries(self, partitions: Iterable[int]) -> dict[int, bytes]: ...

    async def max_event_times(self, partitions: Iterable[int]) -> dict[int, int]: ...


class StateStore(Protocol):
    """A backend: namespaces of partitions, and the logical names that point at them."""

    def partitions(self, namespace: str) -> PartitionStore: ...

    async def resolve_namespace(self, logical: str) -> str:
        """The namespace behind a logical name (store/namespaces.py)."""

    async def aclose(self) -> None: ...
