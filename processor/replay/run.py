"""Rebuilding every metric from a topic into a namespace of its own, on the event clock.

Per partition, the same steps as the worker: `PartitionState.apply_batch`, then
`PartitionStore.apply_batch`, one fenced atomic step per batch that also stores the partition's
applied offset. So an interrupted replay resumes from what it stored (load, seek to offset + 1),
and a worker that is pointed at the namespace continues where the replay stopped.

Nothing expires while consuming: out-of-order events of any age are applied, and the full state
is there for the exact history sweep (replay/history.py). At the end: summaries and values as of
the newest event, the history, then expiry as of that event.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections import Counter
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer

from processor.config import Settings
from processor.definitions.model import Catalog
from processor.engine.compute import ComputeResult
from processor.engine.summary import encode_summary, finish, merge_summaries
from processor.engine.windows import Windowed
from processor.replay import guard
from processor.replay.export import store_history
from processor.replay.history import history_step_ms, sweep
from processor.replay.progress import ReplayProgress
from processor.replay.source import OffsetPlan, batches, new_consumer, parse_from, plan_offsets
from processor.store import namespaces as ns
from processor.store.namespaces import InfoField, NamespaceError
from processor.store.partition_store import PartitionStore
from processor.worker.partition import Message, PartitionState

_HEARTBEAT_SECONDS = 5.0


@dataclass
class ReplayRequest:
    namespace: str
    topic: str
    bootstrap: str
    catalog: Catalog
    from_spec: str = "earliest"
    to_ms: int | None = None
    history: bool = True
    history_from_ms: int | None = None
    resume: bool = False
    discard: bool = False
    live: str = "live"
    max_records: int = 50_000
    max_future_skew_ms: int = 300_000
    progress: bool = False


@dataclass
class ReplayReport:
    result: ComputeResult
    events: int  # messages read by this run
    seconds: float  # consuming only
    history_points: int
    history_seconds: float
    partitions: int
    resumed: bool


class _Counters:
    def __init__(self, info: dict[str, str]) -> None:
        self.applied = int(info.get(InfoField.APPLIED, "0"))
        self.duplicates = int(info.get(InfoField.DUPLICATES, "0"))
        self.invalid: Counter[str] = Counter(orjson.loads(info.get(InfoField.INVALID, "{}")))

    def fields(self) -> dict[str, object]:
        return {
            InfoField.APPLIED: self.applied,
            InfoField.DUPLICATES: self.duplicates,
            InfoField.INVALID: dict(self.invalid),
        }


async def replay(
    client: aioredis.Redis, settings: Settings, request: ReplayRequest
) -> ReplayReport:
    name, catalog = request.namespace, request.catalog
    await guard.check_target(client, name, request.live)
    info = await guard.prepare(client, name, request.resume, request.discard)
    resumed = info is not None
    store = PartitionStore(client, name)
    fingerprints = PartitionState(catalog, 0).fingerprints
    consumer = new_consumer(request.bootstrap, settings)
    await consumer.start()
    try:
        if info is not None:
            plan = _resumed_plan(info, fingerprints)
        else:
            from_ms = parse_from(request.from_spec, ns.now_ms())
            plan = await plan_offsets(consumer, request.topic, from_ms, request.to_ms)
            info = await _start_info(client, request, plan, fingerprints)
            for partition in plan.start:
                await store.set_definitions(partition, fingerprints)
        states, positions = await _load(store, catalog, plan, resumed)
        counters = _Counters(info)
        progress = ReplayProgress(
            sum(max(0, plan.end[p] - positions[p]) for p in positions), request.progress
        )
        collecting = gc.isenabled()
        # The state is millions of small containers without reference cycles: the cyclic
        # collector would rescan them again and again for nothing (about 5x the run).
        gc.disable()
        gc.freeze()
        try:
            started = time.monotonic()
            events = await _consume(consumer, client, store, request, plan, states, positions,
                                    counters, progress)  # fmt: skip
            seconds = time.monotonic() - started
            progress.phase("finishing")
            report = await _finish(client, store, request, info, states, counters)
        except BaseException:
            progress.close()
            await ns.write_info(
                client, name, {InfoField.STATUS: "interrupted", **counters.fields()}
            )
            raise
        finally:
            gc.unfreeze()
            if collecting:
                gc.enable()
        progress.close()
    finally:
        await consumer.stop()
    report.events, report.seconds, report.resumed = events, seconds, resumed
    return report


def _resumed_plan(info: dict[str, str], fingerprints: dict[str, str]) -> OffsetPlan:
    recorded = orjson.loads(info.get(InfoField.FINGERPRINTS, "{}"))
    if recorded != fingerprints:
        raise NamespaceError(
            "the definitions changed since this replay started; resume with the same "
            "definitions, or --discard to replay again with the new ones"
        )

    def offsets(field: str) -> dict[int, int]:
        return {int(p): int(o) for p, o in orjson.loads(info[field]).items()}

    return OffsetPlan(info[InfoField.TOPIC], offsets(InfoField.START_OFFSETS),
                      offsets(InfoField.END_OFFSETS))  # fmt: skip


async def _start_info(
    client: aioredis.Redis, request: ReplayRequest, plan: OffsetPlan, fingerprints: dict[str, str]
) -> dict[str, str]:
    now = ns.now_ms()
    fields: dict[str, object] = {
        InfoField.STATUS: "running",
        InfoField.CREATED: now,
        InfoField.HEARTBEAT: now,
        InfoField.TOPIC: plan.topic,
        InfoField.FINGERPRINTS: fingerprints,
        InfoField.FROM: request.from_spec,
        InfoField.START_OFFSETS: {str(p): o for p, o in plan.start.items()},
        InfoField.END_OFFSETS: {str(p): o for p, o in plan.end.items()},
    }
    if request.to_ms is not None:
        fields[InfoField.TO] = request.to_ms
    await ns.write_info(client, request.namespace, fields)
    return await ns.read_info(client, request.namespace)


async def _load(
    store: PartitionStore, catalog: Catalog, plan: OffsetPlan, resumed: bool
) -> tuple[dict[int, PartitionState], dict[int, int]]:
    states, positions = {}, {}
    for partition, start in plan.start.items():
        state = PartitionState(catalog, partition)
        position = start
        if resumed:
            stored = await store.load(partition)
            state.restore(stored)
            if stored.offset is not None:
                position = stored.offset + 1
        states[partition], positions[partition] = state, position
    return states, positions


async def _consume(
    consumer: AIOKafkaConsumer,
    client: aioredis.Redis,
    store: PartitionStore,
    request: ReplayRequest,
    plan: OffsetPlan,
    states: dict[int, PartitionState],
    positions: dict[int, int],
    counters: _Counters,
    progress: ReplayProgress,
) -> int:
    # One write in flight per partition: the next batch is applied in memory while Redis runs
    # the previous one's script; a partition's writes stay in offset order (the fence needs it).
    in_flight: dict[int, Awaitable[None]] = {}
    events = 0
    heartbeat = time.monotonic()
    skew = request.max_future_skew_ms
    try:
        async for partition, records in batches(consumer, plan.topic, positions, plan.end,
                                                request.max_records):  # fmt: skip
            state = states[partition]
            messages = [Message(r.offset, r.value or b"") for r in records]
            outcome = state.apply_batch(messages, ns.now_ms(), skew, True, drop_late=False)
            events += len(messages)
            counters.applied += outcome.applied
            counters.duplicates += outcome.duplicates
            counters.invalid.update(i.reason for i in outcome.invalid)
            previous = in_flight.pop(partition, None)
            if previous is not None:
                await previous
            if outcome.new_offset is not None:
                in_flight[partition] = asyncio.ensure_future(
                    store.apply_batch(
                        partition, outcome.previous_offset, outcome.new_offset,
                        state.max_ts if state.max_ts is not None else 0,
                        outcome.writes, outcome.seen,
                    )
                )  # fmt: skip
            progress.advance(len(messages))
            if time.monotonic() - heartbeat > _HEARTBEAT_SECONDS:
                heartbeat = time.monotonic()
                beat = {InfoField.HEARTBEAT: ns.now_ms(), **counters.fields()}
                await ns.write_info(client, request.namespace, beat)
    except BaseException:
        # Whatever stopped the replay, what was applied in memory reaches Redis with its
        # offset, so a resume starts right after it.
        await asyncio.gather(*in_flight.values(), return_exceptions=True)
        raise
    for write in in_flight.values():
        await write  # a failed write fails the replay
    return events


async def _finish(
    client: aioredis.Redis,
    store: PartitionStore,
    request: ReplayRequest,
    info: dict[str, str],
    states: dict[int, PartitionState],
    counters: _Counters,
) -> ReplayReport:
    name, catalog = request.namespace, request.catalog
    newest = [s.max_ts for s in states.values() if s.max_ts is not None]
    as_of = max(newest) if newest else ns.now_ms()
    summaries = []
    for partition, state in states.items():
        summary = state.summarize(as_of)
        summaries.append(summary)
        await store.write_summary(partition, encode_summary(as_of, summary))
    values = finish(catalog, merge_summaries(summaries))
    result = ComputeResult(as_of, values, counters.invalid, counters.duplicates, counters.applied)
    points, history_seconds = int(info.get(InfoField.HISTORY_POINTS, "0")), 0.0
    if request.history and newest and InfoField.HISTORY_POINTS not in info:
        started = time.monotonic()
        first = request.history_from_ms
        if first is None:
            first = _first_bucket_start(states.values())
        engines = [s.engine for s in states.values()]
        step = history_step_ms(catalog)
        points = await store_history(
            client, name, catalog, step, as_of, sweep(catalog, engines, first, as_of)
        )
        history_seconds = time.monotonic() - started
        # Recorded before anything expires: a resume after this point must not sweep again.
        await ns.write_info(client, name, {InfoField.HISTORY_POINTS: points,
                                           InfoField.HISTORY_FROM: first})  # fmt: skip
    for partition, state in states.items():
        state.expire(as_of)
        await store.expire(partition, as_of, state.forget_ids_until(as_of))
    await ns.write_info(
        client,
        name,
        {
            InfoField.STATUS: "complete",
            InfoField.FINISHED: ns.now_ms(),
            InfoField.HEARTBEAT: ns.now_ms(),
            InfoField.NEWEST: as_of,
            **counters.fields(),
        },
    )
    return ReplayReport(result, 0, 0.0, points, history_seconds, len(states), False)


def _first_bucket_start(states: Iterable[PartitionState]) -> int:
    """Where the history starts by default: the start of the earliest bucket holding data."""
    starts = []
    for partition in states:
        engine = partition.engine
        windowed: list[tuple[str, Windowed]] = [
            *engine.entities_metrics.items(),
            *engine.aggregate_metrics.items(),
        ]
        for name, metric in windowed:
            buckets = engine.states[name].buckets
            if buckets:
                starts.append(min(buckets) * metric.bucket_ms)
    return min(starts) if starts else 0
