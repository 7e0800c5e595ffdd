"""Failover on the real clusters: a Redis master killed, a Kafka broker killed, a worker killed
among three, each mid-stream; the export equals `nsm compute` over the topic afterwards.

Each test prints its failover figures (run with -s to see them): how long the failover took, how
long the worker needed to be back where it was, and what it read again.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
import redis
from kafka.errors import KafkaError

from processor.definitions import load_definitions
from processor.store.partition_store import PartitionKeys
from tests.integration.cluster.clusters import Clusters
from tests.integration.worker.conftest import EXAMPLE_DEFINITIONS, EndToEnd
from tests.integration.worker.harness import (
    Trickle,
    WorkerProcess,
    read_topic,
    stored_offsets,
    wait_exact,
    wait_until,
)
from tests.integration.worker.test_worker_group import assert_one_exporter
from tests.integration.worker.workloads import generated_messages

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

CATALOG = load_definitions(EXAMPLE_DEFINITIONS)


def offset_on(port: int, key: str) -> int | None:
    """Partition 0's stored offset as the node on `port` holds it (a master)."""
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        raw = client.hget(key, "offset")
        return None if raw is None else int(raw)
    finally:
        client.close()


def processed(worker: WorkerProcess) -> float:
    worker.check_alive()
    return worker.scrape().total("nsm_events_processed_total")


def fences(worker: WorkerProcess) -> list[tuple[int, int]]:
    """(partition, the offset found in Redis) for each write of the worker that was fenced
    (the partition was then reloaded), from its log."""
    found = []
    for line in worker.log_path.read_text(errors="replace").splitlines():
        if "partition written by another worker" in line:
            entry = json.loads(line)
            # Empty: the node held nothing of the partition (a promoted replica that replication
            # had not reached yet), that is before its first offset.
            found.append((entry["partition"], int(entry["stored_offset"] or -1)))
    return found


def assert_all_stored(e2e: EndToEnd) -> None:
    records = read_topic(e2e.bootstrap, e2e.topic)
    ends = {p: (rs[-1].offset if rs else None) for p, rs in records.items()}
    assert stored_offsets(e2e.redis_url, e2e.namespace, e2e.partitions) == ends


def test_redis_master_failover_mid_stream(cluster_e2e: EndToEnd, whole_clusters: Clusters):
    """The master owning partition 0's slot dies after acknowledging writes its replica never
    got. The promoted replica holds an older offset: the worker's next write is fenced, it reloads
    the partition from the new master and reads again from Kafka what was lost."""
    e2e, clusters = cluster_e2e, whole_clusters
    e2e.create_topic(4, replication=3)
    messages = generated_messages(41, 4, events=16000, duplicates=2, invalid=1, disorder_s=600)
    worker = e2e.worker("w")
    worker.wait_healthy()
    trickle = Trickle(e2e.producer(), messages, chunks=40, pause_s=0.3)
    trickle.start()
    meta = PartitionKeys(e2e.namespace, 0).meta
    wait_until(lambda: stored_offsets(e2e.redis_url, e2e.namespace, 4)[0] is not None, 60,
               "the worker to write partition 0")  # fmt: skip
    master = clusters.master_of(meta)
    replica = clusters.replica_of(master)
    # The replica is stopped and its link closed by the master, which goes on acknowledging the
    # worker's writes: what replication has not carried yet when a master dies.
    replica_pid = clusters.redis_pid(replica)
    os.kill(replica_pid, signal.SIGSTOP)
    try:
        clusters.drop_replication(master)
        at_stop = offset_on(master, meta)
        assert at_stop is not None
        wait_until(lambda: (offset_on(master, meta) or 0) > at_stop, 30,
                   "the worker to write partition 0 while the replica is cut off")  # fmt: skip
        acknowledged = offset_on(master, meta)
        clusters.kill_redis(master)
        killed_at = time.monotonic()
    finally:
        os.kill(replica_pid, signal.SIGCONT)
    assert acknowledged is not None
    promoted = clusters.wait_failed_over(meta, master)
    failover_s = time.monotonic() - killed_at
    assert promoted == replica

    # Back where it was: partition 0 stored past what the dead master had acknowledged.
    wait_until(lambda: (offset_on(promoted, meta) or -1) >= acknowledged, 90,
               "the worker to write partition 0 past the lost writes")  # fmt: skip
    recovered_s = time.monotonic() - killed_at
    # The fence saw the stored offset move back: what the promoted replica held.
    found = [offset for partition, offset in fences(worker) if partition == 0]
    assert found, worker.log_tail()
    after = found[0]
    assert after < acknowledged, "the promoted replica lost no write"
    trickle.finish(timeout_s=120)
    wait_exact([worker], e2e.bootstrap, e2e.topic, CATALOG, timeout_s=90)
    assert_all_stored(e2e)
    assert worker.starts == 1 and worker.alive
    print(
        f"\nredis master failover: replica promoted {failover_s:.1f}s after kill -9; partition 0 "
        f"stored again past the lost writes {recovered_s:.1f}s after it; lost on the replica and "
        f"read again from Kafka: offsets {after + 1}..{acknowledged} "
        f"({acknowledged - after} messages of partition 0)"
    )


