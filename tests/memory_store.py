"""The state store in memory: what the Redis store does (store/partition_store.py), in dicts.

For unit tests of the worker's runtime, and a second implementation of the store protocol
(store/protocol.py) that the contract tests hold to the same behaviour as Redis
(tests/integration/cluster/test_store_contract.py). It holds format 2 only (the engine's records,
aggregate items and packed ids); the first format is only ever in Redis. `lose_writes_after`
plays a Redis failover that lost the last acknowledged writes: the partition goes back to an
earlier snapshot.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import msgpack
from nsm_native import StateWrites

from processor.store.partition_store import varint
from processor.store.payloads import NewIds
from processor.store.protocol import (
    COUNT_FIELDS,
    DEFINITION_PREFIX,
    INVALID_PREFIX,
    METRIC_ID_PREFIX,
    PENDING,
    Fenced,
    MetaUpdate,
    StoredPartition,
    stored_from_meta,
)


@dataclass
class _Partition:
    meta: dict[str, str] = field(default_factory=dict)
    records: dict[bytes, bytes] = field(default_factory=dict)
    aggregates: dict[bytes, bytes] = field(default_factory=dict)
    # Each batch's packed ids with their newest horizon (as the Redis ids zset).
    id_batches: list[tuple[int, bytes]] = field(default_factory=list)
    summary: bytes | None = None


def _update(items: dict[bytes, bytes], sets: bytes, deletes: bytes) -> None:
    flat = msgpack.unpackb(sets, raw=True)
    items.update(zip(flat[::2], flat[1::2], strict=True))
    for gone in msgpack.unpackb(deletes, raw=True):
        items.pop(gone, None)


class MemoryPartitionStore:
    def __init__(self, backend: MemoryStateStore, namespace: str, scope: str = "") -> None:
        self.backend = backend
        self.namespace = namespace
        self.scope = scope

    def _key(self, partition: int) -> tuple[str, int]:
        return (f"{self.namespace}/{self.scope}" if self.scope else self.namespace, partition)

    def _partition(self, partition: int) -> _Partition:
        return self.backend.data.setdefault(self._key(partition), _Partition())

    def scoped(self, scope: str) -> MemoryPartitionStore:
        return MemoryPartitionStore(self.backend, self.namespace, scope)

    def _fence(self, partition: int, expected_offset: int | None) -> _Partition:
        stored = self._partition(partition)
        current = stored.meta.get("offset", "")
        if current != ("" if expected_offset is None else str(expected_offset)):
            raise Fenced(partition, current)
        return stored

    @staticmethod
    def _write(stored: _Partition, writes: StateWrites | None) -> None:
        if writes is not None:
            _update(stored.records, writes.records, writes.record_deletes)
            _update(stored.aggregates, writes.aggregates, writes.aggregate_deletes)

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
        self.backend.calls.append(("apply_batch", self.namespace, partition))
        stored = self._fence(partition, expected_offset)
        expected = None if meta is None else meta.expect_pending
        if expected is not None and stored.meta.get(PENDING, "") != expected:
            raise Fenced(partition, stored.meta.get("offset", ""))
        self._write(stored, writes)
        if ids.newest is not None:
            stored.id_batches.append((ids.newest, ids.packed))
        for name, n in (counts or {}).items():
            if n:
                stored.meta[name] = str(int(stored.meta.get(name, "0")) + n)
        stored.meta["offset"] = str(new_offset)
        stored.meta["format"] = "2"
        newest = [int(stored.meta["max_ts"])] if "max_ts" in stored.meta else []
        if max_ts is not None:
            newest.append(max_ts)
        if newest:
            stored.meta["max_ts"] = str(max(newest))
        if meta is not None:
            stored.meta.update(meta.set)
            for name in meta.delete:
                stored.meta.pop(name, None)

    async def write_state(self, partition: int, offset: int | None, writes: StateWrites) -> None:
        if writes.changes:
            self._write(self._fence(partition, offset), writes)

    async def migrate(self, partition: int, stored: StoredPartition, writes: StateWrites) -> None:
        raise AssertionError("the store in memory never holds the first format")

    async def update_meta(
        self, partition: int, update: MetaUpdate, drop_metrics: Iterable[str] = ()
    ) -> None:
        stored = self._partition(partition)
        for metric in set(drop_metrics):
            metric_id = stored.meta.pop(METRIC_ID_PREFIX + metric, None)
            stored.meta.pop(DEFINITION_PREFIX + metric, None)
            if metric_id is not None:
                prefix = varint(int(metric_id))
                for key in [k for k in stored.aggregates if k.startswith(prefix)]:
                    del stored.aggregates[key]
        for name in update.delete:
            stored.meta.pop(name, None)
        stored.meta.update(update.set)

    async def clear(self, partition: int) -> int:
        stored = self.backend.data.pop(self._key(partition), _Partition())
        parts = (stored.meta, stored.records, stored.aggregates, stored.id_batches, stored.summary)
        return sum(1 for part in parts if part)

    async def still_holds(
        self,
        partition: int,
        offset: int | None,
        fingerprints: Mapping[str, str],
        marks: Mapping[str, str | None] | None = None,
    ) -> bool:
        meta = self._partition(partition).meta
        if meta.get("offset") != (None if offset is None else str(offset)):
            return False
        if marks is not None and any(meta.get(k) != v for k, v in marks.items()):
            return False
        return all(
            meta.get(f"{DEFINITION_PREFIX}{name}") == value for name, value in fingerprints.items()
        )

    async def counts(self, partitions: Iterable[int]) -> dict[str, int]:
        total: dict[str, int] = {}
        for partition in partitions:
            for name, value in self._partition(partition).meta.items():
                if name in COUNT_FIELDS or name.startswith(INVALID_PREFIX):
                    total[name] = total.get(name, 0) + int(value)
        return total

    async def stored_offset(self, partition: int) -> int | None:
        raw = self._partition(partition).meta.get("offset")
        return None if raw is None else int(raw)

    async def load(self, partition: int) -> StoredPartition:
        self.backend.calls.append(("load", self.namespace, partition))
        stored = self._partition(partition)
        loaded = stored_from_meta(stored.meta)
        loaded.records = list(stored.records.items())
        loaded.aggregates = list(stored.aggregates.items())
        loaded.ids = [packed for _, packed in stored.id_batches]
        return loaded

    async def expire(self, partition: int, forget_ids_until_ms: int) -> None:
        stored = self._partition(partition)
        # A batch's ids go once all of them may, as in Redis.
        stored.id_batches = [b for b in stored.id_batches if b[0] > forget_ids_until_ms]

    async def write_summary(self, partition: int, payload: bytes) -> None:
        self._partition(partition).summary = payload

    async def read_summaries(self, partitions: Iterable[int]) -> dict[int, bytes]:
        found = {p: self._partition(p).summary for p in partitions}
        return {p: s for p, s in found.items() if s is not None}

    async def max_event_times(self, partitions: Iterable[int]) -> dict[int, int]:
        found = {p: self._partition(p).meta.get("max_ts") for p in partitions}
        return {p: int(t) for p, t in found.items() if t is not None}


class MemoryStateStore:
    def __init__(self) -> None:
        self.data: dict[tuple[str, int], _Partition] = {}
        self.pointers: dict[str, str] = {}
        self.calls: list[tuple[str, str, int]] = []
        self.closed = False
        self._snapshots: dict[tuple[str, int], _Partition] = {}

    def partitions(self, namespace: str) -> MemoryPartitionStore:
        return MemoryPartitionStore(self, namespace)

    async def resolve_namespace(self, logical: str) -> str:
        return self.pointers.get(logical, logical)

    async def aclose(self) -> None:
        self.closed = True

    def snapshot(self, namespace: str, partition: int) -> None:
        """Remember the partition as it is now (what a replica has received)."""
        key = (namespace, partition)
        self._snapshots[key] = copy.deepcopy(self.data.get(key, _Partition()))

    def lose_writes_after_snapshot(self, namespace: str, partition: int) -> None:
        """A failover to a replica that had only the snapshot: later writes are gone."""
        key = (namespace, partition)
        self.data[key] = self._snapshots.pop(key)
