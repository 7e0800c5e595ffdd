"""A Redis Cluster (3 masters, 3 replicas) and a three-broker Kafka of the tests' own.

Started by `scripts/stack.sh up-cluster` in a folder of their own on free ports, so that the tests
may kill nodes without touching the clusters `make up-cluster` runs for people; `up-cluster` again
brings a killed node back (idempotent: it starts only what is not running).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

from processor.store.client import connect_sync
from tests.integration.worker.harness import ROOT, wait_until

STACK = ROOT / "scripts" / "stack.sh"


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_base(low: int, high: int, offsets: list[int]) -> int:
    """A port `base` in [low, high) such that base + each offset is free (below the ephemeral
    range, so that no free_port() of another test takes one meanwhile)."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(low, high)
        if all(_free(base + o) for o in offsets):
            return base
    raise AssertionError(f"no free ports in {low}-{high}")


@dataclass
class Clusters:
    folder: Path
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.redis_port = free_base(20000, 22000, [*range(6), *range(10000, 10006)])
        self.kafka_port = free_base(23000, 26000, [0, 1, 2, 100, 101, 102])
        self.env = {
            **os.environ,
            "NSM_STACK_DIR": str(self.folder),
            "NSM_CLUSTER_REDIS_PORT": str(self.redis_port),
            "NSM_CLUSTER_KAFKA_PORT": str(self.kafka_port),
            "NSM_CLUSTER_KAFKA_CONTROLLER_PORT": str(self.kafka_port + 100),
            # A master is failed over after 1 s without an answer.
            "NSM_CLUSTER_NODE_TIMEOUT_MS": "1000",
        }

    # ---- the stack script ----------------------------------------------------------------

    def run(self, *args: str, timeout_s: float = 300) -> str:
        done = subprocess.run(
            ["bash", str(STACK), *args], env=self.env, capture_output=True, text=True,
            timeout=timeout_s,
        )  # fmt: skip
        assert done.returncode == 0, f"stack.sh {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def up(self) -> str:
        return self.run("up-cluster")

    def down(self) -> None:
        self.run("down-cluster", timeout_s=120)

    # ---- Redis -----------------------------------------------------------------------------

    @property
    def redis_ports(self) -> list[int]:
        return [self.redis_port + i for i in range(6)]

    @property
    def redis_url(self) -> str:
        """A URL naming every node, so that clients start while any one of them is down."""
        nodes = ",".join(f"127.0.0.1:{port}" for port in self.redis_ports)
        return f"redis://{nodes}/0"

    def redis_pid(self, port: int) -> int:
        return int((self.folder / "cluster" / "redis" / str(port) / "redis.pid").read_text())

    def master_of(self, key: str) -> int:
        """The port of the master that owns the key's slot now."""
        client = connect_sync(self.redis_url)
        try:
            node = client.get_node_from_key(key)  # type: ignore[union-attr]
            return int(node.port)
        finally:
            client.close()

    def replica_of(self, master_port: int) -> int:
        """The port of a replica of the master on `master_port`."""
        lines = _cli(master_port, "cluster", "nodes").splitlines()
        nodes = [line.split() for line in lines if line.strip()]
        master_id = next(n[0] for n in nodes if n[1].startswith(f"127.0.0.1:{master_port}@"))
        replica = next(n for n in nodes if "slave" in n[2] and n[3] == master_id)
        return int(replica[1].split("@")[0].rsplit(":", 1)[1])

    def drop_replication(self, master_port: int) -> None:
        """Close the master's links to its replicas (they reconnect unless stopped)."""
        _cli(master_port, "client", "kill", "type", "replica")

    def kill_redis(self, port: int) -> None:
        pid = self.redis_pid(port)
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not _alive(pid), 10, f"redis {port} to die")

    def wait_failed_over(self, key: str, old_master: int, timeout_s: float = 30) -> int:
        """Wait until a replica took over the key's slot; returns its port."""

        def promoted() -> int | None:
            for port in self.redis_ports:
                if port == old_master:
                    continue
                try:
                    info = _cluster_info(port)
                    if info.get("cluster_state") != "ok":
                        return None
                    owner = self.master_of(key)
                except Exception:
                    return None
                return owner if owner != old_master else None
            return None

        return int(wait_until(promoted, timeout_s, f"a replica to take over from {old_master}"))

    # ---- Kafka -----------------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.kafka_port + i}" for i in range(3))

    @property
    def live_bootstrap(self) -> str:
        """The brokers running now (an admin client given a dead one may fail on it)."""
        alive = [n for n in (1, 2, 3) if _alive(self.broker_pid(n))]
        return ",".join(f"127.0.0.1:{self.kafka_port + n - 1}" for n in alive)

    def broker_pid(self, node: int) -> int:
        return int((self.folder / "cluster" / "kafka" / str(node) / "kafka.pid").read_text())

    def leader_of(self, topic: str, partition: int) -> int:
        """The node id (1-3) of the partition's leader."""
        admin = KafkaAdminClient(bootstrap_servers=self.live_bootstrap)
        try:
            (described,) = admin.describe_topics([topic])
            for p in described["partitions"]:
                if p["partition_index"] == partition:
                    return int(p["leader_id"])
            raise AssertionError(f"{topic} has no partition {partition}")
        finally:
            admin.close()

    def kill_broker(self, node: int) -> None:
        pid = self.broker_pid(node)
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not _alive(pid), 10, f"kafka node {node} to die")

    def end_offsets(self, topic: str) -> dict[int, int]:
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap)
        try:
            tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
            return {tp.partition: end for tp, end in consumer.end_offsets(tps).items()}
        finally:
            consumer.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _cli(port: int, *args: str) -> str:
    return subprocess.run(
        ["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=5
    ).stdout


def _cluster_info(port: int) -> dict[str, str]:
    out = _cli(port, "cluster", "info")
    return dict(line.strip().split(":", 1) for line in out.splitlines() if ":" in line)
