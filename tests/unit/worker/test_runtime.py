"""The worker's runtime on the in-memory store (tests/memory_store.py), without Kafka or Redis:
what it loads, where it seeks, what it writes, what a fenced write does, who exports, and how it
follows a swapped namespace. Kafka's consumer is replaced by a recorder of seeks and commits."""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition

from processor.config import Settings
from processor.definitions import load_definitions
from processor.engine import compute_metrics
from processor.engine.compute import ComputeResult
from processor.generate import RecordStream, plan_history
from processor.worker.runtime import Worker
from processor.worker.telemetry import Telemetry
from tests.memory_store import MemoryStateStore

ROOT = Path(__file__).resolve().parents[3]
CATALOG = load_definitions(ROOT / "definitions")
TOPIC = "events"


@dataclass(frozen=True)
class Record:
    offset: int
    value: bytes | None
    key: bytes | None = None


@dataclass
class RecordingConsumer:
    """What the worker asks of its aiokafka consumer, recorded."""

    partitions: int
    seeks: list[tuple[int, int | None]] = field(default_factory=list)  # None: to the beginning
    commits: list[dict[int, int]] = field(default_factory=list)
    stopped: bool = False

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp.partition, offset))

    async def seek_to_beginning(self, tp: TopicPartition) -> None:
        self.seeks.append((tp.partition, None))

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append({tp.partition: o for tp, o in offsets.items()})

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: 0 for tp in tps}

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: 0 for tp in tps}

    async def position(self, tp: TopicPartition) -> int:
        return 0

    async def topics(self) -> set[str]:
        return {TOPIC}

    async def stop(self) -> None:
        self.stopped = True


def records(seed: int, count: int, first_offset: int = 0) -> list[Record]:
    config = plan_history(seed=seed, accounts=12, days=9, max_events=count,
                          end_ms=1_795_168_800_000)  # fmt: skip
    return [Record(first_offset + i, value, key)
            for i, (key, value) in enumerate(RecordStream(config))][:count]  # fmt: skip


def split(stream: list[Record], partitions: int) -> list[list[Record]]:
    """The records by key, as Kafka's producer would send them (an account's events share a
    partition, which exactness across partitions needs), each partition's offsets from 0."""
    parts: list[list[Record]] = [[] for _ in range(partitions)]
    for record in stream:
        part = parts[zlib.crc32(record.key or b"") % partitions]
        part.append(Record(len(part), record.value, record.key))
    return parts


def run(scenario: Callable[[Worker, RecordingConsumer, MemoryStateStore], Awaitable[Any]],
        backend: MemoryStateStore | None = None, partitions: int = 1,
        namespace: str = "unit") -> Any:  # fmt: skip
    backend = backend or MemoryStateStore()
    settings = Settings(namespace=namespace, clock="events", topic=TOPIC)
    worker = Worker(settings, CATALOG, Telemetry(CATALOG), backend=backend)
    consumer = RecordingConsumer(partitions)

    async def kafka() -> None:
        worker.consumer = consumer  # type: ignore[assignment]

    async def main() -> Any:
        worker._start_kafka = kafka  # type: ignore[method-assign]
        await worker.start()
        try:
            return await scenario(worker, consumer, backend)
        finally:
            await worker.stop()

    return asyncio.run(main())


async def export(worker: Worker) -> dict[str, Any] | None:
    """A tick now (not held back by the pause after the last summary); what it exports."""
    worker._next_summary = 0.0
    await worker.tick()
    snapshot = worker.telemetry.values.snapshot
    if snapshot is None:
        return None
    return ComputeResult(snapshot.as_of_ms, dict(snapshot.values)).to_json()


def expected(values: list[Record]) -> dict[str, Any]:
    now = int(time.time() * 1000)
    return compute_metrics([r.value for r in values if r.value], CATALOG, now_ms=now).to_json()


def tp(partition: int) -> TopicPartition:
    return TopicPartition(TOPIC, partition)


def test_a_write_the_store_lost_is_fenced_and_the_partition_read_again_from_there():
    """A Redis failover to a replica that missed the last writes: the stored offset is back at
    99 while the worker's mirror is at 199. Its next write is fenced, it reloads the partition,
    seeks to 100 and reads again from there; the export is exact afterwards."""
    stream = records(7, 300)

    async def scenario(worker: Worker, consumer: RecordingConsumer, store: MemoryStateStore):
        await worker.acquire({tp(0)})
        assert consumer.seeks == [(0, None)]
        await worker.apply(tp(0), stream[:100])
        store.snapshot("unit", 0)  # what the replica has
        await worker.apply(tp(0), stream[100:200])
        assert await store.partitions("unit").stored_offset(0) == 199
        store.lose_writes_after_snapshot("unit", 0)  # the master dies, the replica takes over

        await worker.apply(tp(0), stream[200:])
        assert consumer.seeks[-1] == (0, 100), "sought just past the offset the store holds"
        assert await store.partitions("unit").stored_offset(0) == 99, "the batch was dropped"
        assert [c for c in store.calls if c[0] == "load"] == [("load", "unit", 0)] * 2

        await worker.apply(tp(0), stream[100:])  # what the consumer reads from 100 on
        assert await store.partitions("unit").stored_offset(0) == 299
        return await export(worker)

    assert run(scenario) == expected(stream)


