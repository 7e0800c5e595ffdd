"""One scenario through every implementation of the store protocol (store/protocol.py): Redis on
one server, Redis Cluster, and the in-memory store the runtime's unit tests use. Each must see
the same thing at every step, and what the protocol promises: the fence, counts that add up, a
newest event time that only grows, expiry and dropped metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from processor.store.client import connect
from processor.store.partition_store import RedisStateStore
from processor.store.payloads import BucketWrite, NewIds, PackedWrites
from processor.store.protocol import Fenced, MetaUpdate, StateStore
from tests.integration.cluster.clusters import Clusters
from tests.integration.worker.harness import delete_namespace
from tests.memory_store import MemoryStateStore

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

P, Q = 2, 3  # two partitions (different slots on a cluster)
HOUR = 3_600_000


def writes(*items: tuple[str, int, int, dict[bytes, bytes]]) -> PackedWrites:
    return PackedWrites.pack(BucketWrite(m, b, expires, fields) for m, b, expires, fields in items)


async def scenario(backend: StateStore, namespace: str) -> list[Any]:
    """Every observation, in order."""
    seen: list[Any] = []
    store = backend.partitions(namespace)
    empty = await store.load(P)
    seen.append(("empty", empty.offset, empty.max_ts, empty.buckets, empty.seen))

    await store.apply_batch(P, None, 10, 1000,
                            writes(("a", 1, 5 * HOUR, {b"x": b"1", b"y": b"2"}),
                                   ("b", 1, 9 * HOUR, {b'["t"]': b"4"})),
                            NewIds.pack([("e1", 5000), ("e2", 6000)]),
                            {"applied": 2, "invalid:not_json": 1})  # fmt: skip
    try:
        await store.apply_batch(P, None, 11, 2000, writes(("a", 1, 5 * HOUR, {b"x": b"9"})),
                                NewIds(), {"applied": 5})  # fmt: skip
        seen.append("not fenced")
    except Fenced as fenced:
        seen.append(("fenced", fenced.partition, fenced.stored_offset))
    later = writes(("a", 1, 5 * HOUR, {b"x": b"3"}), ("a", 2, 6 * HOUR, {b"z": b"5"}))
    await store.apply_batch(P, 10, 20, 500, later, NewIds.pack([("e1", 7000)]),
                            {"applied": 1, "duplicates": 1})  # fmt: skip
    await store.apply_batch(P, 20, 21, None, PackedWrites(), NewIds(), {})
    await store.apply_batch(Q, None, 3, 4000, writes(("a", 1, 5 * HOUR, {b"q": b"1"})),
                            NewIds(), {"applied": 1})  # fmt: skip
    loaded = await store.load(P)
    seen.append(("loaded", loaded.offset, loaded.max_ts, loaded.buckets, loaded.seen))
    seen.append(("counts", await store.counts([P, Q])))
    seen.append(("offsets", await store.stored_offset(P), await store.stored_offset(99)))

    await store.update_meta(P, MetaUpdate({"def:a": "f1", "def:b": "f2"}))
    seen.append(("holds", await store.still_holds(P, 21, {"a": "f1"}),
                 await store.still_holds(P, 20, {"a": "f1"}),
                 await store.still_holds(P, 21, {"a": "other"})))  # fmt: skip

    # Marks, and a step fenced by the `pending` mark as well as by the offset.
    await store.update_meta(P, MetaUpdate({"pending": "g1", "ready_at": "30"}))
    try:
        await store.apply_batch(P, 21, 21, None, PackedWrites(), NewIds(), None,
                                MetaUpdate(expect_pending=""))  # fmt: skip
        seen.append("not fenced by the pending mark")
    except Fenced:
        seen.append("fenced by the pending mark")
    await store.apply_batch(P, 21, 21, None, PackedWrites(), NewIds(), None,
                            MetaUpdate({"covered": "5"}, ("pending",), "g1"))  # fmt: skip
    seen.append(("marks", (await store.load(P)).marks,
                 await store.still_holds(P, 21, {}, {"pending": None, "ready_at": "30"}),
                 await store.still_holds(P, 21, {}, {"pending": "g1"})))  # fmt: skip
    # A scope's keys are the partition's neighbours, apart, and cleared alone.
    scoped = store.scoped("r.g1")
    await scoped.apply_batch(P, None, 4, 100, writes(("a", 1, 5 * HOUR, {b"s": b"1"})),
                             NewIds(), {"applied": 1})  # fmt: skip
    seen.append(("scoped", (await scoped.load(P)).buckets, (await store.load(P)).offset))
    await scoped.clear(P)
    seen.append(("cleared", (await scoped.load(P)).offset, (await store.load(P)).offset))

    await store.write_summary(Q, b"summary-q")
    seen.append(("summaries", await store.read_summaries([P, Q])))
    seen.append(("newest", await store.max_event_times([P, Q, 99])))

    seen.append(("expired", await store.expire(P, 5 * HOUR, 6000)))
    after = await store.load(P)
    seen.append(("after expiry", sorted(after.buckets), after.seen))
    await store.update_meta(P, MetaUpdate(), ["b"])
    dropped = await store.load(P)
    seen.append(("after drop", sorted(dropped.buckets), dropped.definitions))
    seen.append(("resolved", await backend.resolve_namespace(namespace)))
    return seen


EXPECTED: list[Any] = [
    ("empty", None, None, {}, {}),
    ("fenced", P, "10"),
    ("loaded", 21, 1000,
     {("a", 1): {b"x": b"3", b"y": b"2"}, ("b", 1): {b'["t"]': b"4"}, ("a", 2): {b"z": b"5"}},
     {"e1": 7000, "e2": 6000}),
    ("counts", {"applied": 4, "duplicates": 1, "invalid:not_json": 1}),
    ("offsets", 21, None),
    ("holds", True, False, False),
    "fenced by the pending mark",
    ("marks", {"covered": "5", "ready_at": "30"}, True, False),
    ("scoped", {("a", 1): {b"s": b"1"}}, 21),
    ("cleared", None, 21),
    ("summaries", {Q: b"summary-q"}),
    ("newest", {P: 1000, Q: 4000}),
    ("expired", 1),
    ("after expiry", [("a", 2), ("b", 1)], {"e1": 7000}),
    ("after drop", [("a", 2)], {"a": "f1"}),
]  # fmt: skip


def run(make: Callable[[], Awaitable[StateStore]], namespace: str) -> list[Any]:
    async def main() -> list[Any]:
        backend = await make()
        try:
            return await scenario(backend, namespace)
        finally:
            await backend.aclose()

    return asyncio.run(main())


async def redis_at(url: str) -> StateStore:
    return RedisStateStore(await connect(url))


def test_memory_store(unique_name: str):
    async def memory() -> StateStore:
        return MemoryStateStore()

    assert run(memory, unique_name) == [*EXPECTED, ("resolved", unique_name)]


def test_redis_server(redis_url: str, unique_name: str):
    try:
        observed = run(lambda: redis_at(redis_url), unique_name)
        assert observed == [*EXPECTED, ("resolved", unique_name)]
    finally:
        delete_namespace(redis_url, unique_name)


def test_redis_cluster(whole_clusters: Clusters, unique_name: str):
    url = whole_clusters.redis_url
    try:
        assert run(lambda: redis_at(url), unique_name) == [*EXPECTED, ("resolved", unique_name)]
    finally:
        delete_namespace(url, unique_name)
