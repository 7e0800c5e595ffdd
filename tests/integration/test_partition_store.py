"""The partition store's event ids against a real Redis: written per batch, read back, expired,
and the per-id set of earlier versions still honoured."""

from __future__ import annotations

import asyncio

import redis
import redis.asyncio as aioredis

from processor.store.partition_store import PartitionStore


def test_event_ids_are_stored_per_batch_read_back_and_forgotten_with_their_batch(
    redis_url: str, redis_client: redis.Redis, unique_name: str
):
    async def scenario() -> list[dict[str, int]]:
        client = aioredis.Redis.from_url(redis_url)
        store = PartitionStore(client, unique_name)
        seen = []
        try:
            await store.apply_batch(0, None, 4, 10, [], [("a", 100), ("b", 200)])
            await store.apply_batch(0, 4, 9, 10, [], [])  # a batch of repeats: no ids
            await store.apply_batch(0, 9, 12, 10, [], [("a", 300), ("é", 250)])
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
        client = aioredis.Redis.from_url(redis_url)
        store = PartitionStore(client, unique_name)
        newest = []
        try:
            await store.apply_batch(0, None, 3, None, [], [])  # only invalid messages
            newest.append((await store.load(0)).max_ts)
            await store.apply_batch(0, 3, 5, 1_795_000_000_000, [], [])
            await store.apply_batch(0, 5, 7, None, [], [])
            newest.append((await store.load(0)).max_ts)
            await store.apply_batch(0, 7, 9, 1_700_000_000_000, [], [])  # an older event
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
