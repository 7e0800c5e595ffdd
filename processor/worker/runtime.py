"""The streaming worker's loop: Kafka batches -> partition state -> one atomic Redis step each.

Why not a faust agent for the input topic: faust's per-message dispatch runs at about 10k events/s
here, against about 300k for aiokafka's batch fetch (BENCHMARKS.md), so the hot topic is read by
an aiokafka consumer running inside the faust app as a service. Faust provides the app around it:
lifecycle and signals, the timer that drives `tick`, and the web server for /metrics and /health.

Exactly-once effects: Redis, not Kafka, holds what was applied. When a partition is assigned, its
state and last applied offset are loaded from Redis and the consumer seeks just past that offset.
Each batch's state changes and new offset are written in one fenced step (store/protocol.py; on
Redis a Lua script); Kafka offsets are committed only so that lag shows in the usual tools. The
same fence makes a Redis failover safe: a promoted replica that missed the last writes holds an
older offset, the next write is fenced, and the partition is reloaded and read again from Kafka.

Definition changes: a metric that is new or defined differently than its stored state is rebuilt
from the topic in the background (rebuild.py decides, backfill.py reads) and exported only once
it is complete; the others go on without a pause. SIGHUP and --watch-definitions reload the
definitions the same way, without a restart (reload.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from processor.config import Settings
from processor.definitions.model import Catalog
from processor.engine.summaries import finish
from processor.events import MessageFailed
from processor.kafka import clients, unreadable
from processor.kafka.dead_letters import dead_letter_topic, send_dead_letters
from processor.kafka.unreadable import UnreadableBatch
from processor.partition.state import BatchOutcome, PartitionState, fingerprints
from processor.partition.step import BatchStep, StepOptions
from processor.store.client import UNAVAILABLE, RedisClient, connect
from processor.store.partition_store import RedisStateStore
from processor.store.payloads import NewIds
from processor.store.protocol import (
    PENDING,
    Fenced,
    MetaUpdate,
    PartitionStore,
    StateStore,
    StoredPartition,
)
from processor.worker.backfill import GroupRebuild, Rebuilder, Rebuilt
from processor.worker.readiness import PartitionReport, combine
from processor.worker.rebuild import (
    COVERED,
    DLQ_UNTIL,
    READY_AT,
    covered_marks,
    dumps,
    pending_token,
    plan_restore,
    scope,
    state_marks,
)
from processor.worker.telemetry import Telemetry

log = logging.getLogger("nsm.worker")
REDIS_ERRORS = UNAVAILABLE
MAX_BACKOFF_S = 5.0
# Waiting for Kafka and Redis at start: the first retry after a second, then twice as long each
# time, up to half a minute (a service that is down for long is not hammered).
START_BACKOFF_S = (1.0, 30.0)
# The tick's Kafka calls (commit, end offsets) double as the liveness check of Kafka: the batch
# fetch does not fail while the broker is away, and these would only time out after the client's
# request timeout (40 s), holding up the tick meanwhile.
KAFKA_TICK_TIMEOUT_S = 5.0
# How long a stopping worker waits for the batches in hand to be written.
STOP_DRAIN_TIMEOUT_S = 5.0
# How long a stopping worker waits for a rebuild's hand-over under way.
STOP_REBUILD_TIMEOUT_S = 5.0
# Records per fetch, over the partitions held. Larger fetches give the two applying threads more
# to share and cost fewer Redis steps and ticks per event (make bench: 0.60-0.67 x the bare
# consume loop at 50,000, against 0.58 at 20,000).
MAX_FETCH_RECORDS = 50_000


def now_ms() -> int:
    return int(time.time() * 1000)


def _short(error: BaseException) -> str:
    """An error for a log line: its type and message on one line."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


