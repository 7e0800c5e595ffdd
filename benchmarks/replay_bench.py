"""`nsm replay` throughput over a pre-filled topic, against a bare consumer in the same run.

    python -m benchmarks.replay_bench [--events N]

The baseline reads the same topic the way the replay does (no group: every partition assigned,
`getmany` in large batches, each value decoded with orjson) and does nothing else; the replay adds
validation, dedup, the exact windows, one fenced Redis step per partition batch, and at the end
the values as of the newest event, the history at every bucket boundary and expiry. The replay
runs twice: as `nsm replay` runs by default (one process per CPU, up to one per partition) and in
a single process. The topic is shared with the other benchmarks (benchmarks/data.py) and reused
when already filled.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from benchmarks.data import BOOTSTRAP, ROOT, events_file, filled_topic
from processor.config import Settings
from processor.definitions import load_definitions
from processor.replay.run import ReplayRequest, replay
from processor.store.client import connect
from processor.store.namespaces import drop


def bare_assign_consume(topic: str, total: int) -> float:
    """Events per second of assign + getmany + orjson decode over the whole topic."""

    async def loop() -> float:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=BOOTSTRAP,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024,
            fetch_max_wait_ms=200,
        )
        await consumer.start()
        try:
            cluster = await consumer._client.fetch_all_metadata()
            tps = [TopicPartition(topic, p) for p in cluster.partitions_for_topic(topic) or ()]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            count, started = 0, time.perf_counter()
            while count < total:
                batches = await consumer.getmany(timeout_ms=1000, max_records=50_000)
                for records in batches.values():
                    for record in records:
                        orjson.loads(record.value)
                    count += len(records)
            return count / (time.perf_counter() - started)
        finally:
            await consumer.stop()

    return asyncio.run(loop())


def replay_run(topic: str, processes: int | None = None) -> dict[str, Any]:
    """One replay of the whole topic into a fresh namespace (dropped after), with `processes`
    as `nsm replay --processes` (None: its default)."""
    catalog = load_definitions(str(ROOT / "definitions"))
    namespace = f"bench-replay-{uuid.uuid4().hex[:8]}"
    settings = Settings()
    request = ReplayRequest(
        namespace=namespace,
        topic=topic,
        bootstrap=BOOTSTRAP,
        catalog=catalog,
        live=f"{namespace}-live",
        processes=processes,
    )

    async def main() -> dict[str, Any]:
        client = await connect(settings.redis_url.get_secret_value())
        try:
            started = time.perf_counter()
            report = await replay(client, settings, request)
            wall = time.perf_counter() - started
            return {
                "processes": report.processes,
                "events": report.events,
                "consume_seconds": round(report.seconds, 2),
                "events_per_s": round(report.events / report.seconds),
                "history_points": report.history_points,
                "history_seconds": round(report.history_seconds, 2),
                "total_seconds": round(wall, 2),
                "events_per_s_end_to_end": round(report.events / wall),
            }
        finally:
            await drop(client, namespace)
            await client.aclose()

    return asyncio.run(main())


def run(topic: str, total: int) -> dict[str, Any]:
    """The figures `make bench` records (benchmarks/run.py calls this)."""
    baseline = bare_assign_consume(topic, total)
    measured = replay_run(topic)
    single = replay_run(topic, processes=1)
    return {
        **measured,
        "baseline_bare_assign_getmany_orjson_events_per_s": round(baseline),
        "ratio_to_baseline": round(measured["events_per_s"] / baseline, 3),
        "one_process_events_per_s": single["events_per_s"],
        "one_process_events_per_s_end_to_end": single["events_per_s_end_to_end"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    topic, total = filled_topic(events_file(args.events))
    print(json.dumps({"topic": topic, "messages": total, **run(topic, total)}, indent=2))


if __name__ == "__main__":
    main()
