"""The state store in memory: what the Redis store does (store/partition_store.py), in dicts.

For unit tests of the worker's runtime, and a second implementation of the store protocol
(store/protocol.py) that the contract tests hold to the same behaviour as Redis
(tests/integration/test_store_contract.py). `lose_writes_after` plays a Redis failover that lost
the last acknowledged writes: the partition goes back to an earlier snapshot.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from processor.store.payloads import NewIds, PackedWrites
from processor.store.protocol import (
    COUNT_FIELDS,
    DEFINITION_PREFIX,
    INVALID_PREFIX,
    PENDING,
    Fenced,
    MetaUpdate,
    StoredPartition,
    stored_marks,
)


@dataclass
class _Partition:
    meta: dict[str, str] = field(default_factory=dict)
    buckets: dict[tuple[str, int], dict[bytes, bytes]] = field(default_factory=dict)
    expiry: dict[tuple[str, int], int] = field(default_factory=dict)
    # Each batch's ids with their horizons, and its newest horizon (as the Redis ids zset).
    id_batches: list[tuple[int, list[tuple[str, int]]]] = field(default_factory=list)
    summary: bytes | None = None


class MemoryPartitionStore:
    def __init__(self, backend: MemoryStateStore, namespace: str, scope: str = "") -> None:
        self.backend = backend
        self.namespace = namespace
        self.scope = scope

    def _partition(self, partition: int) -> _Partition:
        key = (f"{self.namespace}/{self.scope}" if self.scope else self.namespace, partition)
        return self.backend.data.setdefault(key, _Partition())

    def scoped(self, scope: str) -> MemoryPartitionStore:
        return MemoryPartitionStore(self.backend, self.namespace, scope)

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
        self.backend.calls.append(("apply_batch", self.namespace, partition))
        stored = self._partition(partition)
        current = stored.meta.get("offset", "")
        if current != ("" if expected_offset is None else str(expected_offset)):
            raise Fenced(partition, current)
        expected = None if meta is None else meta.expect_pending
        if expected is not None and stored.meta.get(PENDING, "") != expected:
            raise Fenced(partition, current)
        for write in writes.unpack():
            key = (write.metric, write.bucket)
            stored.buckets.setdefault(key, {}).update(write.fields)
            stored.expiry[key] = write.expires_at_ms
        if ids.newest is not None:
            stored.id_batches.append((ids.newest, ids.unpack()))
        for name, n in (counts or {}).items():
            if n:
                stored.meta[name] = str(int(stored.meta.get(name, "0")) + n)
        stored.meta["offset"] = str(new_offset)
        newest = [int(stored.meta["max_ts"])] if "max_ts" in stored.meta else []
        if max_ts is not None:
            newest.append(max_ts)
        if newest:
            stored.meta["max_ts"] = str(max(newest))
        if meta is not None:
            stored.meta.update(meta.set)
            for name in meta.delete:
                stored.meta.pop(name, None)

    async def update_meta(
        self, partition: int, update: MetaUpdate, drop_metrics: Iterable[str] = ()
    ) -> None:
        stored = self._partition(partition)
        dropped = set(drop_metrics)
        for key in [k for k in stored.expiry if k[0] in dropped]:
            del stored.expiry[key]
            stored.buckets.pop(key, None)
        for name in [*(DEFINITION_PREFIX + m for m in dropped), *update.delete]:
            stored.meta.pop(name, None)
        stored.meta.update(update.set)

    async def clear(self, partition: int) -> int:
        stored = self._partition(partition)
        keys = len(stored.buckets) + bool(stored.meta) + bool(stored.summary)
        self.backend.data.pop(
            (f"{self.namespace}/{self.scope}" if self.scope else self.namespace, partition), None
        )
        return keys

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
        return all(meta.get(f"def:{name}") == value for name, value in fingerprints.items())

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
        meta = stored.meta
        seen: dict[str, int] = {}
        for _, pairs in stored.id_batches:
            for event_id, horizon in pairs:
                seen[event_id] = max(horizon, seen.get(event_id, horizon))
        return StoredPartition(
            offset=int(meta["offset"]) if "offset" in meta else None,
            max_ts=int(meta["max_ts"]) if "max_ts" in meta else None,
            definitions={k[4:]: v for k, v in meta.items() if k.startswith(DEFINITION_PREFIX)},
            buckets=copy.deepcopy(stored.buckets),
            seen=seen,
            marks=stored_marks(meta),
        )

    async def expire(self, partition: int, now_ms: int, forget_ids_until_ms: int) -> int:
        stored = self._partition(partition)
        gone = [key for key, at in stored.expiry.items() if at <= now_ms]
        for key in gone:
            del stored.expiry[key]
            stored.buckets.pop(key, None)
        # A batch's ids go once all of them may, as in Redis.
        stored.id_batches = [b for b in stored.id_batches if b[0] > forget_ids_until_ms]
        return len(gone)

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
