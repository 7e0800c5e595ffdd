"""Fixtures for the tests on a Redis Cluster and a three-broker Kafka (clusters.py).

The clusters start once (10-30 s) when a test first needs them and stop after the last test of
this folder, so that their JVMs do not load the machine under the other tests. A node a test
kills is brought back first thing in the next test that needs the clusters whole
(`whole_clusters`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cluster.clusters import Clusters
from tests.integration.worker.conftest import EndToEnd, e2e

__all__ = ["e2e"]  # the single-node end-to-end fixture, for tests that need only one cluster


HERE = Path(__file__).resolve().parent
_started: list[Clusters] = []


@pytest.fixture(scope="session")
def clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clusters]:
    stack = Clusters(tmp_path_factory.mktemp("clusters"))
    _started.append(stack)
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """After the last test of this folder and its fixtures' teardown, stop the clusters (a later
    test of the folder, if the order is changed, starts them again through `whole_clusters`)."""
    yield
    if _started and (nextitem is None or HERE not in nextitem.path.parents):
        _started[0].down()


@pytest.fixture
def whole_clusters(clusters: Clusters) -> Clusters:
    """The clusters with every node running: a node an earlier test killed is started again
    (a former Redis master rejoins as a replica)."""
    clusters.up()
    return clusters


@pytest.fixture
def cluster_e2e(whole_clusters: Clusters, unique_name: str, tmp_path: Path) -> Iterator[EndToEnd]:
    """EndToEnd (worker/conftest.py) on the clusters: topics with three replicas."""
    env = EndToEnd(whole_clusters.bootstrap, whole_clusters.redis_url, unique_name, tmp_path)
    try:
        yield env
    finally:
        env.close()