async def retry(what: str, action: Callable[[], Awaitable[Any]], on_failure: Callable[[], None],
                errors: tuple[type[BaseException], ...]) -> Any:  # fmt: skip
    """Run `action` until it succeeds, backing off up to MAX_BACKOFF_S; report each failure."""
    delay = 0.1
    while True:
        try:
            return await action()
        except errors as exc:
            on_failure()
            log.warning("retrying", extra={"what": what, "error": repr(exc), "delay_s": delay})
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.worker.release(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.worker.acquire(assigned)


class Worker:
    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        telemetry: Telemetry,
        backend: StateStore | None = None,
    ) -> None:
        """`backend`: where the partitions' state is kept; by default Redis at
        `NSM_REDIS_URL`, connected at start (`store` is there only from then on)."""
        self.settings = settings
        self.catalog = catalog
        self.telemetry = telemetry
        self.topic = settings.topic
        self.group_id = f"nsm-{settings.namespace}"
        self.event_clock = settings.clock == "events"
        self.backend = backend
        self.physical_namespace = settings.namespace
        self._options = StepOptions(settings.max_future_skew_ms, self.event_clock)
        # Until `start` resolves the namespace pointer, the logical name's own partitions.
        self._store: PartitionStore | None = None
        self._step: BatchStep | None = None
        if backend is not None:
            self._use_store(backend.partitions(self.physical_namespace))
        self.partitions: dict[int, PartitionState] = {}
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.kafka_up = False
        self.redis_up = False
        self._committable: dict[TopicPartition, int] = {}
        # States of revoked partitions until the rebalance's assignment: kept if given back.
        self._parked: dict[int, PartitionState] = {}
        # Batches are applied in threads, where the native core runs without the GIL, so the
        # event loop goes on fetching and writing meanwhile. One batch per partition at a time,
        # applied then written: the lock also keeps the tick's expiry and summaries off it.
        self._appliers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="nsm-apply")
        self._locks: dict[int, asyncio.Lock] = {}
        # Seeks per partition: a batch fetched before a seek is not applied (run, apply).
        self._seeks: Counter[int] = Counter()
        self._loading: set[int] = set()  # assigned partitions whose state is being loaded
        # Per partition, messages the processor failed on and not yet stored past: {offset:
        # detail}; they are counted as unprocessable when their batch is applied again.
        self._unprocessable: dict[int, dict[int, str]] = {}
        self._markers_seen = 0  # unreadable.made when the last fetch was scanned for markers
        self._unreadable: list[dict[str, Any]] = []  # the last unreadable batches, for /health
        self._unreadable_count = 0
        # Rebuilds of new or changed metrics, per partition (backfill.py).
        self.rebuilder = Rebuilder(settings, telemetry, self.event_clock)
        self._rebuilds: dict[int, list[asyncio.Task[None]]] = {}
        # Partitions started again from the topic's beginning: their first batch says whether the
        # topic still held it, and the invalid messages up to an offset went to the DLQ already.
        self._cover_from_first: set[int] = set()
        self._dlq_until: dict[int, int] = {}
        # The last offset fetched per partition since its last seek (`_caught_up`).
        self._fetched_to: dict[int, int] = {}
        self._reloading = asyncio.Lock()
        self._last_gc = time.monotonic()
        self._next_summary = 0.0
        self._stopping = False
        self._started = False  # Kafka and Redis answered and the clients run
        self._loop_done: asyncio.Event | None = None  # set when `run` has returned

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Wait for Redis and Kafka, then start the Kafka clients.

        Each attempt tries both (so /health names exactly what is missing) and logs one line;
        the attempts come further apart each time (START_BACKOFF_S). The Kafka clients start
        once both answer, Redis first: a partition assigned is loaded from it at once.
        """
        # The engine's state has no reference cycles; scanning it for them costs more than the
        # work itself, so collection runs on the tick, over young objects only.
        gc.disable()
        delay, longest = START_BACKOFF_S
        for attempt in itertools.count(1):
            missing: dict[str, str] = {}
            try:
                if self.backend is None:
                    self.backend = RedisStateStore(await self._connect_redis())
                self.physical_namespace = await self._resolve_namespace()
                # Before Kafka starts: a partition assigned is loaded from the store at once.
                self._use_store(self.backend.partitions(self.physical_namespace))
                self._redis_ok()
            except REDIS_ERRORS as exc:
                self._redis_down()
                missing["redis"] = _short(exc)
            try:
                if missing:
                    await self._ensure_topics()  # only to tell whether Kafka answers too
                else:
                    await self._start_kafka()
                self._kafka_ok()
            except (KafkaError, OSError) as exc:
                self._kafka_down()
                missing["kafka"] = _short(exc)
            if not missing:
                break
            log.warning(
                f"waiting for {' and '.join(missing)}",
                extra={"attempt": attempt, "retry_in_s": delay, "errors": missing,
                       "kafka": self.settings.kafka_bootstrap,
                       "redis": self.settings.redis_url_for_logs},
            )  # fmt: skip
            await asyncio.sleep(delay)
            delay = min(delay * 2, longest)
        self._started = True
        log.info(
            "worker started",
            extra={"topic": self.topic, "group": self.group_id,
                   "namespace": self.physical_namespace, "redis": self.settings.redis_url_for_logs,
                   "clock": self.settings.clock},
        )  # fmt: skip

    async def _connect_redis(self) -> RedisClient:
        return await connect(self.settings.redis_url.get_secret_value())

    @property
    def store(self) -> PartitionStore:
        assert self._store is not None, "the worker has not started"
        return self._store

    async def _ensure_topics(self) -> int | None:
        """The dead-letter topic made if missing; the input topic's partitions (None: none yet)."""
        return await clients.ensure_dead_letter_topic(
            self.settings, self.topic, dead_letter_topic(self.topic)
        )

    async def _start_kafka(self) -> None:
        """Start the dead-letter producer and the batch consumer; on failure, neither runs."""
        if await self._ensure_topics() is None:
            log.warning(
                "input topic does not exist yet; waiting for it", extra={"topic": self.topic}
            )
        producer = clients.producer(self.settings, f"{self.group_id}-dlq")
        consumer = clients.batch_consumer(self.settings, self.group_id)
        try:
            await producer.start()
            consumer.subscribe([self.topic], listener=_Rebalance(self))
            await consumer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await consumer.stop()
            with contextlib.suppress(Exception):
                await producer.stop()
            raise
        self.producer, self.consumer = producer, consumer

    async def stop(self) -> None:
        self._stopping = True
        # Rebuilds stop first (each resumes from what it wrote); a hand-over under way ends.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_REBUILD_TIMEOUT_S):
                for partition in list(self._rebuilds):
                    await self._cancel_rebuilds(partition)
        self.rebuilder.close()
        if self._loop_done is not None:
            # Let the batches in hand be applied and written (the loop stops after its current
            # fetch) before the clients close under them; a step waiting on Redis is given up.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(STOP_DRAIN_TIMEOUT_S):
                    await self._loop_done.wait()
        if self.consumer is not None:
            with contextlib.suppress(KafkaError):
                await self._commit()
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()
        self._appliers.shutdown(wait=True)
        if self.backend is not None:
            await self.backend.aclose()
        log.info("worker stopped")

    def _use_store(self, store: PartitionStore) -> None:
        self._store = store
        self._step = BatchStep(store, self._options)

    @property
    def step(self) -> BatchStep:
        assert self._step is not None, "the worker has not started"
        return self._step

    # ---- partitions come and go ------------------------------------------------------------

    async def acquire(self, assigned: set[TopicPartition]) -> None:
        # The consumer fetches for the new partitions while they load, one after the other; the
        # batch loop leaves their records to be read again after the load's seek (`_fetch`).
        self._loading.update(tp.partition for tp in assigned)
        for tp in sorted(assigned, key=lambda t: t.partition):
            try:
                await self._load(tp)
            except Exception:
                # The batch loop loads a partition it has no state for before applying anything
                # of it, so a failure here delays that partition; it never skips its events.
                log.exception("loading a partition failed", extra={"partition": tp.partition})
            finally:
                self._loading.discard(tp.partition)
        self._parked.clear()  # the partitions that went to other workers
        for partition in [p for p in self._unprocessable if p not in self.partitions]:
            del self._unprocessable[partition]  # their new owner finds its failures itself
        self.telemetry.partitions.set(len(self.partitions))
        log.info("partitions assigned", extra={"partitions": sorted(self.partitions)})

    async def _load(self, tp: TopicPartition) -> None:
        """Load the partition's state from Redis (retrying while Redis is away), seek the
        consumer just past the last offset applied and start its rebuilds."""
        await retry("redis", lambda: self._load_once(tp), self._redis_down, REDIS_ERRORS)

    async def _load_once(self, tp: TopicPartition) -> None:
        # A rebuild of the partition's former state ends first (a hand-over under way included):
        # the state loaded next sees what it wrote, and starts the rebuilds it still needs.
        await self._cancel_rebuilds(tp.partition)
        parked = self._parked.pop(tp.partition, None)
        if parked is not None and await self.store.still_holds(
            tp.partition, parked.offset, parked.fingerprints, self._marks_of(parked)
        ):
            # Revoked and given back with nothing written in between (an eager rebalance revokes
            # every partition, then assigns most back): the mirror is what Redis holds, and
            # reloading it would stall the worker for seconds per rebalance.
            state = parked
        else:
            state = await self._restore(tp)
        self.partitions[tp.partition] = state
        self._export_newest_event()  # known from the stored state before any new event
        assert self.consumer is not None
        self._seeks[tp.partition] += 1
        self._fetched_to.pop(tp.partition, None)
        if state.offset is None:
            await self.consumer.seek_to_beginning(tp)
        else:
            self.consumer.seek(tp, state.offset + 1)
        self._start_rebuilds(tp.partition, state)

    @staticmethod
    def _marks_of(state: PartitionState) -> dict[str, str | None]:
        """The meta marks that say what a state holds, as Redis stores them for it."""
        return {
            PENDING: pending_token(state.pending) or None,
            READY_AT: None if state.ready_at is None else str(state.ready_at),
        }

    async def _restore(self, tp: TopicPartition) -> PartitionState:
        """The partition's state for the running definitions: unchanged metrics loaded (those
        still pending with what the live stream applied to them), changed and new ones left to
        rebuilds, removed ones deleted (rebuild.py, `plan_restore`)."""
        p = tp.partition
        stored = await self.store.load(p)
        plan = plan_restore(stored, self.catalog, now_ms())
        for group in plan.stale_shadows:
            await self.store.scoped(scope(group)).clear(p)
        state = PartitionState(self.catalog, p, input_format=self.settings.input_format)
        marks = dict(plan.marks)
        if plan.reset:
            if stored.offset is not None:
                log.warning(
                    "every metric is rebuilt from the topic's beginning",
                    extra={"partition": p, "reason": plan.reset_reason},
                )
            await self.store.clear(p)
            begin, end = await retry("kafka", lambda: self._offsets(tp), self._kafka_down,
                                     (KafkaError, OSError))  # fmt: skip
            if end > begin:
                # Nothing is complete before the partition's end as of now has been applied.
                state.ready_at = end
                marks[READY_AT] = str(end)
            self._cover_from_first.add(p)
            stored = StoredPartition(None, None)
        else:
            for name in plan.changed:
                log.warning(
                    "definition new or changed: rebuilding it from the topic; not exported "
                    "until it is complete",
                    extra={"metric": name, "partition": p, "group": plan.new_group},
                )
            for name in plan.removed:
                log.warning("definition removed: its state is deleted",
                            extra={"metric": name, "partition": p})  # fmt: skip
            # Loaded state is pruned as of the clock its batches were applied by. Changed and
            # new metrics are filed under new ids: nothing stored is read for them.
            state.restore(stored, None if self.event_clock else now_ms())
            state.pending, state.covered = dict(plan.pending), dict(plan.covered)
            ready_at = stored.marks.get(READY_AT)
            state.ready_at = int(ready_at) if ready_at else None
        dlq_until = marks.get(DLQ_UNTIL, stored.marks.get(DLQ_UNTIL))
        if dlq_until:
            self._dlq_until[p] = int(dlq_until)
        marks.update(state_marks(self.catalog))
        marks.update(state.id_marks())
        await self.store.update_meta(p, MetaUpdate(marks, plan.unmarks), plan.drop)
        if stored.legacy is not None:
            await self.store.migrate(p, stored, state.all_writes())
            log.info("partition state migrated to format 2", extra={"partition": p})
        return state

    async def _offsets(self, tp: TopicPartition) -> tuple[int, int]:
        """The partition's first offset and its end offset now."""
        assert self.consumer is not None
        begin = (await self.consumer.beginning_offsets([tp]))[tp]
        end = (await self.consumer.end_offsets([tp]))[tp]
        return begin, end

    async def release(self, revoked: set[TopicPartition]) -> None:
        with contextlib.suppress(KafkaError):
            await self._commit()
        for tp in revoked:
            # Its next owner resumes its rebuilds from what they wrote; a hand-over under way
            # finishes before the partition goes.
            await self._cancel_rebuilds(tp.partition)
            state = self.partitions.pop(tp.partition, None)
            if state is not None:
                self._parked[tp.partition] = state
            self._committable.pop(tp, None)
            with contextlib.suppress(KeyError):
                self.telemetry.lag.remove(self.topic, str(tp.partition))
        self.telemetry.partitions.set(len(self.partitions))

    # ---- the hot loop ----------------------------------------------------------------------

    async def run(self) -> None:
        """Fetch, apply and write, with two fetches in hand: the batches of one are applied (in
        threads) and written while the next is fetched and decoded. A partition's batches still
        go one at a time and in order, each applied, then written (`_partition_lock`)."""
        assert self.consumer is not None
        self._loop_done = asyncio.Event()
        in_flight: list[asyncio.Task[None]] = []
        started: list[asyncio.Task[None]] = []
        try:
            while not self._stopping:
                started = [asyncio.create_task(step) for step in await self._fetch()]
                await asyncio.gather(*in_flight)
                in_flight, started = started, []
            await asyncio.gather(*in_flight)
        except BaseException:
            # Cancelled or failed: no step outlives the loop (each is an atomic, fenced write).
            for task in (*in_flight, *started):
                task.cancel()
            raise
        finally:
            self._loop_done.set()

    async def _fetch(self) -> list[Coroutine[Any, Any, None]]:
        """The next fetch's batches, each as the step that applies and writes it."""
        assert self.consumer is not None
        try:
            batches = await self.consumer.getmany(timeout_ms=200, max_records=MAX_FETCH_RECORDS)
            if batches:
                # An empty fetch proves nothing: it is also what a fetch gets while the broker is
                # away. The tick checks Kafka when no records come.
                self._kafka_ok()
        except KafkaError as exc:
            self._kafka_down()
            log.warning("kafka fetch failed", extra={"error": repr(exc)})
            await asyncio.sleep(1)
            return []
        # What each partition is now, before anything here awaits (a load seeks).
        fetched = [(tp, records, self.partitions.get(tp.partition), self._seeks[tp.partition])
                   for tp, records in batches.items() if records]  # fmt: skip
        for tp, records, _, _ in fetched:
            self._fetched_to[tp.partition] = records[-1].offset
        # Markers of unreadable record batches are rare: fetches are scanned for them only when
        # one was made since the last scan.
        scan = unreadable.made != self._markers_seen
        self._markers_seen = unreadable.made
        steps: list[Coroutine[Any, Any, None]] = []
        for tp, records, state, seeks in fetched:
            if state is None:
                if tp.partition in self._loading:
                    continue  # read again from where its load seeks to
                # Assigned, but its state did not load: load it and seek back to just past its
                # stored offset; these records are fetched again from there.
                log.warning("records for a partition without state; loading it",
                            extra={"partition": tp.partition})  # fmt: skip
                await self._load(tp)
                continue
            if not scan:
                steps.append(self._apply_fetched(tp, records, state, seeks))
                continue
            # In offset order: a partition's steps take its lock in the order they are made.
            for run in unreadable.split(records):
                if type(run) is UnreadableBatch:
                    steps.append(self._pass_unreadable(tp, run, state, seeks))
                else:
                    assert isinstance(run, list)
                    steps.append(self._apply_fetched(tp, run, state, seeks))
        return steps

    async def _pass_unreadable(
        self, tp: TopicPartition, batch: UnreadableBatch, state: PartitionState, seeks: int
    ) -> None:
        """A record batch that cannot be read: a named error (log, counter, /health), and its
        offsets stored as passed (docs/semantics.md, Unreadable record batches). Its messages
        are not applied, and not sent to the dead-letter topic: they could not be read."""
        async with self._partition_lock(tp.partition):
            if self.partitions.get(tp.partition) is not state or self._seeks[tp.partition] != seeks:
                return
            if state.offset is not None and batch.last_offset <= state.offset:
                return
            log.error(
                "unreadable record batch: its offsets are passed over",
                extra={"topic": batch.topic, "partition": batch.partition,
                       "first_offset": batch.offset, "last_offset": batch.last_offset,
                       "codec": batch.codec, "error": batch.error},
            )  # fmt: skip
            self.telemetry.unreadable_batches.labels(partition=str(tp.partition)).inc()
            self._unreadable_count += 1
            self._unreadable = [*self._unreadable[-4:], {
                "partition": batch.partition, "offsets": [batch.offset, batch.last_offset],
                "codec": batch.codec, "error": batch.error}]  # fmt: skip
            await self._write_batch(tp, [], state, state.pass_over(batch.last_offset))

    def _partition_lock(self, partition: int) -> asyncio.Lock:
        return self._locks.setdefault(partition, asyncio.Lock())

    async def apply(self, tp: TopicPartition, records: list[Any]) -> None:
        """Apply a batch of a partition as it is held now, and write it."""
        await self._apply_fetched(
            tp, records, self.partitions[tp.partition], self._seeks[tp.partition]
        )

    async def _apply_fetched(
        self, tp: TopicPartition, records: list[Any], state: PartitionState, seeks: int
    ) -> None:
        """Apply a fetched batch to `state` and write it, unless the partition was revoked or
        sought since the fetch (`seeks` counts the seeks): then what it holds is read again from
        where the consumer was sought to, and this batch is dropped."""
        started = time.perf_counter()
        async with self._partition_lock(tp.partition):
            if self.partitions.get(tp.partition) is not state or self._seeks[tp.partition] != seeks:
                return
            try:
                outcome = await self.step.apply_in(
                    self._appliers, state, records, now_ms(),
                    self._unprocessable.get(tp.partition),
                )  # fmt: skip
            except MessageFailed as failure:
                await self._skip_failed(tp, failure)
                return
            if outcome.new_offset is None or not await self._write_batch(
                tp, records, state, outcome
            ):
                return
            self._forget_unprocessable(tp.partition, outcome.new_offset)
        self._count(outcome)
        self.telemetry.batch_events.observe(len(records))
        self.telemetry.batch_seconds.observe(time.perf_counter() - started)

    async def _skip_failed(self, tp: TopicPartition, failure: MessageFailed) -> None:
        """The processor failed on one message of a batch and the partition's state may hold
        part of it: reload the partition from Redis (which holds nothing of the batch) and read
        the batch again, this time with the message counted as unprocessable."""
        log.warning(
            "a message could not be processed: it goes to the dead-letter topic, and its batch "
            "is applied again without it",
            extra={"partition": tp.partition, "offset": failure.position,
                   "error": failure.detail},
            exc_info=failure.__cause__,
        )  # fmt: skip
        self._unprocessable.setdefault(tp.partition, {})[failure.position] = failure.detail
        await self._load(tp)

    def _forget_unprocessable(self, partition: int, stored_offset: int) -> None:
        failed = self._unprocessable.get(partition)
        if failed:
            kept = {o: d for o, d in failed.items() if o > stored_offset}
            if kept:
                self._unprocessable[partition] = kept
            else:
                del self._unprocessable[partition]

    async def _write_batch(
        self, tp: TopicPartition, records: list[Any], state: PartitionState, outcome: BatchOutcome
    ) -> bool:
        """The batch's invalid messages to the dead-letter topic, then its atomic Redis step;
        False when another worker wrote the partition meanwhile (it is reloaded)."""
        sent_until = self._dlq_until.get(tp.partition, -1)
        if outcome.invalid and outcome.invalid[-1].offset > sent_until:
            keys = {r.offset: r.key for r in records}
            rejected = [(keys.get(m.offset), m.value, m.offset, m.reason, m.detail)
                        for m in outcome.invalid if m.offset > sent_until]  # fmt: skip
            assert self.producer is not None
            producer = self.producer
            await retry("kafka", lambda: send_dead_letters(producer, self.topic, tp.partition,
                        rejected), self._kafka_down, (KafkaError, OSError))  # fmt: skip
        meta = self._batch_meta(tp.partition, records, state, outcome)
        try:
            await retry("redis", lambda: self.step.write(state, outcome, meta),
                        self._redis_down, REDIS_ERRORS)  # fmt: skip
        except Fenced as fenced:
            log.warning(
                "partition written by another worker; reloading",
                extra={"partition": tp.partition, "stored_offset": fenced.stored_offset},
            )
            await self._load(tp)
            return False
        self._redis_ok()
        self._batch_written(tp.partition, state, meta)
        # A rebalance may have revoked the partition while the batch was written (the write
        # itself is fenced): count the batch, but commit only for partitions still held.
        if self.partitions.get(tp.partition) is state:
            assert outcome.new_offset is not None
            self._committable[tp] = outcome.new_offset + 1
        return True

    def _batch_meta(
        self, partition: int, records: list[Any], state: PartitionState, outcome: BatchOutcome
    ) -> MetaUpdate:
        """What a batch changes in the partition's marks, fenced by the pending rebuilds the
        state knows of: the coverage of a partition started from the topic's beginning (known
        from its first message), and the end of its catching up."""
        marks: dict[str, str] = {}
        done: tuple[str, ...] = ()
        if partition in self._cover_from_first and records and records[0].offset > 0:
            # The topic no longer holds its beginning: every metric holds the events from the
            # time of the first message it still holds.
            first = getattr(records[0], "timestamp", None)
            if first is not None:
                marks.update(covered_marks(state.fingerprints, first))
        assert outcome.new_offset is not None
        if state.ready_at is not None and outcome.new_offset + 1 >= state.ready_at:
            done = (READY_AT,)
        return MetaUpdate(marks, done, pending_token(state.pending))

    def _batch_written(self, partition: int, state: PartitionState, meta: MetaUpdate) -> None:
        """The batch's marks are stored: the state says so too."""
        if partition in self._cover_from_first:
            self._cover_from_first.discard(partition)
            if COVERED in meta.set:
                state.covered = {k: int(v) for k, v in orjson.loads(meta.set[COVERED]).items()}
        if READY_AT in meta.delete and state.ready_at is not None:
            state.ready_at = None
            log.info("partition caught up: its metrics are complete",
                     extra={"partition": partition, "offset": state.offset})  # fmt: skip

    def _count(self, outcome: BatchOutcome) -> None:
        t = self.telemetry
        t.processed.inc(outcome.applied)
        if outcome.duplicates:
            t.duplicates.inc(outcome.duplicates)
        for invalid in outcome.invalid:
            t.invalid.labels(reason=invalid.reason).inc()
        for metric, count in outcome.late.items():
            t.late.labels(metric=metric).inc(count)
        if outcome.max_ts is not None:
            self._export_newest_event(outcome.max_ts)

    def _export_newest_event(self, *newest: int) -> None:
        """The newest event time the held partitions know of; not exported while unknown."""
        held = [*newest, *(s.max_ts for s in self.partitions.values() if s.max_ts is not None)]
        if held:
            self.telemetry.last_event.set(max(held) / 1000)

    # ---- time passing ----------------------------------------------------------------------

    async def tick(self) -> None:
        """Expiry, summaries, export, lag, commits and the namespace pointer; about every second.

        Summaries share the event loop with consumption, so they run at most a fifth of the time:
        after one that took `d` seconds the next waits at least `4 d` (fresh values when idle,
        throughput first under load).
        """
        if not self._started:
            return  # still waiting for Kafka and Redis (`start`)
        if time.monotonic() >= self._next_summary:
            started = time.monotonic()
            await self._summarize_and_export()
            spent = time.monotonic() - started
            self._next_summary = time.monotonic() + 4 * spent
        try:
            async with asyncio.timeout(KAFKA_TICK_TIMEOUT_S):
                await self._commit()
                await self._update_lag()
                await self._caught_up()
            self._kafka_ok()
        except (KafkaError, TimeoutError) as exc:
            self._kafka_down()
            log.warning("tick: kafka unavailable", extra={"error": repr(exc)})
        if time.monotonic() - self._last_gc > 30:
            gc.collect(1)
            gc.freeze()
            self._last_gc = time.monotonic()

    async def _summarize_and_export(self) -> None:
        try:
            await self._follow_namespace()
            clock = await self._clock()
            for partition, state in list(self.partitions.items()):
                local = state.max_ts if self.event_clock else clock
                async with self._partition_lock(partition):
                    if self.partitions.get(partition) is not state:
                        continue  # revoked or reloaded meanwhile
                    if local is not None and not await self._expire(partition, state, local):
                        continue
                    summary = self._encoded_summary(state, clock)
                await self.store.write_summary(partition, summary)
            self._redis_ok()
            if 0 in self.partitions:
                await self._export(clock)
            else:
                self.telemetry.withdraw(holds_partitions=bool(self.partitions))
        except REDIS_ERRORS as exc:
            self._redis_down()
            log.warning("tick: redis unavailable", extra={"error": repr(exc)})

    async def _expire(self, partition: int, state: PartitionState, clock: int) -> bool:
        """Expiry as of the clock, written fenced like a batch; False when another worker wrote
        the partition meanwhile (it is reloaded)."""
        writes = state.expire(clock)
        try:
            await retry("redis", lambda: self.store.write_state(partition, state.offset, writes),
                        self._redis_down, REDIS_ERRORS)  # fmt: skip
        except Fenced:
            log.warning("partition written by another worker; reloading",
                        extra={"partition": partition})  # fmt: skip
            await self._load(TopicPartition(self.topic, partition))
            return False
        await self.store.expire(partition, state.forget_ids_until(clock))
        return True

    async def _clock(self) -> int:
        """Now for the wall clock; for the event clock, the newest event of any partition."""
        if not self.event_clock:
            return now_ms()
        newest = await self.store.max_event_times(range(self._partition_count()))
        return max(newest.values()) if newest else now_ms()

    def _partition_count(self) -> int:
        assert self.consumer is not None
        found = self.consumer.partitions_for_topic(self.topic)
        return max(found) + 1 if found else max(self.partitions, default=0) + 1

    def _encoded_summary(self, state: PartitionState, clock: int) -> bytes:
        """The partition's summary of its complete metrics, saying which they are."""
        report = PartitionReport(state.summarize(clock), state.ready_fingerprints(), state.covered)
        return report.encode(self.catalog)

    async def _export(self, clock: int) -> None:
        """Every partition's summary merged; the metrics complete in all of them exported."""
        count = self._partition_count()
        raw = await self.store.read_summaries(range(count))
        reports: list[PartitionReport | None] = []
        for partition in range(count):
            payload = raw.get(partition)
            report = None
            if payload is not None:
                try:
                    report = PartitionReport.decode(self.catalog, payload)
                except ValueError:
                    log.warning("unreadable stored summary", extra={"partition": partition})
            reports.append(report)
        merged, statuses = combine(self.catalog, fingerprints(self.catalog), reports, clock)
        self.telemetry.publish(clock, finish(self.catalog, merged), statuses)

    async def _commit(self) -> None:
        if self.consumer is not None and self._committable:
            offsets, self._committable = self._committable, {}
            await self.consumer.commit(offsets)

    async def _caught_up(self) -> None:
        """A partition catching up from the topic's beginning whose last records before its end
        offset were transaction markers (no event, so no batch reaches that end): complete once
        the consumer's position has passed the end and every record fetched is applied."""
        assert self.consumer is not None
        for partition, state in list(self.partitions.items()):
            if state.ready_at is None:
                continue
            tp = TopicPartition(self.topic, partition)
            if await self.consumer.position(tp) < state.ready_at:
                continue
            async with self._partition_lock(partition):
                if self.partitions.get(partition) is not state or state.ready_at is None:
                    continue
                if not self._all_fetched_applied(partition, state):
                    continue  # a fetched batch is still to be applied
                await self.store.update_meta(partition, MetaUpdate(delete=(READY_AT,)))
                state.ready_at = None
            log.info("partition caught up: its metrics are complete",
                     extra={"partition": partition, "offset": state.offset})  # fmt: skip

    async def _update_lag(self) -> None:
        if self.consumer is None:
            return
        if not self.partitions:
            # No lag to measure, but this call is also the tick's check that Kafka answers
            # (a worker left without partitions, in a group with more workers than partitions).
            await self.consumer.topics()
            return
        tps = [TopicPartition(self.topic, p) for p in self.partitions]
        ends = await self.consumer.end_offsets(tps)
        for tp, end in ends.items():
            state = self.partitions.get(tp.partition)
            if state is not None:
                applied_next = 0 if state.offset is None else state.offset + 1
                if self._all_fetched_applied(tp.partition, state):
                    # Past transaction markers too, which carry no event and are never applied.
                    applied_next = max(applied_next, await self.consumer.position(tp))
                self.telemetry.lag.labels(self.topic, str(tp.partition)).set(
                    max(0, end - applied_next)
                )

    def _all_fetched_applied(self, partition: int, state: PartitionState) -> bool:
        """Whether every record fetched for the partition since its last seek is applied."""
        fetched = self._fetched_to.get(partition)
        return fetched is None or (state.offset is not None and fetched <= state.offset)

    # ---- rebuilds of new and changed metrics (rebuild.py, backfill.py) -----------------------

    def _start_rebuilds(self, partition: int, state: PartitionState) -> None:
        if self._stopping:
            return
        groups: dict[str, list[str]] = {}
        for metric, group in state.pending.items():
            groups.setdefault(group, []).append(metric)
        tasks = []
        for group, metrics in sorted(groups.items()):
            job = GroupRebuild(partition, group, tuple(sorted(metrics)), state)
            task = asyncio.create_task(
                self.rebuilder.run(job, self.catalog, self.store, self._hand_over),
                name=f"nsm-rebuild-p{partition}-{group}",
            )
            task.add_done_callback(_log_failure)
            tasks.append(task)
        if tasks:
            self._rebuilds[partition] = tasks

    async def _cancel_rebuilds(self, partition: int) -> None:
        for task in self._rebuilds.pop(partition, []):
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _hand_over(self, job: GroupRebuild, rebuilt: Rebuilt) -> bool:
        """Merge a caught-up group into the live state and store it in one atomic step fenced
        by the offset and the pending rebuilds, under the partition's lock: from then on the
        group's metrics are complete (True). A state reloaded since the group started has its
        own rebuilds (False)."""
        p = job.partition
        async with self._partition_lock(p):
            live = self.partitions.get(p)
            if live is not job.live:
                return False
            metrics = [m for m in job.metrics if live.pending.get(m) == job.group]
            pending = {m: g for m, g in live.pending.items() if m not in metrics}
            covered = dict(live.covered)
            if rebuilt.covered_from_ms is not None:
                covered.update({m: rebuilt.covered_from_ms for m in metrics})
            writes = live.take_over(rebuilt.stored, metrics)
            marks = {COVERED: dumps(covered)} if covered else {}
            if pending:
                marks[PENDING] = pending_token(pending)
            meta = MetaUpdate(marks, () if pending else (PENDING,), pending_token(live.pending))
            offset = live.offset
            assert offset is not None, "a group rebuilds a partition that has an offset"
            try:
                await retry("redis", lambda: self.store.apply_batch(
                    p, offset, offset, None, writes, NewIds(), None, meta), self._redis_down,
                    REDIS_ERRORS)  # fmt: skip
            except Fenced:
                log.warning("partition written by another worker; reloading",
                            extra={"partition": p})  # fmt: skip
                # Reloaded outside this task: the reload ends this task's rebuilds first.
                asyncio.get_running_loop().call_soon(
                    lambda: asyncio.ensure_future(self._load(TopicPartition(self.topic, p)))
                )
                return False
            live.pending, live.covered = pending, covered
        log.info(
            "rebuilt metrics handed over: complete from now on",
            extra={"partition": p, "group": job.group, "metrics": metrics},
        )
        return True

    # ---- definitions reloaded (SIGHUP, --watch-definitions; reload.py) ----------------------

    async def reload(self, catalog: Catalog) -> None:
        """Run `catalog` from now on. When what shapes a state changed (a definition
        fingerprint), each partition is restored with it, under its lock: changed and new
        metrics are rebuilt, removed ones deleted, the others loaded as they are stored. Titles,
        tiers, alerts and formulas only change what is exported."""
        async with self._reloading:
            restore = fingerprints(catalog) != fingerprints(self.catalog)
            self.catalog = catalog
            self.telemetry.set_catalog(catalog)
            if not restore:
                return
            self._parked.clear()
            for partition in list(self.partitions):
                async with self._partition_lock(partition):
                    await self._load(TopicPartition(self.topic, partition))

    # ---- namespace hand-over (docs/backfill.md) --------------------------------------------

    async def _resolve_namespace(self) -> str:
        assert self.backend is not None
        return await self.backend.resolve_namespace(self.settings.namespace)

    async def _follow_namespace(self) -> None:
        physical = await self._resolve_namespace()
        if physical == self.physical_namespace:
            return
        log.warning("namespace swapped: reloading partitions",
                    extra={"from": self.physical_namespace, "to": physical})  # fmt: skip
        self.physical_namespace = physical
        assert self.backend is not None
        self._use_store(self.backend.partitions(physical))
        self._parked.clear()  # states of the old namespace: never kept for the new one
        for partition in list(self.partitions):
            await self._load(TopicPartition(self.topic, partition))

    # ---- health ----------------------------------------------------------------------------

    def _kafka_ok(self) -> None:
        self.kafka_up = True
        self.telemetry.dependency_up.labels(dependency="kafka").set(1)

    def _kafka_down(self) -> None:
        self.kafka_up = False
        self.telemetry.dependency_up.labels(dependency="kafka").set(0)

    def _redis_ok(self) -> None:
        self.redis_up = True
        self.telemetry.dependency_up.labels(dependency="redis").set(1)

    def _redis_down(self) -> None:
        self.redis_up = False
        self.telemetry.dependency_up.labels(dependency="redis").set(0)

    def health(self) -> dict[str, Any]:
        """`status` is `ok` (HTTP 200) once started with Kafka and Redis answering, else
        `starting` (waiting for them at start) or `degraded` (retrying); `missing` names the
        services that did not answer."""
        answering = {"kafka": self.kafka_up, "redis": self.redis_up}
        missing = [name for name, up in answering.items() if not up]
        status = "starting" if not self._started else "degraded" if missing else "ok"
        return {
            "status": status,
            "missing": missing,
            # Not a reason to restart: the worker goes on past them (their count stays).
            "unreadable_record_batches": {
                "count": self._unreadable_count,
                "last": self._unreadable,
            },
            "kafka": "up" if self.kafka_up else "down",
            "redis": "up" if self.redis_up else "down",
            "partitions": sorted(self.partitions),
            "namespace": self.physical_namespace,
            "exporter": 0 in self.partitions,
        }


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("rebuild failed", exc_info=task.exception(),
                  extra={"task": task.get_name()})  # fmt: skip