def test_a_restarted_worker_continues_from_the_stored_state():
    stream = records(8, 240)
    backend = MemoryStateStore()

    async def first(worker: Worker, consumer: RecordingConsumer, store: MemoryStateStore):
        await worker.acquire({tp(0)})
        await worker.apply(tp(0), stream[:150])

    async def second(worker: Worker, consumer: RecordingConsumer, store: MemoryStateStore):
        await worker.acquire({tp(0)})
        assert consumer.seeks == [(0, 150)]
        await worker.apply(tp(0), stream[140:])  # a re-read overlap is skipped, not counted twice
        return await export(worker)

    run(first, backend)
    assert run(second, backend) == expected(stream)


def test_the_newest_event_time_is_not_exported_until_known_and_is_known_from_the_store():
    """No placeholder: a worker that has applied nothing and loaded no state has no
    nsm_last_event_timestamp_seconds sample; one restarted on a stored state has its time."""
    stream = records(8, 120)
    backend = MemoryStateStore()
    newest = max(datetime.fromisoformat(orjson.loads(r.value)["timestamp"]).timestamp()
                 for r in stream if r.value)  # fmt: skip

    def newest_event(worker: Worker) -> float | None:
        return worker.telemetry.registry.get_sample_value("nsm_last_event_timestamp_seconds")

    async def first(worker: Worker, consumer: RecordingConsumer, store: MemoryStateStore):
        assert newest_event(worker) is None
        await worker.acquire({tp(0)})
        assert newest_event(worker) is None  # nothing stored, nothing applied
        await worker.apply(tp(0), stream)
        return newest_event(worker)

    async def second(worker: Worker, consumer: RecordingConsumer, store: MemoryStateStore):
        await worker.acquire({tp(0)})
        return newest_event(worker)

    assert run(first, backend) == run(second, backend) == newest


def test_only_the_holder_of_partition_0_exports():
    stream = records(9, 200)

    async def scenario(worker: Worker, consumer: RecordingConsumer, store: MemoryStateStore):
        await worker.acquire({tp(0), tp(1)})
        for partition, part in enumerate(split(stream, 2)):
            await worker.apply(tp(partition), part)
        exported = await export(worker)
        assert worker.telemetry.registry.get_sample_value("nsm_exporter") == 1
        await worker.release({tp(0)})
        assert await export(worker) is None
        assert worker.telemetry.registry.get_sample_value("nsm_exporter") == 0
        summaries = await store.partitions("unit").read_summaries([0, 1])
        assert set(summaries) == {0, 1}, "both partitions' summaries were written"
        return exported

    assert run(scenario, partitions=2) == expected(stream)


def test_a_swapped_pointer_makes_the_worker_serve_the_new_namespace():
    old, new = records(10, 120), records(11, 80)
    backend = MemoryStateStore()

    async def fill(worker: Worker, consumer: RecordingConsumer, store: MemoryStateStore):
        await worker.acquire({tp(0)})
        await worker.apply(tp(0), new)

    run(fill, backend, namespace="rebuilt")

    async def scenario(worker: Worker, consumer: RecordingConsumer, store: MemoryStateStore):
        await worker.acquire({tp(0)})
        await worker.apply(tp(0), old)
        assert await export(worker) == expected(old)
        store.pointers["unit"] = "rebuilt"
        swapped = await export(worker)
        assert worker.physical_namespace == "rebuilt"
        assert consumer.seeks[-1] == (0, len(new)), "continues from the new namespace's offset"
        return swapped

    assert run(scenario, backend) == expected(new)


def test_stopping_closes_the_store_and_the_consumer():
    backend = MemoryStateStore()

    async def nothing(worker: Worker, consumer: RecordingConsumer, store: MemoryStateStore):
        return consumer

    consumer = run(nothing, backend)
    assert backend.closed and consumer.stopped


@pytest.mark.parametrize("partitions", [1, 3])
def test_partitions_merge_into_one_export_as_of_the_newest_event_of_any(partitions: int):
    stream = records(12, 90)

    async def scenario(worker: Worker, consumer: RecordingConsumer, store: MemoryStateStore):
        await worker.acquire({tp(p) for p in range(partitions)})
        for partition, part in enumerate(split(stream, partitions)):
            await worker.apply(tp(partition), part)
        return await export(worker)

    assert run(scenario, partitions=partitions) == expected(stream)
