"""The partition store's event ids against a real Redis: written per batch, read back, expired,
and the per-id set of earlier versions still honoured."""

from __future__ import annotations

import asyncio

import orjson
import pytest
import redis

from processor.definitions import load_definitions
from processor.store.client import connect
from processor.store.partition_store import RedisPartitionStore, StoredPartition
from processor.store.payloads import NewIds, PackedWrites
from processor.worker.native import NativePartitionState
from processor.worker.partition import Message
from tests.strategies import BASE_MS

NO_WRITES = PackedWrites()


def test_event_ids_are_stored_per_batch_read_back_and_forgotten_with_their_batch(
    redis_url: str, redis_client: redis.Redis, unique_name: str
):
    async def scenario() -> list[dict[str, int]]:
        client = await connect(redis_url)
        store = RedisPartitionStore(client, unique_name)
        seen = []
        try:
            await store.apply_batch(
                0, None, 4, 10, NO_WRITES, NewIds.pack([("a", 100), ("b", 200)])
            )
            await store.apply_batch(
                0, 4, 9, 10, NO_WRITES, NewIds.pack([])
            )  # a batch of repeats: no ids
            await store.apply_batch(0, 9, 12, 10, NO_WRITES, NewIds.pack([("a", 300), ("é", 250)]))
            # Written by an earlier version: one member per id.
            await client.zadd(store.keys(0).seen, {"c": 150, "a": 50})
            seen.append((await store.load(0)).seen)
            await store.expire(0, 0, 200)  # the first batch's ids may all go; c too
            seen.append((await store.load(0)).seen)
            await store.expire(0, 0, 300)
            seen.append((await store.load(0)).seen)
        finally:
            await client.aclose()
        return seen

    try:
        before, after_200, after_300 = asyncio.run(scenario())
        assert before == {"a": 300, "b": 200, "c": 150, "é": 250}
        assert after_200 == {"a": 300, "é": 250}
        assert after_300 == {}
        assert redis_client.zcard(f"nsm:{unique_name}:{{{unique_name}.p0}}:ids") == 0
    finally:
        for key in redis_client.scan_iter(match=f"nsm:{unique_name}:*"):
            redis_client.unlink(key)


def test_the_newest_event_time_is_absent_until_an_event_and_never_goes_back(
    redis_url: str, redis_client: redis.Redis, unique_name: str
):
    async def scenario() -> list[int | None]:
        client = await connect(redis_url)
        store = RedisPartitionStore(client, unique_name)
        newest = []
        try:
            await store.apply_batch(
                0, None, 3, None, NO_WRITES, NewIds.pack([])
            )  # only invalid messages
            newest.append((await store.load(0)).max_ts)
            await store.apply_batch(0, 3, 5, 1_795_000_000_000, NO_WRITES, NewIds.pack([]))
            await store.apply_batch(0, 5, 7, None, NO_WRITES, NewIds.pack([]))
            newest.append((await store.load(0)).max_ts)
            await store.apply_batch(
                0, 7, 9, 1_700_000_000_000, NO_WRITES, NewIds.pack([])
            )  # an older event
            stored = await store.load(0)
            newest.append(stored.max_ts)
            assert stored.offset == 9
        finally:
            await client.aclose()
        return newest

    try:
        assert asyncio.run(scenario()) == [None, 1_795_000_000_000, 1_795_000_000_000]
    finally:
        for key in redis_client.scan_iter(match=f"nsm:{unique_name}:*"):
            redis_client.unlink(key)


@pytest.mark.parametrize(
    "times",
    [
        [-(2**63), -(2**63) + 1, -(2**62)],  # far before the epoch: 19 digits
        [-(2**63) + 1, -(2**63)],  # an older one after: kept
        [-5, -40, 7, 3],
        [2**53 + 1, 2**53],  # beyond a double's integers
        [123_456_789_012_345_678, 99_999, 123_456_789_012_345_679],
    ],
)
def test_the_newest_event_time_is_stored_exactly_at_any_size(
    redis_url: str, redis_client: redis.Redis, unique_name: str, times: list[int]
):
    """A valid event may be timestamped anywhere in 64 bits; Redis's Lua numbers are doubles,
    whose text has 14 digits (the worker could not read back "-9.2233720368548e+18")."""

    async def scenario() -> int | None:
        client = await connect(redis_url)
        store = RedisPartitionStore(client, unique_name)
        try:
            offset = None
            for i, ts in enumerate(times):
                await store.apply_batch(0, offset, i, ts, NO_WRITES, NewIds.pack([]))
                offset = i
            assert await store.max_event_times([0]) == {0: max(times)}
            return (await store.load(0)).max_ts
        finally:
            await client.aclose()

    try:
        assert asyncio.run(scenario()) == max(times)
    finally:
        for key in redis_client.scan_iter(match=f"nsm:{unique_name}:*"):
            redis_client.unlink(key)


def test_what_the_native_core_packs_is_stored_as_it_holds_it(
    redis_url: str, redis_client: redis.Redis, unique_name: str
):
    """The native core packs its writes and ids itself (native/src/pack.rs): Redis's Lua must
    read them, whatever the sizes of the strings (msgpack's fixstr, str8 and str16 forms) and
    however many fields a bucket has (the script sets at most 1000 per HSET)."""
    state = NativePartitionState(load_definitions("definitions"), 0)
    # Keys of 1, 40 and 300 characters (a cell of the last needs str16) and 1,500 accounts.
    accounts = ["a", "b" * 40, "c" * 300] + [f"acc_{i}" for i in range(1_500)]
    messages = [
        Message(i, orjson.dumps({
            "type": "report.viewed", "timestamp": "2026-11-20T10:00:00.250Z",
            "event_id": f"{account}-{i}", "account_id": account, "user_id": "u1",
        }))
        for i, account in enumerate(accounts)
    ]  # fmt: skip
    outcome = state.apply_batch(messages, BASE_MS, 300_000, event_clock=True)
    assert outcome.new_offset is not None and len(outcome.ids.unpack()) == len(accounts)

    async def scenario() -> StoredPartition:
        client = await connect(redis_url)
        store = RedisPartitionStore(client, unique_name)
        try:
            await store.apply_batch(
                0, None, outcome.new_offset, outcome.max_ts, outcome.writes, outcome.ids
            )
            return await store.load(0)
        finally:
            await client.aclose()

    try:
        stored = asyncio.run(scenario())
        assert stored.seen == dict(outcome.ids.unpack())
        native_buckets = {
            (metric, bucket): {entity.encode(): cell for entity, cell in cells.items()}
            for metric in state.native_metrics
            for bucket, cells in state.native_cells(metric).items()
        }
        assert native_buckets and max(map(len, native_buckets.values())) > 1_000
        assert {k: v for k, v in stored.buckets.items() if k in native_buckets} == native_buckets
    finally:
        for key in redis_client.scan_iter(match=f"nsm:{unique_name}:*"):
            redis_client.unlink(key)
