"""`scripts/stack.sh up-cluster` is idempotent, brings a killed node back, and names a taken
port with what to do."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.integration.cluster.clusters import STACK, Clusters

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def pids(clusters: Clusters) -> dict[str, int]:
    return {f"{p.parent.name}/{p.name}": int(p.read_text())
            for p in (clusters.folder / "cluster").glob("*/*/*.pid")}  # fmt: skip


def test_up_cluster_twice_starts_nothing_and_brings_a_killed_node_back(whole_clusters: Clusters):
    clusters = whole_clusters
    before = pids(clusters)
    assert len(before) == 9  # six Redis nodes, three brokers
    again = clusters.up()
    assert "redis cluster already running" in again and "kafka cluster already running" in again
    assert pids(clusters) == before

    replica = clusters.replica_of(clusters.master_of("any"))
    clusters.kill_redis(replica)
    assert "redis cluster started" in clusters.up()  # and waited for 3 masters, 3 replicas
    after = pids(clusters)
    assert after[f"{replica}/redis.pid"] != before[f"{replica}/redis.pid"]
    assert {k: v for k, v in after.items() if not k.startswith(f"{replica}/")} == {
        k: v for k, v in before.items() if not k.startswith(f"{replica}/")
    }
    status = subprocess.run(["bash", str(STACK), "status-cluster"], env=clusters.env,
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    assert status.returncode == 0 and status.stdout.count(" up ") == 9


def test_a_taken_port_is_reported_with_the_variable_to_set(tmp_path):
    env = {
        **os.environ,
        "NSM_STACK_DIR": str(tmp_path),
        # The shared stack's Redis listens on the first of these.
        "NSM_CLUSTER_REDIS_PORT": os.environ.get("NSM_REDIS_PORT", "6379"),
    }
    result = subprocess.run(["bash", str(STACK), "up-cluster", "redis"], env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode != 0
    assert "is taken" in result.stderr and "NSM_CLUSTER_REDIS_PORT" in result.stderr
