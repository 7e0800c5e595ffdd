"""The worker's automatic backfill: a rebuild group's metrics rebuilt from the topic in the
background, then handed over to the live state (what and why: processor/worker/rebuild.py).

A group reads its partition from the first offset the topic still holds up to the group's end
(the offset from which the live stream applies the group's metrics), with a Kafka consumer of its
own outside the consumer group, and applies it to a state that covers the group's metrics only,
deduplicating by the whole catalogue's rule. Each batch goes to the group's own keys beside the
partition's (`PartitionStore` with the group's scope) in the same atomic, fenced step as the live
stream's batches, so a worker killed during a rebuild resumes it from its last batch, with its
ids: exact. Once the group has reached its end, the worker loads what it stored and hands it over
(`Worker._hand_over`, one merge and one atomic step under the partition's lock).

The reading runs in a process of its own: decoding Kafka's records is Python, and in the worker's
process it would take the interpreter lock from the live stream, which then falls far behind. One
process reads every group of the worker side by side (its fetches and writes overlap; it uses
about one core, the live stream keeps the rest). It stops when the worker does (its pipe closes,
and it checks for its parent after every batch), so a worker killed with -9 leaves none behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from processor.config import Settings
from processor.definitions.model import Catalog
from processor.partition.state import BatchOutcome, PartitionState, fingerprints
from processor.replay.processes import receive
from processor.replay.source import batches, new_consumer
from processor.store.client import UNAVAILABLE, connect
from processor.store.partition_store import RedisPartitionStore
from processor.store.protocol import DEFINITION_PREFIX, MetaUpdate, PartitionStore, StoredPartition
from processor.worker.rebuild import COVERED, START, group_end, scope
from processor.worker.telemetry import Telemetry

log = logging.getLogger("nsm.worker.backfill")
# A group's mark once it has read everything up to its end (the end, as its value).
COMPLETE = "complete"
# Records per fetch, as the live stream's.
REBUILD_FETCH_RECORDS = 50_000
EXPIRE_EVERY_S = 5.0
REBUILD_NICENESS = 10
RETRY_S = 2.0
ERRORS = (KafkaError, *UNAVAILABLE)


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
    """What a group stored once it reached its end, and the time from which it holds every
    event (None when the topic still held its beginning)."""

    stored: StoredPartition
    covered_from_ms: int | None


# True once handed over; False when the partition's state was reloaded or fenced meanwhile.
HandOver = Callable[[GroupRebuild, Rebuilt], Awaitable[bool]]


class RebuildFailed(Exception):
    """The rebuild process stopped or failed; the message says how. The group is retried."""


def now_ms() -> int:
    return int(time.time() * 1000)


# ---- the worker's side ------------------------------------------------------------------------


class Rebuilder:
    """Runs a worker's rebuild groups, one at a time, in a process of their own."""

    def __init__(self, settings: Settings, telemetry: Telemetry, event_clock: bool) -> None:
        self.settings = settings
        self.telemetry = telemetry
        self.event_clock = event_clock
        self._process: _ReaderProcess | None = None

    def close(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None

    async def run(self, job: GroupRebuild, catalog: Catalog, live: PartitionStore,
                  hand_over: HandOver) -> None:  # fmt: skip
        """Rebuild the group until it is handed over; retried after Kafka or Redis errors.
        `live` is the store of the partition's namespace (the group's keys are beside it).
        Cancelling it stops the reading; a hand-over under way is finished first."""
        store = live.scoped(scope(job.group))
        while True:
            try:
                await self._read(job, catalog, live.namespace)
                rebuilt = await self._load(job, catalog, store)
                break
            except (RebuildFailed, *ERRORS) as exc:
                log.warning(
                    "rebuild interrupted; retrying",
                    extra={"partition": job.partition, "group": job.group, "error": repr(exc)},
                )
                await asyncio.sleep(RETRY_S)
            finally:
                self._remaining(job, None)
        critical = asyncio.ensure_future(hand_over(job, rebuilt))
        try:
            handed = await asyncio.shield(critical)
        except asyncio.CancelledError:
            await critical
            raise
        if handed:
            # What the group stored is merged: its keys go (a crash before this leaves them to
            # the next restore, which deletes groups no metric waits for).
            await store.clear(job.partition)

    async def _read(self, job: GroupRebuild, catalog: Catalog, namespace: str) -> None:
        if self._process is None or not self._process.alive:
            self._process = _ReaderProcess()
        request = _ReadRequest(self.settings, catalog, namespace, job.partition, job.group,
                               job.metrics, self.event_clock)  # fmt: skip
        await self._process.read(request, lambda remaining: self._remaining(job, remaining))

    async def _load(self, job: GroupRebuild, catalog: Catalog, store: PartitionStore) -> Rebuilt:
        """What the group stored, to hand over."""
        stored = await store.load(job.partition)
        wanted = {m: f for m, f in fingerprints(catalog).items() if m in job.metrics}
        if not _holds(stored, wanted, job.end):
            raise RebuildFailed("the rebuild's stored state is not complete")
        covered = stored.marks.get(COVERED)
        return Rebuilt(stored, int(covered) if covered else None)

    def _remaining(self, job: GroupRebuild, remaining: int | None) -> None:
        gauge = self.telemetry.rebuild_remaining.labels(partition=str(job.partition))
        gauge.set(remaining or 0)


def _holds(stored: StoredPartition, wanted: Mapping[str, str], end: int) -> bool:
    """Whether a group's stored state is for its metrics as now defined and read to its end."""
    defined = all(stored.definitions.get(m) == f for m, f in wanted.items())
    return defined and stored.marks.get(COMPLETE) == str(end)


@dataclass(frozen=True)
class _ReadRequest:
    settings: Settings
    catalog: Catalog
    namespace: str
    partition: int
    group: str
    metrics: tuple[str, ...]
    event_clock: bool


class _ReaderProcess:
    """A child process that reads the groups asked of it side by side (started with `spawn`: no
    inherited event loop, threads or sockets). Messages on its pipe are tagged by group."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process: BaseProcess = context.Process(
            target=_serve, args=(child, os.getpid()), name="nsm-rebuild", daemon=True
        )
        self._process.start()
        child.close()
        self._inboxes: dict[str, asyncio.Queue[tuple[str, Any]]] = {}
        self._dispatch: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self._process.is_alive() and (self._dispatch is None or not self._dispatch.done())

    async def read(self, request: _ReadRequest, progress: Callable[[int], None]) -> None:
        """Have the group read to its end; RebuildFailed when it fails or the process stops.
        Cancelled, it asks the process to stop the group and waits until it has."""
        group = request.group
        inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._inboxes[group] = inbox
        if self._dispatch is None:
            self._dispatch = asyncio.ensure_future(self._route())
        extra = {"partition": request.partition, "group": group, "metrics": list(request.metrics)}
        try:
            self._send(("read", request))
            while True:
                kind, payload = await inbox.get()
                if kind == "remaining":
                    progress(payload)
                elif kind == "started":
                    log.info("rebuilding metrics from the topic", extra={**extra, **payload})
                elif kind == "done":
                    log.info("rebuild caught up with the live stream",
                             extra={**extra, "seconds": payload})  # fmt: skip
                    return
                else:
                    raise RebuildFailed(payload)
        except asyncio.CancelledError:
            await self._cancel(group, inbox)
            raise
        finally:
            self._inboxes.pop(group, None)

    async def _cancel(self, group: str, inbox: asyncio.Queue[tuple[str, Any]]) -> None:
        """Stop a group's reading; once this returns the process writes nothing more of it."""
        try:
            self._send(("cancel", group))
            async with asyncio.timeout(_STOP_S):
                while (await inbox.get())[0] not in ("cancelled", "done", "failed", "stopped"):
                    pass
        except (RebuildFailed, TimeoutError):
            self.stop()  # no answer: the process goes, and every group with it

    def _send(self, message: tuple[Any, ...]) -> None:
        try:
            self._conn.send(message)
        except OSError as exc:
            raise RebuildFailed(f"the rebuild process stopped ({exc!r})") from None

    async def _route(self) -> None:
        """Hand each message of the pipe to its group; when the process stops, tell them all."""
        try:
            while True:
                kind, group, payload = await receive(self._conn)
                inbox = self._inboxes.get(group)
                if inbox is not None:
                    inbox.put_nowait((kind, payload))
        except (EOFError, OSError) as exc:
            for inbox in self._inboxes.values():
                inbox.put_nowait(("stopped", f"the rebuild process stopped ({exc!r})"))

    def stop(self) -> None:
        if self._process.is_alive() and self._process.pid is not None:
            with contextlib.suppress(OSError):
                os.kill(self._process.pid, signal.SIGKILL)
        self._process.join(5)
        self._conn.close()
        if self._dispatch is not None:
            self._dispatch.cancel()


_STOP_S = 10.0


# ---- the child ----------------------------------------------------------------------------------


def _serve(conn: Connection, parent: int) -> None:
    # The state has no reference cycles; the cyclic collector would only rescan it.
    gc.disable()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the worker's to handle
    # Background work: where the cores are busy, the live stream goes first; where they are
    # not (the live stream keeps up with its topic), the rebuild takes what is left.
    with contextlib.suppress(OSError):
        os.nice(REBUILD_NICENESS)
    try:
        asyncio.run(_serve_groups(conn, parent))
    finally:
        conn.close()


async def _serve_groups(conn: Connection, parent: int) -> None:
    """Read each group asked for in a task of its own, until the worker's pipe closes."""
    reading: dict[str, asyncio.Task[None]] = {}
    # Two threads: two groups apply their batches at once (each group one batch at a time).
    applier = ThreadPoolExecutor(max_workers=2, thread_name_prefix="nsm-rebuild")

    def send(kind: str, group: str, payload: Any = None) -> None:
        with contextlib.suppress(OSError):  # the worker is gone: the loop below ends
            conn.send((kind, group, payload))

    async def run(request: _ReadRequest) -> None:
        started = time.monotonic()
        group = request.group
        try:
            await read_group(request, parent, applier, lambda k, p: send(k, group, p))
        except asyncio.CancelledError:
            send("cancelled", group)
            raise
        except Exception as error:
            send("failed", group, repr(error))
        else:
            send("done", group, round(time.monotonic() - started, 2))
        finally:
            reading.pop(group, None)

    try:
        while True:
            try:
                command, payload = await receive(conn)
            except (EOFError, OSError):
                return  # the worker is gone
            if command == "read":
                reading[payload.group] = asyncio.ensure_future(run(payload))
            elif command == "cancel":
                task = reading.get(payload)
                if task is None:
                    send("cancelled", payload)
                else:
                    task.cancel()
    finally:
        for task in list(reading.values()):
            task.cancel()
        await asyncio.gather(*reading.values(), return_exceptions=True)
        applier.shutdown(wait=False, cancel_futures=True)


async def read_group(
    request: _ReadRequest,
    parent: int,
    applier: ThreadPoolExecutor,
    report: Callable[[str, Any], None],
) -> None:
    """Read the group's partition up to its end into its keys, resuming from what they hold;
    `report` gets ("started", {from_offset, to_offset}) and ("remaining", messages). Batches
    are applied in `applier`'s thread."""
    p, end = request.partition, group_end(request.group)
    client = await connect(request.settings.redis_url.get_secret_value())
    store = RedisPartitionStore(client, request.namespace, scope(request.group))
    state = PartitionState(
        request.catalog, p, input_format=request.settings.input_format, metrics=request.metrics
    )
    consumer = new_consumer(request.settings.kafka_bootstrap, request.settings)
    try:
        await consumer.start()
        tp = TopicPartition(request.settings.topic, p)
        begin = (await consumer.beginning_offsets([tp]))[tp]
        stored = await store.load(p)
        if _holds(stored, state.fingerprints, end):
            return  # read to its end before (the worker stopped before the hand-over)
        resumable = (
            stored.offset is not None
            and all(stored.definitions.get(m) == f for m, f in state.fingerprints.items())
            and stored.offset + 1 >= begin
        )
        if resumable:
            state.restore(stored)
        elif stored.offset is not None or stored.definitions or stored.marks:
            # Other definitions, or the topic dropped what it had not read yet: start again.
            await store.clear(p)
        position = begin if state.offset is None else state.offset + 1
        report("started", {"from_offset": position, "to_offset": end})
        reader = _GroupReader(request, state, store, begin, parent, applier,
                              lambda n: report("remaining", n))  # fmt: skip
        if position < end:
            await reader.consume(consumer, position, end)
        marks = {COMPLETE: str(end)}
        if state.offset is None:
            # Nothing before the end to read: from when the live stream's own events are all
            # there is, when the topic no longer holds its beginning.
            marks.update(reader.first_marks(await _first_timestamp(consumer, tp, begin)))
        await store.update_meta(p, MetaUpdate(marks))
    finally:
        await consumer.stop()
        await client.aclose()


class _GroupReader:
    def __init__(
        self, request: _ReadRequest, state: PartitionState, store: PartitionStore, begin: int,
        parent: int, applier: ThreadPoolExecutor, progress: Callable[[int], None],
    ) -> None:  # fmt: skip
        self.request, self.state, self.store = request, state, store
        self.begin, self.parent, self.progress = begin, parent, progress
        # The next batch is fetched while this one is applied (in a thread: the native core
        # runs without the interpreter lock) and written.
        self._applier = applier

    def first_marks(self, first_ms: int | None) -> dict[str, str]:
        """The marks of the group's first batch: where it started, its definitions, and the
        time from which it holds every event when the topic no longer held offset 0."""
        marks = {START: str(self.begin)}
        marks.update({DEFINITION_PREFIX + m: f for m, f in self.state.fingerprints.items()})
        marks.update(self.state.id_marks())
        if self.begin > 0 and first_ms is not None:
            marks[COVERED] = str(first_ms)
        return marks

    async def consume(self, consumer: AIOKafkaConsumer, position: int, end: int) -> None:
        p = self.request.partition
        in_flight: asyncio.Future[None] | None = None
        next_expiry = time.monotonic() + EXPIRE_EVERY_S
        try:
            async for _, records in batches(consumer, self.request.settings.topic, {p: position},
                                            {p: end}, REBUILD_FETCH_RECORDS):  # fmt: skip
                if os.getppid() != self.parent:
                    raise SystemExit("the worker is gone")
                if in_flight is not None:
                    await in_flight
                in_flight = asyncio.ensure_future(self._apply_and_write(records, end))
                if time.monotonic() >= next_expiry:
                    await in_flight
                    in_flight = None
                    await self._expire()
                    next_expiry = time.monotonic() + EXPIRE_EVERY_S
            if in_flight is not None:
                await in_flight
        finally:
            if in_flight is not None and not in_flight.done():
                # Stopped: the batch being written is written whole, or not at all.
                await asyncio.gather(in_flight, return_exceptions=True)

    async def _apply_and_write(self, records: list[Any], end: int) -> None:
        state, p = self.state, self.request.partition
        meta = None
        if state.offset is None:
            meta = MetaUpdate(self.first_marks(int(records[0].timestamp)))
        skew, event_clock = self.request.settings.max_future_skew_ms, self.request.event_clock

        def apply() -> BatchOutcome:
            return state.apply_batch(records, now_ms(), skew, event_clock)

        outcome = await asyncio.get_running_loop().run_in_executor(self._applier, apply)
        if outcome.new_offset is None:
            return
        await self.store.apply_batch(
            p, outcome.previous_offset, outcome.new_offset, outcome.max_ts,
            outcome.writes, outcome.ids, None, meta,
        )  # fmt: skip
        self.progress(max(0, end - outcome.new_offset - 1))

    async def _expire(self) -> None:
        clock = self.state.max_ts if self.request.event_clock else now_ms()
        if clock is not None:
            partition = self.request.partition
            writes = self.state.expire(clock)
            await self.store.write_state(partition, self.state.offset, writes)
            await self.store.expire(partition, self.state.forget_ids_until(clock))


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
