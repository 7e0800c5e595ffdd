"""One scenario through every implementation of the store protocol (store/protocol.py): Redis on
one server, Redis Cluster, and the in-memory store the runtime's unit tests use. Each must see
the same thing at every step, and what the protocol promises: the fence, counts that add up, a
newest event time that only grows, expiry and dropped metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest

from processor.partition.state import BatchOutcome, Message, PartitionState
from processor.store.client import connect
from processor.store.partition_store import RedisStateStore
from processor.store.payloads import NewIds
from processor.store.protocol import Fenced, MetaUpdate, PartitionStore, StateStore
from tests.integration.cluster.clusters import Clusters
from tests.integration.worker.harness import delete_namespace
from tests.memory_store import MemoryStateStore
from tests.strategies import BASE_MS, catalog_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

P, Q = 2, 3  # two partitions (different slots on a cluster)
HOUR = 3_600_000
CATALOG = catalog_of([
    {"name": "senders", "tier": "granular", "window": "1d", "bucket": "1h",
     "entities": {"key": "account_id", "all": [{"event": "report.sent", "count_at_least": 1}]}},
    {"name": "sent", "tier": "granular", "window": "1d", "bucket": "1h",
     "aggregate": {"event": "report.sent", "count": True}},
])  # fmt: skip


def _batch(state: PartitionState, first: int, *events: dict[str, Any] | bytes) -> BatchOutcome:
    messages = [
        Message(first + i, e if isinstance(e, bytes) else orjson.dumps(e))
        for i, e in enumerate(events)
    ]
    return state.apply_batch(messages, BASE_MS + 40 * 24 * HOUR, 300_000, event_clock=True)


def _sent(account: str, event_id: str, hours: int = 0) -> dict[str, Any]:
    return {"type": "report.sent", "timestamp": BASE_MS + hours * HOUR, "account_id": account,
            "event_id": event_id}  # fmt: skip


async def _write(store: PartitionStore, partition: int, outcome: BatchOutcome) -> None:
    assert outcome.new_offset is not None
    o = outcome
    await store.apply_batch(partition, o.previous_offset, o.new_offset, o.max_ts, o.writes, o.ids,
                            o.counts())  # fmt: skip


async def _restored(store: PartitionStore, partition: int) -> PartitionState:
    state = PartitionState(CATALOG, partition)
    state.restore(await store.load(partition))
    return state


async def scenario(backend: StateStore, namespace: str) -> list[Any]:
    """Every observation, in order. The writes are the engine's (format 2); what is compared is
    what the store gives back, and what a state restored from it holds."""
    seen: list[Any] = []
    store = backend.partitions(namespace)
    empty = await store.load(P)
    seen.append(("empty", empty.offset, empty.max_ts, empty.records, empty.aggregates, empty.ids))

    state = PartitionState(CATALOG, P)
    first = _batch(state, 0, _sent("a", "e1"), _sent("b", "e2", 1), b"{bad")
    await _write(store, P, first)
    try:
        await store.apply_batch(P, None, 11, 2000, None, NewIds(), {"applied": 5})
        seen.append("not fenced")
    except Fenced as fenced:
        seen.append(("fenced", fenced.partition, fenced.stored_offset))
    await _write(store, P, _batch(state, 3, _sent("a", "e1", 2), _sent("c", "e3", 3)))
    await _write(store, P, state.pass_over(5))  # a batch of nothing to apply
    other = PartitionState(CATALOG, Q)
    await _write(store, Q, _batch(other, 0, _sent("q", "e9", 4)))
    loaded = await store.load(P)
    seen.append(("loaded", loaded.offset, loaded.max_ts, len(loaded.records),
                 len(loaded.aggregates), len(loaded.ids)))  # fmt: skip
    restored = await _restored(store, P)
    as_of = BASE_MS + 4 * HOUR
    seen.append(("restored", restored.summarize(as_of) == state.summarize(as_of),
                 restored.seen_ids))  # fmt: skip
    seen.append(("counts", await store.counts([P, Q])))
    seen.append(("offsets", await store.stored_offset(P), await store.stored_offset(99)))

    defined_as = {"def:senders": "f1", "def:sent": "f2", "mid:senders": "1", "mid:sent": "2",
                  "next_mid": "3"}  # fmt: skip
    await store.update_meta(P, MetaUpdate(defined_as))
    seen.append(("holds", await store.still_holds(P, 5, {"senders": "f1"}),
                 await store.still_holds(P, 4, {"senders": "f1"}),
                 await store.still_holds(P, 5, {"senders": "other"})))  # fmt: skip
    defined = await store.load(P)
    seen.append(("ids", defined.metric_ids, defined.next_metric_id))

    # Marks, and a step fenced by the `pending` mark as well as by the offset.
    await store.update_meta(P, MetaUpdate({"pending": "g1", "ready_at": "30"}))
    try:
        await store.apply_batch(P, 5, 5, None, None, NewIds(), None,
                                MetaUpdate(expect_pending=""))  # fmt: skip
        seen.append("not fenced by the pending mark")
    except Fenced:
        seen.append("fenced by the pending mark")
    await store.apply_batch(P, 5, 5, None, None, NewIds(), None,
                            MetaUpdate({"covered": "5"}, ("pending",), "g1"))  # fmt: skip
    seen.append(("marks", (await store.load(P)).marks,
                 await store.still_holds(P, 5, {}, {"pending": None, "ready_at": "30"}),
                 await store.still_holds(P, 5, {}, {"pending": "g1"})))  # fmt: skip
    # A scope's keys are the partition's neighbours, apart, and cleared alone.
    scoped = store.scoped("r.g1")
    rebuild = PartitionState(CATALOG, P, metrics=["sent"])
    await _write(scoped, P, _batch(rebuild, 0, _sent("a", "e1")))
    in_scope = await scoped.load(P)
    seen.append(("scoped", in_scope.offset, len(in_scope.aggregates), (await store.load(P)).offset))
    await scoped.clear(P)
    seen.append(("cleared", (await scoped.load(P)).offset, (await store.load(P)).offset))

    await store.write_summary(Q, b"summary-q")
    seen.append(("summaries", await store.read_summaries([P, Q])))
    seen.append(("newest", await store.max_event_times([P, Q, 99])))

    assert first.ids.newest is not None
    await store.expire(P, first.ids.newest)  # the first batch's ids go, the second's stay
    seen.append(("ids after expiry", len((await store.load(P)).ids)))
    gone = state.expire(BASE_MS + 30 * 24 * HOUR)  # everything leaves its window
    try:
        await store.write_state(P, 4, gone)
        seen.append("not fenced")
    except Fenced as fenced:
        seen.append(("fenced", fenced.partition, fenced.stored_offset))
    await store.write_state(P, 5, gone)
    expired = await store.load(P)
    seen.append(("after expiry", expired.records, expired.aggregates))

    await _write(store, P, _batch(state, 6, _sent("d", "e4", 30 * 24)))
    await store.update_meta(P, MetaUpdate(), ["sent"])
    dropped = await store.load(P)
    seen.append(("after drop", len(dropped.records), dropped.aggregates, dropped.definitions,
                 dropped.metric_ids))  # fmt: skip
    seen.append(("resolved", await backend.resolve_namespace(namespace)))
    return seen


EXPECTED: list[Any] = [
    ("empty", None, None, [], [], []),
    ("fenced", P, "2"),
    ("loaded", 5, BASE_MS + 3 * HOUR, 3, 3, 2),
    ("restored", True, 3),
    ("counts", {"applied": 4, "duplicates": 1, "invalid:not_json": 1}),
    ("offsets", 5, None),
    ("holds", True, False, False),
    ("ids", {"senders": 1, "sent": 2}, 3),
    "fenced by the pending mark",
    ("marks", {"covered": "5", "ready_at": "30"}, True, False),
    ("scoped", 0, 1, 5),
    ("cleared", None, 5),
    ("summaries", {Q: b"summary-q"}),
    ("newest", {P: BASE_MS + 3 * HOUR, Q: BASE_MS + 4 * HOUR}),
    ("ids after expiry", 1),
    ("fenced", P, "5"),
    ("after expiry", [], []),
    ("after drop", 1, [], {"senders": "f1"}, {"senders": 1}),
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
