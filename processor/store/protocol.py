"""What the worker and the replay need from the store that holds the partitions' state.

A `StateStore` is the backend: it resolves the logical name workers serve to a namespace, and
gives the `PartitionStore` of a namespace. Implementations:

- Redis, one server or a Redis Cluster (`RedisStateStore`, store/partition_store.py), which keeps
  the key layout and the fenced Lua step described there;
- in memory (tests/memory_store.py), so that the worker's runtime has unit tests; one contract
  scenario holds both to the same behaviour (tests/integration/cluster/test_store_contract.py).

The rules every implementation keeps: `apply_batch` is atomic and fenced (it applies only when the
stored offset is the one expected, else raises `Fenced` and changes nothing); counts add up over
batches; the stored newest event time only grows; `load` returns exactly what the applied batches
and meta updates wrote, minus what `expire`, `update_meta` (its dropped metrics) and `clear`
removed. The meta fields that are not offsets, times, counts or definitions come back as
`marks` (the worker's readiness, processor/worker/rebuild.py); a step given a `MetaUpdate` with
`expect_pending` applies only when the `pending` mark holds that value, too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from processor.store.payloads import NewIds, PackedWrites

# The counts each batch adds to its partition (BatchOutcome.counts): events applied, repeats
# ignored, and invalid messages per reason.
APPLIED, DUPLICATES, INVALID_PREFIX = "applied", "duplicates", "invalid:"
COUNT_FIELDS = (APPLIED, DUPLICATES)
DEFINITION_PREFIX = "def:"
PENDING = "pending"  # the mark fenced with the offset (MetaUpdate.expect_pending)
_OWN_FIELDS = ("offset", "max_ts")


class Fenced(Exception):
    """The stored offset is not the one this writer expected: another worker wrote the partition
    since this one loaded it, or the store lost writes (a Redis failover). Reload, then go on."""

    def __init__(self, partition: int, stored_offset: str) -> None:
        super().__init__(
            f"partition {partition} was written by another worker (offset {stored_offset})"
        )
        self.partition = partition
        self.stored_offset = stored_offset


@dataclass
class StoredPartition:
    """A partition as stored: last applied offset, newest event time, the definitions' versions
    (`def:<metric>`), every bucket's fields (store/codec.py) and the event ids with their
    dedup horizons."""

    offset: int | None
    max_ts: int | None
    definitions: dict[str, str]
    buckets: dict[tuple[str, int], dict[bytes, bytes]] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)
    # The other meta fields that are neither counts nor definitions (the worker's marks).
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
        k: v
        for k, v in meta.items()
        if k not in _OWN_FIELDS
        and k not in COUNT_FIELDS
        and not k.startswith(INVALID_PREFIX)
        and not k.startswith(DEFINITION_PREFIX)
    }


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
        writes: PackedWrites,
        ids: NewIds,
        counts: Mapping[str, int] | None = None,
        meta: MetaUpdate | None = None,
    ) -> None:
        """Every write, the ids, the counts, the meta update and the new offset, atomically; or
        nothing and `Fenced` when the stored offset is not `expected_offset` (or the `pending`
        mark not `meta.expect_pending`)."""

    async def update_meta(
        self, partition: int, update: MetaUpdate, drop_metrics: Iterable[str] = ()
    ) -> None:
        """At once: forget the buckets and definition versions of `drop_metrics`, then set and
        delete the meta fields of `update`."""

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
        """Whether the partition is stored at `offset` with these definitions (and marks)."""

    async def counts(self, partitions: Iterable[int]) -> dict[str, int]:
        """The counts of every batch stored in these partitions, added up."""

    async def stored_offset(self, partition: int) -> int | None:
        """The last applied offset, or None before the first batch."""

    async def load(self, partition: int) -> StoredPartition: ...

    async def expire(self, partition: int, now_ms: int, forget_ids_until_ms: int) -> int:
        """Delete the buckets whose time has passed and the ids whose horizon is at or before
        `forget_ids_until_ms`; returns how many buckets were deleted."""

    async def write_summary(self, partition: int, payload: bytes) -> None: ...

    async def read_summaries(self, partitions: Iterable[int]) -> dict[int, bytes]: ...

    async def max_event_times(self, partitions: Iterable[int]) -> dict[int, int]: ...


class StateStore(Protocol):
    """A backend: namespaces of partitions, and the logical names that point at them."""

    def partitions(self, namespace: str) -> PartitionStore: ...

    async def resolve_namespace(self, logical: str) -> str:
        """The namespace behind a logical name (store/namespaces.py)."""

    async def aclose(self) -> None: ...
