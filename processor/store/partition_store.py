"""One Kafka partition's state in Redis, written in one atomic, fenced step per batch.

Keys (every key starts with `nsm:<namespace>:`, CONTRACT §4; `{<namespace>.p<N>}` is a Redis
Cluster hash tag, so all keys of one partition live in one slot and the atomic step works there):

    nsm:<ns>:{<ns>.pN}:meta                 hash: offset (last applied), max_ts, def:<metric>,
                                            and the counts of what the batches held: applied,
                                            duplicates, invalid:<reason>
    nsm:<ns>:{<ns>.pN}:m:<metric>:<bucket>  hash: one bucket of one metric (see codec.py)
    nsm:<ns>:{<ns>.pN}:expiry               zset: "<metric>:<bucket>" scored by the time (ms)
                                            the bucket leaves its window
    nsm:<ns>:{<ns>.pN}:ids                  zset: the event ids of each batch, as one member
                                            "<offset>:<msgpack [id, horizon, ...]>" scored by the
                                            batch's newest horizon (ms); a repeat of an id
                                            timestamped before its horizon is a duplicate
    nsm:<ns>:{<ns>.pN}:seen                 zset: event ids scored by their horizon, one member
                                            per id (written by earlier versions; read, trimmed)
    nsm:<ns>:{<ns>.pN}:summary              string: the partition's window summary (export)
    nsm:<ns>:{<ns>.pN}:r.<group>:...        the same keys for a rebuild of some metrics from the
                                            topic (processor/worker/backfill.py), beside the
                                            partition's own state until it is handed over

The meta hash also holds the worker's readiness marks (processor/worker/rebuild.py): `pending`,
`covered`, `ready_at`, `horizon`, `shadows`, `dlq_until`. The store reads and writes them as
plain fields (`StoredPartition.marks`); what they mean lives with the worker.

Crash safety: the batch's state changes, its event ids and the partition's last applied offset
change in one Lua script, which first checks that the stored offset is the one this worker loaded
or last wrote. After a SIGKILL the restarted worker loads the state with its offset and skips what
was already applied; a worker that lost the partition in a rebalance is fenced off by the check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import msgpack
from redis.typing import EncodableT

from processor.store.client import RedisClient, text
from processor.store.namespaces import resolve_namespace
from processor.store.payloads import NewIds, PackedWrites
from processor.store.protocol import (
    APPLIED,
    COUNT_FIELDS,
    DEFINITION_PREFIX,
    DUPLICATES,
    INVALID_PREFIX,
    PENDING,
    Fenced,
    MetaUpdate,
    StoredPartition,
    stored_marks,
)

__all__ = [
    "APPLIED",
    "DUPLICATES",
    "INVALID_PREFIX",
    "PENDING",
    "Fenced",
    "MetaUpdate",
    "PartitionKeys",
    "RedisPartitionStore",
    "RedisStateStore",
    "StoredPartition",
]

# ARGV: expected offset, new offset, max event time, then three msgpack arrays (Redis's Lua has
# cmsgpack): the writes, `[[expires_at, member, [field, value, ...]], ...]` with KEYS[3 + k] the
# hash of the k-th, the ids, `[id, horizon, ...]` (stored whole, not read by the script), and the
# counts to add to the meta hash, `[field, n, ...]` (with the state they describe, so they survive
# any crash exactly); then the ids' newest horizon ("" when there are none). The ids go in as one
# member per batch: a member per id cost Redis 1.9 s of CPU and 128 MB per million events.
# Packed arguments instead of one argument per field: the client packs each argument in Python,
# which cost more than the engine's own work per batch; the writes and ids come packed
# (payloads.py), by the native core for its metrics. HSET and ZADD take at most 1000 arguments
# per call (Lua's stack). Optional, after those: "=<value>" to also require the meta field
# `pending` to hold that value (absent counts as ""), so that a worker whose view of the
# partition's rebuilds is stale is fenced off too ("" checks nothing); then the meta fields to set
# and to delete with the step, msgpack `[field, value, ...]` and `[field, ...]`.
APPLY_BATCH = """
local current = redis.call('HGET', KEYS[1], 'offset')
if current == false then current = '' end
if current ~= ARGV[1] then return {0, current} end
if ARGV[8] ~= nil and ARGV[8] ~= '' then
  local pending = redis.call('HGET', KEYS[1], 'pending')
  if pending == false then pending = '' end
  if '=' .. pending ~= ARGV[8] then return {0, current} end
