"""What a worker does with a partition's state in a rebalance, against real Redis and Kafka.

- Revoked while its batch is being written (aiokafka runs the rebalance listener while the worker
  awaits the write): the worker must neither crash (it once took the newest event time over the
  partitions it still held: none) nor commit an offset for a partition it no longer holds. The
  rebalance is provoked exactly there, in the write, since a real one lands there only by chance.
- Revoked and given back (an eager rebalance revokes every partition): the state in memory is
  kept when nobody wrote the partition in between, and reloaded from Redis when someone did.
- Revoked or sought after a fetch whose batch still waits (the worker applies one fetch while it
  makes the next): the batch is dropped, since what it holds is read again from the new position.
- Stopped with batches in hand: they are written before the clients close.
- Records fetched for a partition the rebalance is still loading: left to that load.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import redis
from aiokafka import AIOKafkaConsumer, TopicPartition

from processor.config import Settings
from processor.definitions import load_definitions
from processor.store.partition_store import PartitionKeys
from processor.worker.partition import Message, PartitionState
from processor.worker.runtime import Worker
from processor.worker.telemetry import Telemetry
from tests.integration.worker.conftest import EXAMPLE_DEFINITIONS
from tests.integration.worker.harness import (
    Producer,
    create_topic,
    delete_groups,
    delete_topics,
    redis_worker,
)

NEWEST_MS = 1_795_000_000_000


def _records(first: int, count: int, newest_ms: int = NEWEST_MS) -> list[Message]:
    return [
        Message(i, orjson.dumps({"type": "report_sent", "account_id": f"a{i % 3}",
                                 "event_id": f"e{i}", "timestamp": newest_ms - 1000 * i}))
        for i in range(first, first + count)
    ]  # fmt: skip


def test_a_partition_revoked_during_its_write_is_counted_not_committed_and_nothing_crashes(
    redis_url: str, redis_client: redis.Redis, unique_name: str
):
    catalog = load_definitions(EXAMPLE_DEFINITIONS)
    settings = Settings(redis_url=redis_url, namespace=unique_name, topic=f"{unique_name}-t",
                        clock="events")  # fmt: skip
    telemetry = Telemetry(catalog)
    tp = TopicPartition(settings.topic, 0)
    records = _records(0, 5)

    async def scenario() -> Worker:
        worker = await redis_worker(settings, catalog, telemetry)
        worker.partitions[0] = PartitionState(catalog, 0)
        real_write = worker.store.apply_batch

        async def write_then_lose_the_partition(*args: Any, **kwargs: Any) -> None:
            await real_write(*args, **kwargs)
            await worker.release({tp})

        worker.store.apply_batch = write_then_lose_the_partition  # type: ignore[method-assign]
        try:
            await worker.apply(tp, records)
        finally:
            await worker.backend.aclose()
        return worker

    try:
        worker = asyncio.run(scenario())
        assert worker.partitions == {}
        assert tp not in worker._committable
        sample = telemetry.registry.get_sample_value
        assert sample("nsm_last_event_timestamp_seconds") == NEWEST_MS / 1000
        assert sample("nsm_events_processed_total") == len(records)
        # The write itself went through, fenced as always: the next owner continues from it.
        assert redis_client.hget(PartitionKeys(unique_name, 0).meta, "offset") == b"4"
    finally:
        for key in redis_client.scan_iter(match=f"nsm:{unique_name}:*"):
            redis_client.unlink(key)


def test_a_batch_fetched_before_its_partition_was_sought_or_revoked_is_dropped(
    redis_url: str, redis_client: redis.Redis, unique_name: str
):
    catalog = load_definitions(EXAMPLE_DEFINITIONS)
    settings = Settings(redis_url=redis_url, namespace=unique_name, topic=f"{unique_name}-t",
                        clock="events")  # fmt: skip
    tp = TopicPartition(settings.topic, 0)
    meta = PartitionKeys(unique_name, 0).meta

    async def scenario() -> list[bytes | None]:
        worker = await redis_worker(settings, catalog, Telemetry(catalog))
        stored = []
        try:
            fetched_by = worker.partitions[0] = PartitionState(catalog, 0)
            seeks = worker._seeks[0]
            worker._seeks[0] += 1  # sought (a reload) after the fetch
            await worker._apply_fetched(tp, _records(0, 5), fetched_by, seeks)
            stored.append(redis_client.hget(meta, "offset"))
            worker.partitions[0] = PartitionState(catalog, 0)  # revoked, then assigned again
            await worker._apply_fetched(tp, _records(0, 5), fetched_by, worker._seeks[0])
            stored.append(redis_client.hget(meta, "offset"))
            assert fetched_by.offset is None
            await worker._apply_fetched(tp, _records(0, 5), worker.partitions[0], worker._seeks[0])
            stored.append(redis_client.hget(meta, "offset"))
        finally:
            await worker.backend.aclose()
        return stored

    try:
        assert asyncio.run(scenario()) == [None, None, b"4"]
    finally:
        for key in redis_client.scan_iter(match=f"nsm:{unique_name}:*"):
            redis_client.unlink(key)


def test_a_partition_given_back_keeps_its_state_unless_another_worker_wrote_it_meanwhile(
    redis_url: str, redis_client: redis.Redis, kafka_bootstrap: str, unique_name: str
):
    catalog = load_definitions(EXAMPLE_DEFINITIONS)
    topic = f"{unique_name}-t"
    create_topic(kafka_bootstrap, topic, 1)
    settings = Settings(redis_url=redis_url, namespace=unique_name, topic=topic, clock="events",
                        kafka_bootstrap=kafka_bootstrap)  # fmt: skip
    tp = TopicPartition(topic, 0)
    group = f"{unique_name}-g"

    async def scenario() -> None:
        worker = await redis_worker(settings, catalog, Telemetry(catalog))
        other = await redis_worker(settings, catalog, Telemetry(catalog))
        # Assigned by hand, in a group of its own so that the worker's commits have a home.
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group,
                                    enable_auto_commit=False)  # fmt: skip
        await consumer.start()
        consumer.assign([tp])
        worker.consumer = other.consumer = consumer
        try:
            await worker.acquire({tp})
            await worker.apply(tp, _records(0, 5))
            held = worker.partitions[0]

            await worker.release({tp})
            await worker.acquire({tp})
            assert worker.partitions[0] is held  # nothing written in between: kept
            assert await consumer.position(tp) == 5

            # The partition goes to another worker, which writes it, and then comes back.
            await worker.release({tp})
            await other.acquire({tp})
            await other.apply(tp, _records(5, 4))
            await other.release({tp})
            await other.acquire(set())  # the same rebalance gives it nothing this time
            await worker.acquire({tp})
            reloaded = worker.partitions[0]
            assert reloaded is not held
            assert reloaded.offset == 8 and await consumer.position(tp) == 9
            expected = PartitionState(catalog, 0)
            expected.apply_batch(_records(0, 9), NEWEST_MS, 300_000, True)
            assert reloaded.summarize(NEWEST_MS) == expected.summarize(NEWEST_MS)
            # A worker keeps nothing for partitions that went elsewhere.
            assert worker._parked == {} and other._parked == {}
        finally:
            await consumer.stop()
            await worker.backend.aclose()
            await other.backend.aclose()

    try:
        asyncio.run(scenario())
    finally:
        delete_groups(kafka_bootstrap, [group])
        delete_topics(kafka_bootstrap, topic)
        for key in redis_client.scan_iter(match=f"nsm:{unique_name}:*"):
            redis_client.unlink(key)


def _one_partition_topic(
    redis_url: str, kafka_bootstrap: str, unique_name: str, records: int
) -> Settings:
    """A topic of one partition holding `records` events, and a worker's settings for it."""
    topic = f"{unique_name}-t"
    create_topic(kafka_bootstrap, topic, 1)
    producer = Producer(kafka_bootstrap, topic)
    producer.send((0, None, m.value) for m in _records(0, records))
    producer.close()
    return Settings(redis_url=redis_url, namespace=unique_name, topic=topic, clock="events",
                    kafka_bootstrap=kafka_bootstrap)  # fmt: skip


