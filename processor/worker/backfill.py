"""The worker's automatic backfill: a rebuild group's metrics rebuilt from the topic in the
background, then handed over to the live state (what and why: processor/worker/rebuild.py).

A group reads its partition from the first offset the topic still holds up to the group's end
(the offset from which the live stream applies the group's metrics), with a Kafka consumer of its
own outside the consumer group, and applies it to a state that covers the group's metrics only,
deduplicating by the whole catalogue's rule. Each batch goes to the group's own keys beside the
partition's (`PartitionStore.scoped`) in the same atomic, fenced step as the live stream's
batches, so a worker killed during a rebuild resumes it from its last batch, with its ids: exact.
The live stream is never paused: the group's batches are applied in a thread of their own (the
native core runs without the GIL) and written while the live stream goes on; only the hand-over
takes the partition's lock, for one merge and one atomic step.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from processor.config import Settings
from processor.definitions.model import Catalog
from processor.replay.source import batches, new_consumer
from processor.store.partition_store import DEFINITION_PREFIX, MetaUpdate, PartitionStore
from processor.worker.native import NativePartitionState
from processor.worker.partition import BatchOutcome, PartitionState
from processor.worker.rebuild import COVERED, START, group_end, scope
from processor.worker.telemetry import Telemetry

log = logging.getLogger("nsm.worker.backfill")
# Records per fetch: large enough to amortise a Redis step, small enough that one batch of the
# rebuild does not hold a core for long while the live stream waits for it.
REBUILD_FETCH_RECORDS = 20_000
EXPIRE_EVERY_S = 5.0
RETRY_S = 2.0
ERRORS = (KafkaError, RedisConnectionError, RedisTimeoutError, OSError)


@dataclass(frozen=True)
class GroupRebuild:
    """One group of one partition, for the live state it was started with."""

    partition: int
    group: str
    metrics: tuple[str, ...]
    live: PartitionState

    @property
    def end(self) -> int:
        return group_end(self.group)


@dataclass(frozen=True)
class Rebuilt:
    """A group's state once it reached its end, and the time from which it holds every event
    (None when the topic still held its beginning)."""

    state: PartitionState
    covered_from_ms: int | None


HandOver = Callable[[GroupRebuild, Rebuilt], Awaitable[None]]


def now_ms() -> int:
    return int(time.time() * 1000)


class Rebuilder:
    """Runs a worker's rebuild groups, one batch at a time across all of them."""

    def __init__(
        self, settings: Settings, redis: aioredis.Redis, telemetry: Telemetry, event_clock: bool
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.telemetry = telemetry
        self.event_clock = event_clock
        # One thread: a rebuild shares the machine with the live stream, which keeps its two.
        self._applier = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nsm-rebuild")
        self._remaining: dict[tuple[int, str], int] = {}

    def close(self) -> None:
        self._applier.shutdown(wait=False, cancel_futures=True)

    async def run(self, job: GroupRebuild, catalog: Catalog, namespace: str,
                  hand_over: HandOver) -> None:  # fmt: skip
        """Rebuild the group until it is handed over; retried after Kafka or Redis errors.
        Cancelling it stops the reading; a hand-over under way is finished first."""
        while True:
            try:
                rebuilt = await self._rebuild(job, catalog, namespace)
                break
            except ERRORS as exc:
                log.warning(
                    "rebuild interrupted; retrying",
                    extra={"partition": job.partition, "group": job.group, "error": repr(exc)},
                )
                await asyncio.sleep(RETRY_S)
            finally:
                self._set_remaining(job, None)
        critical = asyncio.ensure_future(hand_over(job, rebuilt))
        try:
            await asyncio.shield(critical)
        except asyncio.CancelledError:
            await critical
            raise
        store = PartitionStore(self.redis, namespace, scope(job.group))
        await store.clear(job.partition)

    async def _rebuild(self, job: GroupRebuild, catalog: Catalog, namespace: str) -> Rebuilt:
        p, started = job.partition, time.monotonic()
        store = PartitionStore(self.redis, namespace, scope(job.group))
        state = NativePartitionState(catalog, p, metrics=job.metrics)
        stored = await store.load(p)
        consumer = new_consumer(self.settings.kafka_bootstrap, self.settings)
        await consumer.start()
        try:
            tp = TopicPartition(self.settings.topic, p)
            begin = (await consumer.beginning_offsets([tp]))[tp]
            resumable = (
                stored.offset is not None
                and stored.definitions == state.fingerprints
                and stored.offset + 1 >= begin
            )
            if resumable:
                state.restore(stored)
                covered = stored.marks.get(COVERED)
                covered_from = int(covered) if covered else None
            else:
                if stored.offset is not None or stored.definitions:
                    # Other definitions, or the topic dropped what it had not read yet.
                    await store.clear(p)
                covered_from = None
            position = begin if state.offset is None else state.offset + 1
            log.info(
                "rebuilding metrics from the topic",
                extra={"partition": p, "group": job.group, "metrics": list(job.metrics),
                       "from_offset": position, "to_offset": job.end},
            )  # fmt: skip
            if position < job.end:
                covered_from = await self._consume(
                    job, state, store, consumer, begin, position, covered_from
                )
            elif state.offset is None and begin > 0:
                # Nothing before the end is left: only the live stream's events count.
                covered_from = await _first_timestamp(consumer, tp, begin)
        finally:
            await consumer.stop()
        log.info(
            "rebuild caught up with the live stream",
            extra={"partition": p, "group": job.group, "metrics": list(job.metrics),
                   "seconds": round(time.monotonic() - started, 2)},
        )  # fmt: skip
        return Rebuilt(state, covered_from)

    async def _consume(
        self, job: GroupRebuild, state: PartitionState, store: PartitionStore,
        consumer: AIOKafkaConsumer, begin: int, position: int, covered_from: int | None,
    ) -> int | None:  # fmt: skip
        p, skew = job.partition, self.settings.max_future_skew_ms
        loop = asyncio.get_running_loop()
        next_expiry = time.monotonic() + EXPIRE_EVERY_S
        async for _, records in batches(consumer, self.settings.topic, {p: position},
                                        {p: job.end}, REBUILD_FETCH_RECORDS):  # fmt: skip
            meta = None
            if state.offset is None:
                # The first batch: where the rebuild starts, and whether the topic still held its
                # beginning (offset 0) or only what its retention kept since a time.
                marks = {START: str(begin)}
                marks.update({DEFINITION_PREFIX + m: f for m, f in state.fingerprints.items()})
                if begin > 0:
                    covered_from = int(records[0].timestamp)
                    marks[COVERED] = str(covered_from)
                meta = MetaUpdate(set=marks)

            def apply(records: list[Any] = records) -> BatchOutcome:
                return state.apply_batch(records, now_ms(), skew, self.event_clock)

            outcome = await loop.run_in_executor(self._applier, apply)
            if outcome.new_offset is not None:
                await store.apply_batch(
                    p, outcome.previous_offset, outcome.new_offset, outcome.max_ts,
                    outcome.writes, outcome.ids, None, meta,
                )  # fmt: skip
                self._set_remaining(job, job.end - outcome.new_offset - 1)
            if time.monotonic() >= next_expiry:
                clock = state.max_ts if self.event_clock else now_ms()
                if clock is not None:
                    state.expire(clock)
                    await store.expire(p, clock, state.forget_ids_until(clock))
                next_expiry = time.monotonic() + EXPIRE_EVERY_S
        return covered_from

    def _set_remaining(self, job: GroupRebuild, remaining: int | None) -> None:
        key = (job.partition, job.group)
        if remaining is None:
            self._remaining.pop(key, None)
        else:
            self._remaining[key] = remaining
        total = sum(n for (p, _), n in self._remaining.items() if p == job.partition)
        self.telemetry.rebuild_remaining.labels(partition=str(job.partition)).set(total)


async def _first_timestamp(consumer: AIOKafkaConsumer, tp: TopicPartition, begin: int) -> int:
    """The Kafka timestamp of the first message the partition holds (now when it holds none)."""
    consumer.assign([tp])
    consumer.seek(tp, begin)
    end = (await consumer.end_offsets([tp]))[tp]
    while begin < end:
        fetched = await consumer.getmany(tp, timeout_ms=1000, max_records=1)
        for records in fetched.values():
            if records:
                return int(records[0].timestamp)
        if await consumer.position(tp) >= end:
            break
    return now_ms()
