"""A rebalance that revokes a partition while its batch is being written to Redis.

aiokafka runs the rebalance listener while the worker awaits the batch's write; the worker must
neither crash (it once took the newest event time over the partitions it still held: none) nor
commit an offset for a partition it no longer holds. Real Redis; the rebalance is provoked
exactly there, in the write, since a real one lands there only by chance.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import redis
from aiokafka import TopicPartition

from processor.config import Settings
from processor.definitions import load_definitions
from processor.store.partition_store import PartitionKeys
from processor.worker.partition import Message, PartitionState
from processor.worker.runtime import Worker
from processor.worker.telemetry import Telemetry
from tests.integration.worker.conftest import EXAMPLE_DEFINITIONS

NEWEST_MS = 1_795_000_000_000


def test_a_partition_revoked_during_its_write_is_counted_not_committed_and_nothing_crashes(
    redis_url: str, redis_client: redis.Redis, unique_name: str
):
    catalog = load_definitions(EXAMPLE_DEFINITIONS)
    settings = Settings(redis_url=redis_url, namespace=unique_name, topic=f"{unique_name}-t",
                        clock="events")  # fmt: skip
    telemetry = Telemetry(catalog)
    tp = TopicPartition(settings.topic, 0)
    records = [
        Message(i, orjson.dumps({"type": "report_sent", "account_id": f"a{i % 3}",
                                 "event_id": f"e{i}", "timestamp": NEWEST_MS - 1000 * i}))
        for i in range(5)
    ]  # fmt: skip

    async def scenario() -> Worker:
        worker = Worker(settings, catalog, telemetry)
        worker.partitions[0] = PartitionState(catalog, 0)
        real_write = worker.store.apply_batch

        async def write_then_lose_the_partition(*args: Any, **kwargs: Any) -> None:
            await real_write(*args, **kwargs)
            await worker.release({tp})

        worker.store.apply_batch = write_then_lose_the_partition  # type: ignore[method-assign]
        try:
            await worker.apply(tp, records)
        finally:
            await worker.redis.aclose()
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
