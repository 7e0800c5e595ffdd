"""One Kafka partition's state in Redis, written in one atomic, fenced step per batch.

Keys of format 2 (docs/state.md; every key starts with `nsm:<namespace>:`, CONTRACT §4;
`{<namespace>.p<N>}` is a Redis Cluster hash tag, so all keys of one partition live in one slot
and the atomic step works there):

    nsm:<ns>:{<ns>.pN}:meta      hash: offset (last applied), max_ts, format (2), def:<metric>
                                 (the definition version its state was built with), mid:<metric>
                                 (the id its state is filed under), next_mid, and the counts of
                                 what the batches held: applied, duplicates, invalid:<reason>
    nsm:<ns>:{<ns>.pN}:e         hash: one record per entity for all its metrics (the engine's
                                 native/engine/src/state.rs)
    nsm:<ns>:{<ns>.pN}:a         hash: the aggregates' items (a bucket of a count or sum, a value
                                 of a distinct)
    nsm:<ns>:{<ns>.pN}:ids       zset: the event ids of each batch as one member
                                 "<offset>:<128-bit hashes grouped by horizon>" scored by the
                                 batch's newest horizon (ms)
    nsm:<ns>:{<ns>.pN}:summary   string: the partition's window summary (export)
    nsm:<ns>:{<ns>.pN}:r.<group>:...  the same keys for a rebuild of some metrics from the topic
                                 (processor/worker/backfill.py), beside the partition's own state
                                 until it is handed over

The meta hash also holds the worker's readiness marks (processor/worker/rebuild.py): `pending`,
`covered`, `ready_at`, `horizon`, `shadows`, `dlq_until`. The store reads and writes them as
plain fields (`StoredPartition.marks`); what they mean lives with the worker.

State written by earlier versions (the first format: no `format` in meta; `m:<metric>:<bucket>`
hashes listed in an `expiry` zset, `ids` members holding msgpack, a per-id `seen` zset) is read
and migrated to format 2 in one atomic step when a partition is loaded (`migrate`); a format this
version does not know is refused, never misread.

Crash safety: the batch's state changes, its event ids and the partition's last applied offset
change in one Lua script, which first checks that the stored offset is the one this worker loaded
or last wrote. After a SIGKILL the restarted worker loads the state with its offset and skips what
was already applied; a worker that lost the partition in a rebalance is fenced off by the check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import msgpack
import nsm_native
from nsm_native import StateWrites
from redis.typing import EncodableT

from processor.store.client import RedisClient, text
from processor.store.namespaces import resolve_namespace
from processor.store.payloads import NewIds
from processor.store.protocol import (
    APPLIED,
    COUNT_FIELDS,
    DEFINITION_PREFIX,
    DUPLICATES,
    INVALID_PREFIX,
    METRIC_ID_PREFIX,
    PENDING,
    Fenced,
    LegacyBatch,
    LegacyState,
    MetaUpdate,
    StoredPartition,
    UnknownFormat,
    stored_from_meta,
)

__all__ = [
    "APPLIED",
    "DUPLICATES",
    "FORMAT",
    "INVALID_PREFIX",
    "PENDING",
    "Fenced",
    "MetaUpdate",
    "PartitionKeys",
    "RedisPartitionStore",
    "RedisStateStore",
    "StoredPartition",
    "UnknownFormat",
]

FORMAT = "2"

# ARGV: expected offset, new offset ("" keeps the offset: expiry), max event time, then msgpack
# arrays (Redis's Lua has cmsgpack): records to set `[field, value, ...]` and to delete
# `[field, ...]`, aggregate items to set and to delete, then the batch's ids (stored whole, not
# read by the script), the counts to add to the meta hash `[field, n, ...]` (with the state they
# describe, so they survive any crash exactly), and the ids' newest horizon ("" for none). The
# ids go in as one member per batch: a member per id cost Redis 1.9 s of CPU and 128 MB per
# million events. HSET, HDEL and ZADD take at most 1000 arguments per call (Lua's stack). Then
# "=<value>" to also require the meta field `pending` to hold that value (absent counts as ""), so
# that a worker whose view of the partition's rebuilds is stale is fenced off too ("" checks
# nothing), and the meta fields to set and to delete with the step, msgpack `[field, value, ...]`
# and `[field, ...]`.
APPLY_BATCH = """
local current = redis.call('HGET', KEYS[1], 'offset')
if current == false then current = '' end
if current ~= ARGV[1] then return {0, current} end
if ARGV[11] ~= '' then
  local pending = redis.call('HGET', KEYS[1], 'pending')
  if pending == false then pending = '' end
  if '=' .. pending ~= ARGV[11] then return {0, current} end