end
local writes = cmsgpack.unpack(ARGV[4])
for k = 1, #writes do
  local write = writes[k]
  redis.call('ZADD', KEYS[2], write[1], write[2])
  local fields = write[3]
  for s = 1, #fields, 1000 do
    redis.call('HSET', KEYS[k + 3], unpack(fields, s, math.min(s + 999, #fields)))
  end
end
if ARGV[7] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[7], ARGV[2] .. ':' .. ARGV[5])
end
local counts = cmsgpack.unpack(ARGV[6])
for s = 1, #counts, 2 do
  redis.call('HINCRBY', KEYS[1], counts[s], counts[s + 1])
end
-- The newest event time only grows. Compared as text: Lua's numbers are doubles, which round
-- times beyond 2^53 and write those beyond 14 digits in exponent form.
local function later(a, b)
  local a_negative, b_negative = a:sub(1, 1) == '-', b:sub(1, 1) == '-'
  if a_negative ~= b_negative then return b_negative end
  if a_negative then a, b = b:sub(2), a:sub(2) end
  if #a ~= #b then return #a > #b end
  return a > b
end
local newest = ARGV[3]  -- '': the batch held no valid event
local stored = redis.call('HGET', KEYS[1], 'max_ts')
if stored ~= false and (newest == '' or later(stored, newest)) then newest = stored end
redis.call('HSET', KEYS[1], 'offset', ARGV[2])
if newest ~= '' then redis.call('HSET', KEYS[1], 'max_ts', newest) end
if ARGV[9] ~= nil then
  local set = cmsgpack.unpack(ARGV[9])
  if #set > 0 then redis.call('HSET', KEYS[1], unpack(set)) end
  local gone = cmsgpack.unpack(ARGV[10])
  if #gone > 0 then redis.call('HDEL', KEYS[1], unpack(gone)) end
end
return {1, ARGV[2]}
"""


@dataclass(frozen=True)
class PartitionKeys:
    namespace: str
    partition: int
    scope: str = ""  # a rebuild's keys beside the partition's own ("r.<group>")

    @property
    def prefix(self) -> str:
        scoped = f"{self.scope}:" if self.scope else ""
        return f"nsm:{self.namespace}:{{{self.namespace}.p{self.partition}}}:{scoped}"

    @property
    def meta(self) -> str:
        return self.prefix + "meta"

    @property
    def expiry(self) -> str:
        return self.prefix + "expiry"

    @property
    def ids(self) -> str:
        return self.prefix + "ids"

    @property
    def seen(self) -> str:
        """The per-id set of earlier versions."""
        return self.prefix + "seen"

    @property
    def summary(self) -> str:
        return self.prefix + "summary"

    def bucket(self, member: str) -> str:
        """The hash of `member` = "<metric>:<bucket>"."""
        return self.prefix + "m:" + member


class RedisStateStore:
    """The `StateStore` on Redis, one server or a cluster (store/client.py makes the client)."""

    def __init__(self, client: RedisClient) -> None:
        self.client = client

    def partitions(self, namespace: str) -> RedisPartitionStore:
        return RedisPartitionStore(self.client, namespace)

    async def resolve_namespace(self, logical: str) -> str:
        return await resolve_namespace(self.client, logical)

    async def aclose(self) -> None:
        await self.client.aclose()


class RedisPartitionStore:
    """Reads and writes one namespace's partitions (the `PartitionStore` on Redis), or with
    `scope` one rebuild's keys beside them. Thin: no metric logic lives here. On a cluster, every
    call touches one partition's slot, or reads several partitions' keys through a pipeline that
    redis-py splits by node."""

    def __init__(self, client: RedisClient, namespace: str, scope: str = "") -> None:
        self.client = client
        self.namespace = namespace
        self.scope = scope
        # redis-py's Script runs EVALSHA and loads the script where Redis answers NOSCRIPT: a
        # replica promoted in a failover has no script cache of its own.
        self._apply = client.register_script(APPLY_BATCH)

    def keys(self, partition: int) -> PartitionKeys:
        return PartitionKeys(self.namespace, partition, self.scope)

    def scoped(self, scope: str) -> RedisPartitionStore:
        """The store of a rebuild's keys beside this namespace's partitions."""
        return RedisPartitionStore(self.client, self.namespace, scope)

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
        """One round trip: every write, the ids, the counts (`applied`, `duplicates`,
        `invalid:<reason>`), the meta update and the new offset, or nothing (Fenced). The stored
        newest event time only grows, exactly at any size; `max_ts` None (no valid event in the
        batch) leaves it as it is."""
        keys = self.keys(partition)
        args = [
            "" if expected_offset is None else str(expected_offset),
            str(new_offset),
            "" if max_ts is None else str(max_ts),
            writes.as_array(),
            ids.packed,
            msgpack.packb(
                [x for item in (counts or {}).items() if item[1] for x in item], use_bin_type=False
            ),
            "" if ids.newest is None else str(ids.newest),
        ]
        if meta is not None:
            args += [
                "" if meta.expect_pending is None else "=" + meta.expect_pending,
                msgpack.packb([x for item in meta.set.items() for x in item], use_bin_type=False),
                msgpack.packb(list(meta.delete), use_bin_type=False),
            ]
        result = await self._apply(
            keys=[keys.meta, keys.expiry, keys.ids, *map(keys.bucket, writes.members)],
            args=args,
        )
        if int(result[0]) != 1:
            stored = result[1].decode() if isinstance(result[1], bytes) else str(result[1])
            raise Fenced(partition, stored)

    async def update_meta(
        self, partition: int, update: MetaUpdate, drop_metrics: Iterable[str] = ()
    ) -> None:
        """In one transaction: forget the stored buckets of `drop_metrics` and their `def:`
        fields, then set and delete the meta fields of `update` (its `expect_pending` unused)."""
        keys = self.keys(partition)
        dropped = set(drop_metrics)
        members = []
        if dropped:
            members = [
                m for m in map(text, await self.client.zrange(keys.expiry, 0, -1))
                if m.rpartition(":")[0] in dropped
            ]  # fmt: skip
        async with self.client.pipeline(transaction=True) as pipe:
            for member in members:
                pipe.delete(keys.bucket(member))
            if members:
                pipe.zrem(keys.expiry, *members)
            gone = [DEFINITION_PREFIX + m for m in sorted(dropped)] + list(update.delete)
            if gone:
                pipe.hdel(keys.meta, *gone)
            if update.set:
                mapping: dict[EncodableT, EncodableT] = {k: v for k, v in update.set.items()}
                pipe.hset(keys.meta, mapping=mapping)
            await pipe.execute()

    async def clear(self, partition: int) -> int:
        """Delete everything stored for the partition (in this store's scope): its buckets,
        ids, meta and summary. Returns how many keys went."""
        keys = self.keys(partition)
        members = [text(m) for m in await self.client.zrange(keys.expiry, 0, -1)]
        doomed = [keys.meta, keys.expiry, keys.ids, keys.seen, keys.summary]
        doomed += [keys.bucket(m) for m in members]
        deleted = 0
        for start in range(0, len(doomed), 500):
            # One slot (the partition's hash tag): one call, also on a cluster.
            deleted += await self.client.delete(*doomed[start : start + 500])
        return int(deleted)

    async def still_holds(
        self,
        partition: int,
        offset: int | None,
        fingerprints: Mapping[str, str],
        marks: Mapping[str, str | None] | None = None,
    ) -> bool:
        """Whether the stored partition is at `offset` with these definitions (and these marks,
        None for one that must be absent): nobody wrote it since a worker whose mirror is at
        that offset last did."""
        meta = {
            text(k): text(v)
            for k, v in (await self.client.hgetall(self.keys(partition).meta)).items()
        }
        if meta.get("offset") != (None if offset is None else str(offset)):
            return False
        if marks is not None and any(meta.get(k) != v for k, v in marks.items()):
            return False
        return all(meta.get(f"def:{name}") == value for name, value in fingerprints.items())

    async def counts(self, partitions: Iterable[int]) -> dict[str, int]:
        """The counts of every batch stored in these partitions, added up."""
        partitions = list(partitions)
        async with self.client.pipeline(transaction=False) as pipe:
            for partition in partitions:
                pipe.hgetall(self.keys(partition).meta)
            metas = await pipe.execute()
        total: dict[str, int] = {}
        for meta in metas:
            for raw_name, raw_value in meta.items():
                name = raw_name.decode()
                if name in COUNT_FIELDS or name.startswith(INVALID_PREFIX):
                    total[name] = total.get(name, 0) + int(raw_value)
        return total

    async def stored_offset(self, partition: int) -> int | None:
        """The last applied offset, or None before the first batch."""
        raw = await self.client.hget(self.keys(partition).meta, "offset")
        return None if raw is None else int(raw)

    async def load(self, partition: int) -> StoredPartition:
        keys = self.keys(partition)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hgetall(keys.meta)
            pipe.zrange(keys.expiry, 0, -1)
            pipe.zrange(keys.seen, 0, -1, withscores=True)
            pipe.zrange(keys.ids, 0, -1)
            meta, members, seen, batches = await pipe.execute()
        meta = {k.decode(): v.decode() for k, v in meta.items()}
        stored = StoredPartition(
            offset=int(meta["offset"]) if "offset" in meta else None,
            max_ts=int(meta["max_ts"]) if "max_ts" in meta else None,
            definitions={k[4:]: v for k, v in meta.items() if k.startswith(DEFINITION_PREFIX)},
            seen={event_id.decode(): int(score) for event_id, score in seen},
            marks=stored_marks(meta),
        )
        for batch in batches:
            ids = msgpack.unpackb(batch.partition(b":")[2], raw=False)
            for event_id, horizon in zip(ids[::2], ids[1::2], strict=True):
                if horizon > stored.seen.get(event_id, horizon - 1):
                    stored.seen[event_id] = horizon
        names = [m.decode() for m in members]
        async with self.client.pipeline(transaction=False) as pipe:
            for member in names:
                pipe.hgetall(keys.bucket(member))
            contents = await pipe.execute()
        for member, fields in zip(names, contents, strict=True):
            metric, _, bucket = member.rpartition(":")
            stored.buckets[(metric, int(bucket))] = fields
        return stored

    async def expire(self, partition: int, now_ms: int, forget_ids_until_ms: int) -> int:
        """Delete the buckets whose time has passed and the event ids whose horizon is at or
        before `forget_ids_until_ms`; returns how many buckets were deleted."""
        keys = self.keys(partition)
        members = [text(m) for m in await self.client.zrangebyscore(keys.expiry, "-inf", now_ms)]
        async with self.client.pipeline(transaction=True) as pipe:
            for member in members:
                pipe.delete(keys.bucket(member))
            if members:
                pipe.zrem(keys.expiry, *members)
            # A batch's ids go once all of them may (some are kept a little longer: harmless,
            # a repeat of one would be late for every metric anyway).
            pipe.zremrangebyscore(keys.ids, "-inf", forget_ids_until_ms)
            pipe.zremrangebyscore(keys.seen, "-inf", forget_ids_until_ms)
            await pipe.execute()
        return len(members)

    async def write_summary(self, partition: int, payload: bytes) -> None:
        await self.client.set(self.keys(partition).summary, payload)

    async def read_summaries(self, partitions: Iterable[int]) -> dict[int, bytes]:
        partitions = list(partitions)
        async with self.client.pipeline(transaction=False) as pipe:
            for partition in partitions:
                pipe.get(self.keys(partition).summary)
            values = await pipe.execute()
        return {p: v for p, v in zip(partitions, values, strict=True) if v is not None}

    async def max_event_times(self, partitions: Iterable[int]) -> dict[int, int]:
        partitions = list(partitions)
        async with self.client.pipeline(transaction=False) as pipe:
            for partition in partitions:
                pipe.hget(self.keys(partition).meta, "max_ts")
            values = await pipe.execute()
        return {p: int(v) for p, v in zip(partitions, values, strict=True) if v is not None}
