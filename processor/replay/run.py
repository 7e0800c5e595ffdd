"""Rebuilding every metric from a topic into a namespace of its own, on the event clock.

The replay plans the offsets, splits the partitions among its shards (shard.py: each reads and
applies its partitions exactly as the worker does, in this process or in others, processes.py)
and then, over all of them: the values as of the newest event (the shards' summaries merged, as
the worker merges partitions'), the history at every bucket boundary, and expiry as of that event.
Its progress, counters and heartbeat live in the namespace's info hash, so an interrupted replay
can be resumed (each partition continues from its stored offset) or discarded.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import orjson

from processor.config import Settings
from processor.engine.compute import ComputeResult
from processor.engine.summaries import Summary, finish, merge_summaries
from processor.engine.values import MetricValue
from processor.partition.state import fingerprints as definition_versions
from processor.partition.state import first_metric_ids, metric_id_marks
from processor.replay import guard
from processor.replay.export import store_history
from processor.replay.history import history_step_ms
from processor.replay.processes import ProcessShard
from processor.replay.progress import ReplayProgress
from processor.replay.request import ReplayRequest
from processor.replay.shard import Consumed, Report, Shard, Tally
from processor.replay.source import OffsetPlan, new_consumer, parse_from, plan_offsets
from processor.store import namespaces as ns
from processor.store.client import RedisClient
from processor.store.namespaces import InfoField, NamespaceError
from processor.store.partition_store import RedisPartitionStore
from processor.store.protocol import MetaUpdate, PartitionStore
from processor.worker.rebuild import state_marks

__all__ = ["ReplayReport", "ReplayRequest", "replay"]

_HEARTBEAT_SECONDS = 5.0
# Below this many messages a single process is quicker: starting one costs about a second.
_PARALLEL_FROM_MESSAGES = 200_000


@dataclass
class ReplayReport:
    result: ComputeResult
    events: int  # messages read by this run
    seconds: float  # consuming only
    history_points: int
    history_seconds: float
    partitions: int
    resumed: bool
    processes: int = 1


class _AnyShard(Protocol):
    async def consume(self, report: Report) -> Consumed: ...
    async def summarize(self, as_of_ms: int) -> list[Summary]: ...
    def history(self, first_ms: int, as_of_ms: int) -> AsyncIterator[tuple[int, Summary]]: ...
    async def expire(self, as_of_ms: int) -> None: ...
    async def close(self, interrupt: bool = False) -> None: ...


class _Counters:
    """The replay's counts: those stored with the partitions' state (exact whatever stopped an
    earlier run), plus what this run reports as its batches reach Redis."""

    def __init__(self, stored: Mapping[str, int]) -> None:
        self.total = Tally.of(stored)
        self.events = 0  # read by this run

    def fields(self) -> dict[str, object]:
        return {
            InfoField.APPLIED: self.total.applied,
            InfoField.DUPLICATES: self.total.duplicates,
            InfoField.INVALID: dict(self.total.invalid),
        }


def process_count(requested: int | None, partitions: int, messages: int) -> int:
    """How many processes share the partitions: as asked, else one per CPU (one for a small
    replay); never more than there are partitions."""
    if requested is None:
        requested = 1 if messages < _PARALLEL_FROM_MESSAGES else _usable_cpus()
    return max(1, min(requested, partitions))


def _usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, e.g. under taskset), not the machine's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def split_plan(plan: OffsetPlan, parts: int) -> list[OffsetPlan]:
    """The partitions dealt round-robin (by number) into `parts` plans."""
    partitions = sorted(plan.start)
    return [
        OffsetPlan(
            plan.topic,
            {p: plan.start[p] for p in partitions[i::parts]},
            {p: plan.end[p] for p in partitions[i::parts]},
        )
        for i in range(parts)
    ]


async def replay(client: RedisClient, settings: Settings, request: ReplayRequest) -> ReplayReport:
    name, catalog = request.namespace, request.catalog
    await guard.check_target(client, name, request.live)
    info = await guard.prepare(client, name, request.resume, request.discard)
    resumed = info is not None
    store = RedisPartitionStore(client, name)
    fingerprints = definition_versions(catalog)
    if info is not None:
        plan = _resumed_plan(info, fingerprints)
    else:
        plan = await _plan(request, settings)
        info = await _start_info(client, request, plan, fingerprints)
        ids = first_metric_ids(catalog)
        for partition in plan.start:
            marks = {**state_marks(catalog), **metric_id_marks(ids, len(ids) + 1)}
            await store.update_meta(partition, MetaUpdate(marks))
    remaining = await _remaining(store, plan, resumed)
    processes = process_count(request.processes, len(plan.start), remaining)
    counters = _Counters(await store.counts(plan.start))
    progress = ReplayProgress(remaining, request.progress)
    shards = _start_shards(client, settings, request, plan, resumed, processes)
    collecting = gc.isenabled()
    # The state is millions of small containers without reference cycles: the cyclic
    # collector would rescan them again and again for nothing (about 5x the run).
    gc.disable()
    gc.freeze()
    heartbeat = asyncio.ensure_future(_heartbeat(client, name, counters))
    try:
        started = time.monotonic()

        def report(tally: Tally) -> None:
            counters.total.add(tally)
            counters.events += tally.events
            progress.advance(tally.events)

        consumed = await asyncio.gather(*(shard.consume(report) for shard in shards))
        seconds = time.monotonic() - started
        heartbeat.cancel()
        progress.phase("finishing")
        report_ = await _finish(client, store, request, info, shards, consumed, counters,
                                sorted(plan.start))  # fmt: skip
    except BaseException:
        heartbeat.cancel()
        progress.close()
        await asyncio.gather(*(s.close(interrupt=True) for s in shards), return_exceptions=True)
        await ns.write_info(client, name, {InfoField.STATUS: "interrupted", **counters.fields()})
        raise
    finally:
        gc.unfreeze()
        if collecting:
            gc.enable()
    progress.close()
    await asyncio.gather(*(shard.close() for shard in shards))
    report_.events, report_.seconds, report_.resumed = counters.events, seconds, resumed
    report_.partitions, report_.processes = len(plan.start), len(shards)
    return report_


async def _plan(request: ReplayRequest, settings: Settings) -> OffsetPlan:
    consumer = new_consumer(request.bootstrap, settings)
    await consumer.start()
    try:
        from_ms = parse_from(request.from_spec, ns.now_ms())
        return await plan_offsets(consumer, request.topic, from_ms, request.to_ms)
    finally:
        await consumer.stop()


async def _remaining(store: PartitionStore, plan: OffsetPlan, resumed: bool) -> int:
    """Messages still to read: from each partition's stored offset when resuming."""
    positions = dict(plan.start)
    if resumed:
        for partition in plan.start:
            offset = await store.stored_offset(partition)
            if offset is not None:
                positions[partition] = offset + 1
    return sum(max(0, plan.end[p] - positions[p]) for p in positions)