def test_stop_lets_the_batches_in_hand_be_written_before_the_clients_close(
    redis_url: str, redis_client: redis.Redis, kafka_bootstrap: str, unique_name: str
):
    """A worker stopped under load (SIGTERM in a deployment) has a batch being written and the
    next fetched: both are written before Redis and Kafka close, instead of a write retrying on a
    closed connection while the process exits."""
    catalog = load_definitions(EXAMPLE_DEFINITIONS)
    settings = _one_partition_topic(redis_url, kafka_bootstrap, unique_name, records=600)
    topic = settings.topic
    tp = TopicPartition(topic, 0)
    group = f"{unique_name}-g"

    async def scenario() -> tuple[asyncio.Task[None], int | None]:
        worker = await redis_worker(settings, catalog, Telemetry(catalog))
        # Small fetches, so that there are several; a group, for the commit when stopping.
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group,
                                    enable_auto_commit=False,
                                    max_partition_fetch_bytes=20_000)  # fmt: skip
        await consumer.start()
        consumer.assign([tp])
        worker.consumer = consumer
        await worker.acquire({tp})
        real_write = worker.store.apply_batch
        writing = asyncio.Event()

        async def slow_write(*args: Any, **kwargs: Any) -> None:
            writing.set()
            await asyncio.sleep(0.5)
            await real_write(*args, **kwargs)

        worker.store.apply_batch = slow_write  # type: ignore[method-assign]
        loop = asyncio.create_task(worker.run())
        await asyncio.wait([loop, asyncio.ensure_future(writing.wait())], timeout=30,
                           return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        assert writing.is_set(), loop
        await worker.stop()
        return loop, worker.partitions[0].offset

    try:
        loop, applied = asyncio.run(scenario())
        assert loop.done() and not loop.cancelled() and loop.exception() is None
        assert applied is not None and applied > 0
        # Everything applied in memory reached Redis.
        assert (
            redis_client.hget(PartitionKeys(unique_name, 0).meta, "offset") == str(applied).encode()
        )
    finally:
        delete_topics(kafka_bootstrap, topic)
        for key in redis_client.scan_iter(match=f"nsm:{unique_name}:*"):
            redis_client.unlink(key)


def test_records_of_a_partition_still_loading_are_left_to_its_load(
    redis_url: str, redis_client: redis.Redis, kafka_bootstrap: str, unique_name: str
):
    """The consumer fetches for newly assigned partitions while the rebalance loads them one
    after the other. Their records are left to be read again after the load's seek: loading them
    from the batch loop too restored each such partition twice, with a warning at every start."""
    catalog = load_definitions(EXAMPLE_DEFINITIONS)
    settings = _one_partition_topic(redis_url, kafka_bootstrap, unique_name, records=5)
    topic = settings.topic
    tp = TopicPartition(topic, 0)

    async def fetch_until_read(worker: Worker, consumer: AIOKafkaConsumer) -> list[Any]:
        for _ in range(50):
            steps = await worker._fetch()
            if await consumer.position(tp) > 0:
                return steps
        raise AssertionError("nothing fetched")

    async def scenario() -> None:
        worker = await redis_worker(settings, catalog, Telemetry(catalog))
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
        await consumer.start()
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        worker.consumer = consumer
        try:
            worker._loading.add(0)  # being loaded by the rebalance
            assert await fetch_until_read(worker, consumer) == []
            assert 0 not in worker.partitions and worker._seeks[0] == 0  # left to its load
            worker._loading.clear()  # its load failed: the batch loop loads it
            consumer.seek(tp, 0)
            for _ in range(50):
                steps = await worker._fetch()
                if 0 in worker.partitions:
                    break
            assert steps == [] and worker._seeks[0] == 1  # loaded and sought; nothing applied
            assert worker.partitions[0].offset is None
        finally:
            await consumer.stop()
            await worker.backend.aclose()

    try:
        asyncio.run(scenario())
    finally:
        delete_topics(kafka_bootstrap, topic)
        for key in redis_client.scan_iter(match=f"nsm:{unique_name}:*"):
            redis_client.unlink(key)
