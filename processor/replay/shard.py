"""One replay process's share of a topic's partitions, read and applied as the worker would.

Per partition, the worker's own step (processor/partition/step.py): apply the batch to the
partition's state, then one fenced atomic store step per batch that also stores the partition's
applied offset. So an interrupted replay resumes from what it stored (load, seek to offset + 1),
and a worker that is pointed at the namespace continues where the replay stopped.

Nothing expires or is pruned while consuming: out-of-order events of any age are applied, and the
whole state is there for the exact history sweep (replay/history.py); at the end it is pruned and
expired as of the newest event, and written whole (`expire`). A message the engine fails on is
`unprocessable`, as in the worker: the partition is restored from what was stored and the batch
applied again without it. The replay (run.py) drives its
shards through the same steps whether they run in its own process or in others (processes.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer

from processor.config import Settings
from processor.engine.summaries import Summary, encode_summary
from processor.events import MessageFailed
from processor.partition.state import PartitionState
from processor.partition.step import BatchStep, StepOptions
from processor.replay.history import sweep_summaries
from processor.replay.request import ReplayRequest
from processor.replay.source import OffsetPlan, batches, new_consumer
from processor.store import namespaces as ns
from processor.store.client import RedisClient
from processor.store.partition_store import RedisPartitionStore
from processor.store.protocol import APPLIED, DUPLICATES, INVALID_PREFIX, MetaUpdate, PartitionStore
from processor.worker.rebuild import covered_marks

log = logging.getLogger("nsm.replay")


@dataclass
class Tally:
    """What a shard read and applied since its last report."""

    events: int = 0
    applied: int = 0
    duplicates: int = 0
    invalid: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, counts: Mapping[str, int], events: int = 0) -> Tally:
        """From counts named as stored (`BatchOutcome.counts`, `PartitionStore.counts`)."""
        invalid = Counter(
            {
                k.removeprefix(INVALID_PREFIX): n
                for k, n in counts.items()
                if k.startswith(INVALID_PREFIX)
            }
        )
        return cls(events, counts.get(APPLIED, 0), counts.get(DUPLICATES, 0), invalid)

    def add(self, other: Tally) -> None:
        self.events += other.events
        self.applied += other.applied
        self.duplicates += other.duplicates
        self.invalid.update(other.invalid)


@dataclass
class Consumed:
    """A shard at the end of its partitions: its newest event time and earliest bucket start
    (None when it holds no event)."""

    newest_ms: int | None
    first_bucket_ms: int | None


Report = Callable[[Tally], None]


class Shard:
    """Replays the partitions of `plan` (a part of the replay's plan) in this process."""

    def __init__(
        self, client: RedisClient, settings: Settings, request: ReplayRequest, plan: OffsetPlan,
        resumed: bool,
    ) -> None:  # fmt: skip
        self.client, self.settings, self.request = client, settings, request
        self.plan, self.resumed = plan, resumed
        self.store: PartitionStore = RedisPartitionStore(client, request.namespace)
        options = StepOptions(request.max_future_skew_ms, event_clock=True, drop_late=False)
        self.step = BatchStep(self.store, options)
        self.states: dict[int, PartitionState] = {}

    async def consume(self, report: Report) -> Consumed:
        positions = await self._load()
        # Nothing left (a resumed shard whose partitions are done): no consumer. aiokafka's
        # stop() right after start(), before its tasks first ran, raises CancelledError.
        if any(positions[p] < end for p, end in self.plan.end.items()):
            consumer = new_consumer(self.request.bootstrap, self.settings)
            await consumer.start()
            try:
                await self._consume(consumer, positions, report)
            finally:
                await consumer.stop()
        newest = [s.max_ts for s in self.states.values() if s.max_ts is not None]
        return Consumed(max(newest) if newest else None, self._first_bucket_start())

    async def summarize(self, as_of_ms: int) -> list[Summary]:
        """Every partition's summary as of the time, also stored for the worker's export."""
        summaries = []
        for partition, state in self.states.items():
            summary = state.summarize(as_of_ms)
            summaries.append(summary)
            await self.store.write_summary(partition, encode_summary(self.request.catalog, summary))
        return summaries

    async def history(self, first_ms: int, as_of_ms: int) -> AsyncIterator[tuple[int, Summary]]:
        """This shard's summary at every history point (each valid until the next is taken)."""
        states = list(self.states.values())
        for point in sweep_summaries(self.request.catalog, states, first_ms, as_of_ms):
            yield point

    async def close(self, interrupt: bool = False) -> None:
        """Nothing to stop in this process (a `ProcessShard` stops its child)."""

    async def expire(self, as_of_ms: int) -> None:
        """The end: each partition's state pruned and expired as of the newest event, written
        whole, and the ids nobody needs any more forgotten."""
        for partition, state in self.states.items():
            await self.store.write_state(partition, state.offset, state.compact(as_of_ms))
            await self.store.expire(partition, state.forget_ids_until(as_of_ms))

    def _new_state(self, partition: int) -> PartitionState:
        return PartitionState(self.request.catalog, partition, keep_history=True,
                              input_format=self.settings.input_format)  # fmt: skip

    async def _load(self) -> dict[int, int]:
        positions = {}
        for partition, start in self.plan.start.items():
            state = self._new_state(partition)
            position = start
            if self.resumed:
                stored = await self.store.load(partition)
                state.restore(stored)
                if stored.offset is not None:
                    position = stored.offset + 1
            self.states[partition], positions[partition] = state, position
        return positions

    async def _consume(
        self, consumer: AIOKafkaConsumer, positions: dict[int, int], report: Report
    ) -> None:
        # One write in flight per partition: the next batch is applied in memory while Redis runs
        # the previous one's script; a partition's writes stay in offset order (the fence needs it).
        # A batch is reported once its write is done, so the counts match what Redis holds.
        in_flight: dict[int, tuple[asyncio.Future[None], Tally]] = {}
        try:
            plan, max_records = self.plan, self.request.max_records
            async for partition, records in batches(consumer, plan.topic, positions, plan.end,
                                                    max_records):  # fmt: skip
                # Records have the `offset` and `value` a Message has: no copy per record.
                failed: dict[int, str] = {}
                while True:
                    state = self.states[partition]
                    try:
                        outcome = self.step.apply(state, records, ns.now_ms(), failed)
                        break
                    except MessageFailed as failure:
                        log.warning(
                            "a message could not be processed: it counts as unprocessable, and "
                            "its batch is applied again without it",
                            extra={"partition": partition, "offset": failure.position,
                                   "error": failure.detail},
                        )  # fmt: skip
                        failed[failure.position] = failure.detail
                        previous = in_flight.pop(partition, None)
                        if previous is not None:  # the state to restore is all stored first
                            await asyncio.shield(previous[0])
                            report(previous[1])
                        restored = self._new_state(partition)
                        restored.restore(await self.store.load(partition))
                        self.states[partition] = restored
                counts = outcome.counts()
                tally = Tally.of(counts, events=len(records))
                meta = None
                if outcome.previous_offset is None and plan.start[partition] > 0:
                    # Replayed from after the partition's beginning (--from, or what retention
                    # kept): the state holds every event from the time of its first message.
                    meta = MetaUpdate(covered_marks(state.fingerprints, records[0].timestamp))
                previous = in_flight.get(partition)
                if previous is not None:
                    # Shielded: an interrupt here must not cancel the write itself.
                    await asyncio.shield(previous[0])
                    del in_flight[partition]
                    report(previous[1])
                if outcome.new_offset is None:
                    report(tally)
                    continue
                write = asyncio.ensure_future(self.step.write(state, outcome, meta))
                in_flight[partition] = (write, tally)
        except BaseException:
            # Whatever stopped the replay, what was applied in memory reaches Redis with its
            # offset, so a resume starts right after it.
            await asyncio.gather(*(w for w, _ in in_flight.values()), return_exceptions=True)
            for stored, tally in in_flight.values():
                if not stored.cancelled() and stored.exception() is None:
                    report(tally)
            raise
        for stored, tally in in_flight.values():
            await stored  # a failed write fails the replay
            report(tally)

    def _first_bucket_start(self) -> int | None:
        """The start of the earliest bucket holding data (where the history starts by default)."""
        starts = [s.first_bucket_ms for s in self.states.values() if s.first_bucket_ms is not None]
        return min(starts) if starts else None