def test_kafka_broker_failover_mid_stream(cluster_e2e: EndToEnd, whole_clusters: Clusters):
    """The broker leading partition 0 dies: leadership moves to an in-sync replica, the worker
    goes on without a restart, and the values stay exact."""
    e2e, clusters = cluster_e2e, whole_clusters
    e2e.create_topic(4, replication=3)
    messages = generated_messages(43, 4, events=16000, duplicates=2, invalid=1, disorder_s=600)
    worker = e2e.worker("w")
    worker.wait_healthy()
    trickle = Trickle(e2e.producer(), messages, chunks=40, pause_s=0.3)
    trickle.start()
    wait_until(lambda: processed(worker) > 0, 60, "the worker to apply messages")
    leader = clusters.leader_of(e2e.topic, 0)
    before = processed(worker)
    clusters.kill_broker(leader)
    killed_at = time.monotonic()

    def new_leader() -> int | None:
        try:
            found = clusters.leader_of(e2e.topic, 0)
        except KafkaError:  # the metadata is being moved
            return None
        return found if found not in (leader, -1) else None

    moved_to = wait_until(new_leader, 60, "partition 0's leadership to move", every_s=0.5)
    moved_s = time.monotonic() - killed_at
    wait_until(lambda: processed(worker) > before, 60, "the worker to apply again")
    applying_s = time.monotonic() - killed_at
    trickle.finish(timeout_s=120)
    wait_exact([worker], e2e.bootstrap, e2e.topic, CATALOG, timeout_s=90)
    assert_all_stored(e2e)
    assert worker.starts == 1 and worker.alive
    assert fences(worker) == [], "nothing was written behind the worker's back"
    print(
        f"\nkafka broker failover: leadership of partition 0 moved from node {leader} to "
        f"{moved_to} {moved_s:.1f}s after kill -9 (seen by the admin client); the worker applied "
        f"again {applying_s:.1f}s after it; nothing read again (no fenced write, no restart)"
    )


def test_three_workers_one_exporter_exact_after_one_dies(cluster_e2e: EndToEnd):
    e2e = cluster_e2e
    e2e.create_topic(6, replication=3)
    messages = generated_messages(47, 6, events=12000, duplicates=2, invalid=1, disorder_s=600)
    half = len(messages) // 2
    producer = e2e.producer()
    producer.send(messages[:half])
    workers = [e2e.worker(name) for name in ("a", "b", "c")]
    for worker in workers:
        worker.wait_healthy()

    def split() -> bool:
        owned = [set(w.health()[1]["partitions"]) for w in workers]  # type: ignore[index]
        return all(owned) and set().union(*owned) == set(range(6)) and sum(map(len, owned)) == 6

    wait_until(split, 60, "the three workers to split the six partitions")
    wait_exact(workers, e2e.bootstrap, e2e.topic, CATALOG, timeout_s=90)
    assert_one_exporter(workers)

    exporter = next(w for w in workers if w.scrape().exporter)
    exporter.kill()
    killed_at = time.monotonic()
    producer.send(messages[half:])
    rest = [w for w in workers if w is not exporter]
    wait_exact(rest, e2e.bootstrap, e2e.topic, CATALOG, timeout_s=120)
    recovered_s = time.monotonic() - killed_at
    assert_one_exporter(rest)
    assert_all_stored(e2e)
    print(
        f"\nthree workers: the exporter killed; the other two exact, with one exporter, "
        f"{recovered_s:.1f}s later"
    )
