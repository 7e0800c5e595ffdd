"""Every command on a Redis Cluster, with NSM_REDIS_URL naming a replica node (not the node that
owns any key used): replay (in one process and in two), namespace list, diff, swap and drop,
history export and explain. The keys outside the partitions (pointers, info, history, ids,
summaries) are read and written on whichever master owns them."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from processor.definitions import Catalog
from processor.engine import compute_metrics
from processor.store.client import connect_sync
from processor.store.namespaces import info_key, previous_key, target_key
from tests.integration.cluster.clusters import Clusters
from tests.integration.test_replay_support import (
    DEFINITIONS,
    PARTITIONS,
    Topic,
    catalog,
    history_topic,
    replay_json,
    run_nsm,
)

__all__ = ["catalog", "history_topic"]  # fixtures used below

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

METRIC = "weekly_active_accounts_3plus_reports"


@pytest.fixture
def cluster_namespaces(whole_clusters: Clusters, unique_name: str) -> Iterator[str]:
    yield unique_name
    client = connect_sync(whole_clusters.redis_url)
    try:
        for key in list(client.scan_iter(match=f"nsm:{unique_name}*")):
            client.unlink(key)
    finally:
        client.close()


def test_every_command_works_on_a_redis_cluster(
    history_topic: Topic, catalog: Catalog, whole_clusters: Clusters, cluster_namespaces: str
):
    clusters = whole_clusters
    replica = clusters.replica_of(clusters.master_of("any"))
    url = f"redis://127.0.0.1:{replica}/0"
    first, second, live = (f"{cluster_namespaces}-{n}" for n in ("a", "b", "live"))
    common = ("--topic", history_topic.name, "--redis-url", url, "--live", live)

    one = replay_json("--namespace", first, *common)
    two = replay_json("--namespace", second, "--processes", "2", *common)
    assert one == two == compute_metrics(history_topic.values(), catalog).to_json()

    client = connect_sync(clusters.redis_url)
    try:
        # Each partition's keys sit on one master, and the partitions are spread over masters.
        masters = {clusters.master_of(f"nsm:{first}:{{{first}.p{p}}}:meta") for p in range(4)}
        assert len(masters) > 1
        assert client.hget(info_key(first), "status") == b"complete"

        listed = orjson.loads(run_nsm("namespace", "list", "--redis-url", url, "--live", live,
                                      "--format", "json").stdout)  # fmt: skip
        views = {view["name"]: view for view in listed}
        assert views[first]["partitions"] == views[second]["partitions"] == PARTITIONS
        assert views[first]["status"] == "complete" and views[first]["keys"] > 0

        agree = run_nsm("namespace", "diff", first, second, "--redis-url", url,
                        "--definitions", DEFINITIONS)  # fmt: skip
        assert "agree on every metric" in agree.stdout

        run_nsm("namespace", "swap", first, "--redis-url", url, "--live", live,
                "--definitions", DEFINITIONS, "--topic", history_topic.name)  # fmt: skip
        assert client.get(target_key(live)) == first.encode()
        run_nsm("namespace", "swap", second, "--redis-url", url, "--live", live,
                "--definitions", DEFINITIONS, "--topic", history_topic.name)  # fmt: skip
        assert client.get(target_key(live)) == second.encode()
        assert client.get(previous_key(live)) == first.encode()

        exported = run_nsm("history", "export", "--namespace", first, "--redis-url", url)
        assert exported.stdout.count(f'metric="{METRIC}"') > 100

        explained = run_nsm("explain", METRIC, "--namespace", first, "--redis-url", url,
                            "--from", "2026-11-13T00:00:00Z", "--to", "2026-11-19T00:00:00Z",
                            "--definitions", DEFINITIONS, "--format", "json")  # fmt: skip
        assert orjson.loads(explained.stdout)

        refused = run_nsm("namespace", "drop", second, "--redis-url", url, "--live", live,
                          expect=1)  # fmt: skip
        assert "served" in refused.output + refused.stderr
        dropped = run_nsm("namespace", "drop", first, "--redis-url", url, "--live", live)
        assert "keys deleted" in dropped.stdout
        assert not list(client.scan_iter(match=f"nsm:{first}:*"))
        assert list(client.scan_iter(match=f"nsm:{second}:*"))
    finally:
        client.close()
