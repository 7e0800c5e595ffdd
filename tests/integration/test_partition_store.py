"""The partition store against a real Redis: format 2 written per batch and read back, event ids
per batch and forgotten with their batch, and state written by earlier versions (the first
format) migrated, never misread."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.definitions import load_definitions
from processor.definitions.model import Catalog
from processor.engine import compute_metrics
from processor.engine.compute import ComputeResult
from processor.engine.summaries import finish, merge_summaries
from processor.partition.state import Message, PartitionState
from processor.store.client import RedisClient, connect
from processor.store.partition_store import RedisPartitionStore, UnknownFormat
from processor.store.payloads import NewIds
from processor.store.protocol import MetaUpdate, PartitionStore
from processor.worker.rebuild import state_marks
from tests.reference.partition import PartitionState as FirstFormatState
from tests.reference.store import PartitionStore as FirstFormatStore
from tests.strategies import BASE_MS, Scenario, catalog_of, scenarios
from tests.unit.test_traits_vs_oracle import NOW as TRAITS_NOW
from tests.unit.test_traits_vs_oracle import cases as trait_cases

T = TypeVar("T")


def _run(redis_url: str, work: Callable[[RedisClient], Awaitable[T]]) -> T:
    async def scenario() -> T:
        client = await connect(redis_url)
        try:
            return await work(client)
        finally:
            await client.aclose()

    return asyncio.run(scenario())


@pytest.fixture
def clean(redis_client: redis.Redis, unique_name: str) -> Any:
    yield
    for key in redis_client.scan_iter(match=f"nsm:{unique_name}:*"):
        redis_client.unlink(key)


def _message(offset: int, **event: Any) -> Message:
    return Message(offset, orjson.dumps({"type": "report.sent", "timestamp": BASE_MS, **event}))


async def _restored(store: PartitionStore, catalog: Catalog, partition: int = 0) -> PartitionState:
    state = PartitionState(catalog, partition)
    state.restore(await store.load(partition))
    return state


def test_event_ids_are_kept_per_batch_and_forgotten_with_their_batch(
    redis_url: str, unique_name: str, clean: None
):
    catalog = load_definitions("definitions")
    day = 86_400_000
    now = BASE_MS + 4 * day

    def sent(offset: int, event_id: object, ts: int) -> Message:
        return _message(offset, event_id=event_id, timestamp=ts)

    async def work(client: RedisClient) -> list[int]:
        store = RedisPartitionStore(client, unique_name)
        state = PartitionState(catalog, 0)
        first = state.apply_batch([sent(0, "a", BASE_MS), sent(1, "b", BASE_MS)], now, 0, True)
        await store.apply_batch(0, None, 1, first.max_ts, first.writes, first.ids)
        repeats = state.apply_batch([sent(2, "a", BASE_MS + day)], now, 0, True)
        assert repeats.duplicates == 1 and repeats.ids.newest is None
        await store.apply_batch(0, 1, 2, repeats.max_ts, repeats.writes, repeats.ids)
        later = state.apply_batch([sent(3, "é", BASE_MS + 3 * day), sent(4, 7, BASE_MS + 3 * day)],
                                  now, 0, True)  # fmt: skip
        await store.apply_batch(0, 2, 4, later.max_ts, later.writes, later.ids)
        assert first.ids.newest is not None and later.ids.newest is not None
        assert first.ids.newest < later.ids.newest
        duplicates = []
        again = [
            sent(5 + i, i_d, BASE_MS + 3 * day) for i, i_d in enumerate(["a", "b", "é", 7, "7"])
        ]
        for forget in (None, first.ids.newest, later.ids.newest):
            if forget is not None:
                await store.expire(0, forget)
            restored = await _restored(store, catalog)
            duplicates.append(restored.apply_batch(again, now, 0, True).duplicates)
        return duplicates

    # Every repeat (7 and "7" are one id); then those of the second batch (é, 7, "7"); then only
    # "7", a repeat of 7 within the batch itself.
    assert _run(redis_url, work) == [5, 3, 1]


def test_the_newest_event_time_is_absent_until_an_event_and_never_goes_back(
    redis_url: str, unique_name: str, clean: None
):
    async def work(client: RedisClient) -> list[int | None]:
        store = RedisPartitionStore(client, unique_name)
        newest = []
        await store.apply_batch(0, None, 3, None, None, NewIds())  # only invalid messages
        newest.append((await store.load(0)).max_ts)
        await store.apply_batch(0, 3, 5, 1_795_000_000_000, None, NewIds())
        await store.apply_batch(0, 5, 7, None, None, NewIds())
        newest.append((await store.load(0)).max_ts)
        await store.apply_batch(0, 7, 9, 1_700_000_000_000, None, NewIds())  # an older event
        stored = await store.load(0)
        newest.append(stored.max_ts)
        assert stored.offset == 9
        return newest

    assert _run(redis_url, work) == [None, 1_795_000_000_000, 1_795_000_000_000]


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
    redis_url: str, unique_name: str, clean: None, times: list[int]
):
    """A valid event may be timestamped anywhere in 64 bits; Redis's Lua numbers are doubles,
    whose text has 14 digits (the worker could not read back "-9.2233720368548e+18")."""

    async def work(client: RedisClient) -> int | None:
        store = RedisPartitionStore(client, unique_name)
        offset = None
        for i, ts in enumerate(times):
            await store.apply_batch(0, offset, i, ts, None, NewIds())
            offset = i
        assert await store.max_event_times([0]) == {0: max(times)}
        return (await store.load(0)).max_ts

    assert _run(redis_url, work) == max(times)


def test_what_the_engine_packs_is_stored_and_read_back_as_it_holds_it(
    redis_url: str, unique_name: str, clean: None
):
    """Records of 1, 40 and 300 character labels (msgpack's fixstr, str8 and str16) and 1,500
    entities in one batch (the script sets at most 1000 fields per HSET): stored, loaded into a
    new state, the same numbers."""
    catalog = load_definitions("definitions")
    accounts = ["a", "b" * 40, "c" * 300] + [f"acc_{i}" for i in range(1_500)]
    messages = [
        Message(i, orjson.dumps({
            "type": "report.viewed", "timestamp": "2026-11-20T10:00:00.250Z",
            "event_id": f"{account}-{i}", "account_id": account, "user_id": "u1", "plan": "pro",
        }))
        for i, account in enumerate(accounts)
    ]  # fmt: skip
    state = PartitionState(catalog, 0)
    outcome = state.apply_batch(messages, BASE_MS, 300_000, event_clock=True)
    assert outcome.writes is not None and outcome.writes.changes >= len(accounts)

    async def work(client: RedisClient) -> PartitionState:
        store = RedisPartitionStore(client, unique_name)
        await store.update_meta(0, MetaUpdate({**state_marks(catalog), **state.id_marks()}))
        assert outcome.new_offset is not None
        await store.apply_batch(
            0, None, outcome.new_offset, outcome.max_ts, outcome.writes, outcome.ids
        )
        return await _restored(store, catalog)

    restored = _run(redis_url, work)
    as_of = BASE_MS + 1_000
    assert restored.summarize(as_of) == state.summarize(as_of)
    assert restored.seen_ids == len(accounts)
    values = finish(catalog, restored.summarize(as_of))
    assert values["weekly_accounts_3plus_report_users"].segments["plan"] == {"pro": 0}


def test_state_of_an_unknown_format_is_refused_not_misread(
    redis_url: str, redis_client: redis.Redis, unique_name: str, clean: None
):
    store_keys = RedisPartitionStore(redis.Redis(), unique_name).keys(0)  # type: ignore[arg-type]
    redis_client.hset(store_keys.meta, mapping={"offset": "4", "format": "3"})

    async def work(client: RedisClient) -> None:
        await RedisPartitionStore(client, unique_name).load(0)

    with pytest.raises(UnknownFormat, match="format 3"):
        _run(redis_url, work)


# ---- the first format, as earlier versions wrote it, migrated --------------------------------


def _first_format(
    redis_url: str, namespace: str, catalog: Catalog, batches: list[list[Message]], now: int,
    expire_after: set[int], input_format: str = "nsm",
) -> FirstFormatState:  # fmt: skip
    """Write `batches` to Redis exactly as the version before format 2 did (its engine, its
    codec, its Lua step, its expiry)."""

    async def work(client: RedisClient) -> FirstFormatState:
        store = FirstFormatStore(client, namespace)
        state = FirstFormatState(catalog, 0, input_format=input_format)  # type: ignore[arg-type]
        await store.set_definitions(0, state.fingerprints)
        for index, batch in enumerate(batches):
            outcome = state.apply_batch(batch, now, 300_000, event_clock=True)
            if outcome.new_offset is None:
                continue
            await store.apply_batch(0, outcome.previous_offset, outcome.new_offset,
                                    outcome.max_ts, outcome.writes, outcome.ids,
                                    outcome.counts())  # fmt: skip
            if index in expire_after and state.max_ts is not None:
                state.expire(state.max_ts)
                clock = state.max_ts
                await store.expire(0, clock, state.forget_ids_until(clock))
        return state

    return _run(redis_url, work)


def _migrate_and_continue(
    redis_url: str, redis_client: redis.Redis, namespace: str, catalog: Catalog,
    messages: list[Message], raw: list[Any], now: int, choose: st.DataObject,
    input_format: str = "nsm",
) -> None:  # fmt: skip
    """Events up to a point applied and stored by the previous version; then this version loads
    that partition (migrating it to format 2 in one atomic step), applies the rest, and its
    numbers equal `nsm compute` over all the events; loading again reads format 2."""
    cut = choose.draw(st.integers(0, len(messages)))
    before, after = messages[:cut], messages[cut:]
    size = choose.draw(st.integers(1, 5))
    batches = [before[i : i + size] for i in range(0, len(before), size)]
    expire_after = set(choose.draw(st.lists(st.integers(0, max(0, len(batches) - 1)))))
    try:
        _first_format(redis_url, namespace, catalog, batches, now, expire_after, input_format)

        async def work(client: RedisClient) -> tuple[PartitionState, bool]:
            store = RedisPartitionStore(client, namespace)
            state = PartitionState(catalog, 0, input_format=input_format)  # type: ignore[arg-type]
            stored = await store.load(0)
            had_legacy = stored.legacy is not None
            state.restore(stored)
            await store.update_meta(0, MetaUpdate({**state_marks(catalog), **state.id_marks()}))
            if stored.legacy is not None:
                await store.migrate(0, stored, state.all_writes())
            again = await store.load(0)
            assert again.legacy is None
            state = PartitionState(catalog, 0, input_format=input_format)  # type: ignore[arg-type]
            state.restore(again)
            outcome = state.apply_batch(after, now, 300_000, event_clock=True)
            if outcome.new_offset is not None:
                await store.apply_batch(0, outcome.previous_offset, outcome.new_offset,
                                        outcome.max_ts, outcome.writes, outcome.ids,
                                        outcome.counts())  # fmt: skip
            final = PartitionState(catalog, 0, input_format=input_format)  # type: ignore[arg-type]
            final.restore(await store.load(0))
            return final, had_legacy

        state, had_legacy = _run(redis_url, work)
        assert had_legacy == bool(before)
        as_of = state.max_ts if state.max_ts is not None else now
        values = finish(catalog, merge_summaries(catalog, [state.summarize(as_of)]))
        got = ComputeResult(as_of, values).to_json()
        expected = compute_metrics(
            copy.deepcopy(raw),
            catalog,
            now_ms=now,
            input_format=input_format,  # type: ignore[arg-type]
        ).to_json()
        if state.max_ts is None:
            expected["as_of"] = got["as_of"]
        assert got == expected
        # Nothing of the first format is left.
        left = [k.decode() for k in redis_client.scan_iter(match=f"nsm:{namespace}:*")]
        assert not [k for k in left if k.endswith((":expiry", ":seen")) or ":m:" in k]
    finally:
        for key in redis_client.scan_iter(match=f"nsm:{namespace}:*"):
            redis_client.unlink(key)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scenario=scenarios(), choose=st.data())
def test_state_written_by_the_first_format_is_migrated_and_continues_exactly(
    redis_url: str, redis_client: redis.Redis, unique_name: str, scenario: Scenario,
    choose: st.DataObject,
):  # fmt: skip
    catalog = catalog_of(scenario.metrics)
    namespace = f"{unique_name}-{choose.draw(st.integers(0, 10**9))}"
    messages = [Message(i, orjson.dumps(item) if not isinstance(item, bytes | str) else
                        (item if isinstance(item, bytes) else item.encode()))
                for i, item in enumerate(copy.deepcopy(scenario.raw))]  # fmt: skip
    _migrate_and_continue(redis_url, redis_client, namespace, catalog, messages, scenario.raw,
                          scenario.now_ms, choose)  # fmt: skip


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=trait_cases(), choose=st.data())
def test_trait_histories_of_the_first_format_are_migrated_too(
    redis_url: str, redis_client: redis.Redis, unique_name: str, case: Any, choose: st.DataObject
):
    """Segment calls with group traits: the first format kept each trait metric's history under
    a bucket of its own; it is migrated with the rest."""
    metrics, stream, _ = case
    catalog = catalog_of(metrics)
    namespace = f"{unique_name}-{choose.draw(st.integers(0, 10**9))}"
    messages = [Message(i, orjson.dumps(call)) for i, call in enumerate(stream)]
    _migrate_and_continue(redis_url, redis_client, namespace, catalog, messages, stream,
                          TRAITS_NOW, choose, "segment")  # fmt: skip