end
local function each(packed, command, key)
  local items = cmsgpack.unpack(packed)
  for s = 1, #items, 1000 do
    redis.call(command, key, unpack(items, s, math.min(s + 999, #items)))
  end
end
each(ARGV[4], 'HSET', KEYS[3])
each(ARGV[5], 'HDEL', KEYS[3])
each(ARGV[6], 'HSET', KEYS[4])
each(ARGV[7], 'HDEL', KEYS[4])
if ARGV[10] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[10], ARGV[2] .. ':' .. ARGV[8])
end
local counts = cmsgpack.unpack(ARGV[9])
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
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'offset', ARGV[2], 'format', '2') end
if newest ~= '' then redis.call('HSET', KEYS[1], 'max_ts', newest) end
each(ARGV[12], 'HSET', KEYS[1])
each(ARGV[13], 'HDEL', KEYS[1])
return {1, current}
"""

# The first format migrated to format 2, fenced like a batch (and refused once migrated): KEYS
# meta, ids, e, a, the old expiry and seen zsets, then every old bucket hash; ARGV: the expected
# offset, the records and aggregate items (msgpack `[field, value, ...]`), the old ids members to
# remove (`[member, ...]`) and the new ones to add (`[score, member, ...]`).
MIGRATE = """
local current = redis.call('HGET', KEYS[1], 'offset')
if current == false then current = '' end
if current ~= ARGV[1] or redis.call('HEXISTS', KEYS[1], 'format') == 1 then
  return {0, current}
end
local function each(packed, command, key)
  local items = cmsgpack.unpack(packed)
  for s = 1, #items, 1000 do
    redis.call(command, key, unpack(items, s, math.min(s + 999, #items)))
  end
end
for k = 5, #KEYS do redis.call('DEL', KEYS[k]) end
each(ARGV[4], 'ZREM', KEYS[2])
each(ARGV[5], 'ZADD', KEYS[2])
each(ARGV[2], 'HSET', KEYS[3])
each(ARGV[3], 'HSET', KEYS[4])
redis.call('HSET', KEYS[1], 'format', '2')
return {1, current}
"""


LEGACY_TRAITS_BUCKET = -(2**63)


def _packb(value: object) -> bytes:
    # Fields and values go as msgpack strings (no bin type), which Lua reads as byte strings.
    return msgpack.packb(value, use_bin_type=False)


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
    def records(self) -> str:
        return self.prefix + "e"

    @property
    def aggregates(self) -> str:
        return self.prefix + "a"

    @property
    def ids(self) -> str:
        return self.prefix + "ids"

    @property
    def summary(self) -> str:
        return self.prefix + "summary"

    # The first format's keys (read to migrate them).

    @property
    def expiry(self) -> str:
        return self.prefix + "expiry"

    @property
    def seen(self) -> str:
        return self.prefix + "seen"

    def bucket(self, member: str) -> str:
        """The first format's hash of `member` = "<metric>:<bucket>"."""
        return self.prefix + "m:" + member


def _unless_fenced(partition: int, result: list[object]) -> None:
    """A step's answer: `{1, ...}` applied, `{0, stored offset}` fenced off."""
    if int(str(result[0])) != 1:
        stored = result[1].decode() if isinstance(result[1], bytes) else str(result[1])
        raise Fenced(partition, stored)


def _members_of(packed_ids: bytes) -> tuple[int, bytes]:
    offset, _, payload = packed_ids.partition(b":")
    return int(offset), payload


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
        self._migrate = client.register_script(MIGRATE)

    def keys(self, partition: int) -> PartitionKeys:
        return PartitionKeys(self.namespace, partition, self.scope)

    def scoped(self, scope: str) -> RedisPartitionStore:
        """The store of a rebuild's keys beside this namespace's partitions."""
        return RedisPartitionStore(self.client, self.namespace, scope)

    async def _step(
        self,
        partition: int,
        expected_offset: int | None,
        new_offset: int | None,
        max_ts: int | None,
        writes: StateWrites | None,
        ids: NewIds,
        counts: Mapping[str, int] | None,
        meta: MetaUpdate | None = None,
    ) -> None:
        keys = self.keys(partition)
        empty = _packb([])
        args: list[bytes | str] = [
            "" if expected_offset is None else str(expected_offset),
            "" if new_offset is None else str(new_offset),
            "" if max_ts is None else str(max_ts),
            empty if writes is None else writes.records,
            empty if writes is None else writes.record_deletes,
            empty if writes is None else writes.aggregates,
            empty if writes is None else writes.aggregate_deletes,
            ids.packed,
            _packb([x for item in (counts or {}).items() if item[1] for x in item]),
            "" if ids.newest is None else str(ids.newest),
            "" if meta is None or meta.expect_pending is None else "=" + meta.expect_pending,
            _packb([x for item in meta.set.items() for x in item] if meta else []),
            _packb(list(meta.delete) if meta else []),
        ]
        result = await self._apply(
            keys=[keys.meta, keys.ids, keys.records, keys.aggregates], args=args
        )
        _unless_fenced(partition, result)

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
        """One round trip: every write, the ids, the counts (`applied`, `duplicates`,
        `invalid:<reason>`), the meta update and the new offset, or nothing (Fenced). The stored
        newest event time only grows; `max_ts` None (no valid event in the batch) leaves it as
        it is."""
        await self._step(partition, expected_offset, new_offset, max_ts, writes, ids, counts, meta)

    async def write_state(self, partition: int, offset: int | None, writes: StateWrites) -> None:
        """State changes without a batch (expiry, the end of a replay), fenced like a batch:
        only while the stored offset is `offset`."""
        if writes.changes:
            await self._step(partition, offset, None, None, writes, NewIds(), None)

    async def migrate(self, partition: int, stored: StoredPartition, writes: StateWrites) -> None:
        """Replace the first format's keys with format 2 (`writes`: the whole state, as the
        engine loaded it), atomically and fenced by the stored offset. Each batch of ids is
        repacked under its own member and score; the per-id `seen` set becomes one member."""
        assert stored.legacy is not None
        keys = self.keys(partition)
        legacy = stored.legacy
        added: list[object] = []
        for batch in legacy.batches:
            offset, _ = _members_of(batch.member)
            added += [batch.score, f"{offset}:".encode() + nsm_native.pack_ids(batch.ids)]
        if legacy.seen:
            newest = max(horizon for _, horizon in legacy.seen)
            added += [newest, b"-1:" + nsm_native.pack_ids(legacy.seen)]
        args: list[bytes | str] = [
            "" if stored.offset is None else str(stored.offset),
            writes.records,
            writes.aggregates,
            _packb([batch.member for batch in legacy.batches]),
            _packb(added),
        ]
        result = await self._migrate(
            keys=[keys.meta, keys.ids, keys.records, keys.aggregates, keys.expiry, keys.seen,
                  *legacy.bucket_keys],
            args=args,
        )  # fmt: skip
        _unless_fenced(partition, result)

    async def update_meta(
        self, partition: int, update: MetaUpdate, drop_metrics: Iterable[str] = ()
    ) -> None:
        """In one transaction: forget the aggregate items, `def:` and `mid:` fields of
        `drop_metrics` (parts of records under their ids are left out when read, and go when the
        record is next written), then set and delete the meta fields of `update` (its
        `expect_pending` unused)."""
        keys = self.keys(partition)
        dropped = sorted(set(drop_metrics))
        gone_items: list[bytes] = []
        if dropped:
            ids = await self.client.hmget(keys.meta, [METRIC_ID_PREFIX + m for m in dropped])
            prefixes = tuple(varint(int(i)) for i in ids if i is not None)
            if prefixes:
                fields = await self.client.hkeys(keys.aggregates)
                gone_items = [f for f in fields if isinstance(f, bytes) and f.startswith(prefixes)]
        async with self.client.pipeline(transaction=True) as pipe:
            for start in range(0, len(gone_items), 1000):
                pipe.hdel(keys.aggregates, *gone_items[start : start + 1000])
            gone = [p + m for m in dropped for p in (DEFINITION_PREFIX, METRIC_ID_PREFIX)]
            gone += list(update.delete)
            if gone:
                pipe.hdel(keys.meta, *gone)
            if update.set:
                mapping: dict[EncodableT, EncodableT] = dict(update.set.items())
                pipe.hset(keys.meta, mapping=mapping)
            await pipe.execute()

    async def clear(self, partition: int) -> int:
        """Delete everything stored for the partition (in this store's scope): its records,
        items, ids, meta and summary, and what the first format kept. Returns how many keys
        went."""
        keys = self.keys(partition)
        members = [text(m) for m in await self.client.zrange(keys.expiry, 0, -1)]
        doomed = [keys.meta, keys.records, keys.aggregates, keys.ids, keys.summary,
                  keys.expiry, keys.seen, *map(keys.bucket, members)]  # fmt: skip
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
        return all(meta.get(DEFINITION_PREFIX + name) == v for name, v in fingerprints.items())

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
            pipe.hgetall(keys.records)
            pipe.hgetall(keys.aggregates)
            pipe.zrange(keys.ids, 0, -1, withscores=True)
            pipe.zrange(keys.expiry, 0, -1)
            pipe.zrange(keys.seen, 0, -1, withscores=True)
            meta, records, aggregates, batches, members, seen = await pipe.execute()
        meta = {k.decode(): v.decode() for k, v in meta.items()}
        format_ = meta.get("format")
        if format_ is not None and format_ != FORMAT:
            raise UnknownFormat(
                f"partition {partition} of namespace {self.namespace} holds state of format "
                f"{format_}; this NSM reads format {FORMAT} and the first: upgrade NSM"
            )
        stored = stored_from_meta(meta)
        stored.records = list(records.items())
        stored.aggregates = list(aggregates.items())
        if format_ == FORMAT:
            stored.ids = [_members_of(member)[1] for member, _ in batches]
            return stored
        if stored.offset is None and not members and not batches and not seen:
            return stored  # nothing stored yet: format 2 from the first batch
        stored.legacy = await self._load_legacy(keys, members, batches, seen)
        return stored

    async def _load_legacy(
        self,
        keys: PartitionKeys,
        members: list[bytes],
        batches: list[tuple[bytes, float]],
        seen: list[tuple[bytes, float]],
    ) -> LegacyState:
        legacy = LegacyState(seen=[(event_id.decode(), int(score)) for event_id, score in seen])
        horizons = dict(legacy.seen)
        for member, score in batches:
            ids = msgpack.unpackb(_members_of(member)[1], raw=False)
            pairs = list(zip(ids[::2], ids[1::2], strict=True))
            legacy.batches.append(LegacyBatch(member, score, pairs))
            for event_id, horizon in pairs:
                if horizon > horizons.get(event_id, horizon - 1):
                    horizons[event_id] = horizon
        legacy.ids = sorted(horizons.items())
        names = [m.decode() for m in members]
        async with self.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(keys.bucket(name))
            contents = await pipe.execute()
        for name, fields in zip(names, contents, strict=True):
            metric, _, bucket = name.rpartition(":")
            legacy.bucket_keys.append(keys.bucket(name))
            # The first format kept an entities metric's trait history under the bucket
            # -2^63 - 1; the engine takes it as the smallest 64-bit integer.
            number = max(int(bucket), LEGACY_TRAITS_BUCKET)
            for field_name, value in fields.items():
                legacy.fields.append((metric, number, field_name, value))
        return legacy

    async def expire(self, partition: int, forget_ids_until_ms: int) -> None:
        """Forget the batches of event ids whose newest horizon is at or before the time (some
        ids go a little later than they could: harmless, a repeat would be late everywhere)."""
        await self.client.zremrangebyscore(self.keys(partition).ids, "-inf", forget_ids_until_ms)

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


def varint(value: int) -> bytes:
    """An unsigned varint (how the engine prefixes a metric's aggregate items with its id)."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