def _start_shards(
    client: RedisClient, settings: Settings, request: ReplayRequest, plan: OffsetPlan,
    resumed: bool, processes: int,
) -> list[_AnyShard]:  # fmt: skip
    if processes == 1:
        return [Shard(client, settings, request, plan, resumed)]
    return [ProcessShard(settings, request, part, resumed) for part in split_plan(plan, processes)]


async def _heartbeat(client: RedisClient, namespace: str, counters: _Counters) -> None:
    while True:
        await asyncio.sleep(_HEARTBEAT_SECONDS)
        beat = {InfoField.HEARTBEAT: ns.now_ms(), **counters.fields()}
        await ns.write_info(client, namespace, beat)


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
    client: RedisClient, request: ReplayRequest, plan: OffsetPlan, fingerprints: dict[str, str]
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


async def _finish(
    client: RedisClient,
    store: PartitionStore,
    request: ReplayRequest,
    info: dict[str, str],
    shards: Sequence[_AnyShard],
    consumed: Sequence[Consumed],
    counters: _Counters,
    partitions: Sequence[int],
) -> ReplayReport:
    name, catalog = request.namespace, request.catalog
    newest = [c.newest_ms for c in consumed if c.newest_ms is not None]
    as_of = max(newest) if newest else ns.now_ms()
    summaries = await asyncio.gather(*(shard.summarize(as_of) for shard in shards))
    counters.total = Tally.of(await store.counts(partitions))
    merged = merge_summaries(catalog, (s for partitions in summaries for s in partitions))
    values = finish(catalog, merged)
    total = counters.total
    result = ComputeResult(as_of, values, total.invalid, total.duplicates, total.applied)
    points, history_seconds = int(info.get(InfoField.HISTORY_POINTS, "0")), 0.0
    if request.history and newest and InfoField.HISTORY_POINTS not in info:
        started = time.monotonic()
        first = request.history_from_ms
        if first is None:
            first = min(c.first_bucket_ms for c in consumed if c.first_bucket_ms is not None)
        step = history_step_ms(catalog)
        points = await store_history(
            client, name, catalog, step, as_of, _history(request, shards, first, as_of)
        )
        history_seconds = time.monotonic() - started
        # Recorded before anything expires: a resume after this point must not sweep again.
        await ns.write_info(client, name, {InfoField.HISTORY_POINTS: points,
                                           InfoField.HISTORY_FROM: first})  # fmt: skip
    await asyncio.gather(*(shard.expire(as_of) for shard in shards))
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
    return ReplayReport(result, 0, 0.0, points, history_seconds, 0, False)


async def _history(
    request: ReplayRequest, shards: Sequence[_AnyShard], first_ms: int, as_of_ms: int
) -> AsyncIterator[tuple[int, dict[str, MetricValue]]]:
    """Every point of the history: the shards' sweeps in step, their summaries merged."""
    sweeps = [shard.history(first_ms, as_of_ms) for shard in shards]
    while True:
        points = [await anext(sweep, None) for sweep in sweeps]
        if points[0] is None:
            return
        t = points[0][0]
        assert all(p is not None and p[0] == t for p in points), "shards swept out of step"
        swept = [p[1] for p in points if p is not None]
        summary = swept[0] if len(swept) == 1 else merge_summaries(request.catalog, swept)
        yield t, finish(request.catalog, summary)
