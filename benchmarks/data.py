"""Benchmark inputs, made once and reused: a generated JSON Lines file and a topic filled from it.

Both are named by seed and size, so a rerun finds them (the topic is checked by its end offsets).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("NSM_BENCH_CACHE", ROOT / ".stack" / "bench"))
BOOTSTRAP = os.environ.get("NSM_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
PARTITIONS = 4


def events_file(events: int, seed: int = 42) -> Path:
    """A generated stream of exactly `events` lines (made with `nsm generate` when missing)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"events-seed{seed}-{events}.jsonl"
    if not path.exists():
        partial = path.with_suffix(".partial")
        print(f"generating {events:,} events into {path.name} ...", flush=True)
        subprocess.run(
            [sys.executable, "-m", "processor.cli", "generate", "--seed", str(seed),
             "--accounts", "2000", "--events", str(events), "--out", str(partial)],
            check=True, cwd=ROOT,
        )  # fmt: skip
        partial.rename(path)
    return path


def topic_end_offsets(topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        return {tp.partition: offset for tp, offset in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def filled_topic(path: Path, partitions: int = PARTITIONS) -> tuple[str, int]:
    """A topic of `partitions` holding every line of `path`, keyed by account_id; (name, message
    count)."""
    lines = path.read_bytes().splitlines()
    topic = f"nsm-bench-{path.stem}" + ("" if partitions == PARTITIONS else f"-p{partitions}")
    if sum(topic_end_offsets(topic).values()) == len(lines):
        return topic, len(lines)
    recreate_topic(topic, partitions)
    print(f"filling topic {topic} with {len(lines):,} events ...", flush=True)
    producer = bench_producer()
    for line in lines:
        send_line(producer, topic, line)
    producer.flush()
    producer.close()
    return topic, len(lines)


def recreate_topic(topic: str, partitions: int = PARTITIONS) -> None:
    """An empty topic of `partitions` partitions by that name (deleted first when it exists)."""
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        if topic in admin.list_topics():
            admin.delete_topics([topic])
            time.sleep(2)
        admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        admin.close()


def bench_producer() -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=BOOTSTRAP, acks=1, linger_ms=50, batch_size=512 * 1024,
    )  # fmt: skip


def send_line(producer: KafkaProducer, topic: str, line: bytes) -> None:
    """One generated event, keyed by its account as the contract asks."""
    key = orjson.loads(line).get("account_id")
    producer.send(topic, key=None if key is None else str(key).encode(), value=line)


def forget_run(prefix: str) -> None:
    """Delete the topics and consumer groups a run named `prefix` left on the broker: faust makes
    a topic and a group per app, and every run has its own app name, so reruns would pile up."""
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        topics = [t for t in admin.list_topics() if t.startswith(prefix)]
        groups = [g["group_id"] for g in admin.list_groups() if g["group_id"].startswith(prefix)]
        # Best effort: a group whose members are still leaving cannot be deleted yet.
        for delete, names in ((admin.delete_topics, topics), (admin.delete_groups, groups)):
            if names:
                try:
                    delete(names)
                except KafkaError as error:
                    print(f"note: could not delete {names}: {error!r}", flush=True)
    finally:
        admin.close()
