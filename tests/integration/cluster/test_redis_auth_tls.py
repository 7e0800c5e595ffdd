"""A Redis Cluster with a password and TLS only (Debian's redis-server is built with TLS): the
worker and the commands reach it through `rediss://:password@node/0?ssl_ca_certs=...`, the
password never shows in a log, and a wrong one is a clear error."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from processor.definitions import load_definitions
from processor.store.client import UNAVAILABLE, connect
from processor.store.partition_store import RedisStateStore
from processor.store.payloads import BucketWrite, NewIds, PackedWrites
from tests.integration.cluster.clusters import STACK, free_base
from tests.integration.test_replay_support import run_nsm
from tests.integration.worker.conftest import EXAMPLE_DEFINITIONS, EndToEnd
from tests.integration.worker.harness import wait_exact
from tests.integration.worker.workloads import generated_messages

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PASSWORD = "s3cret-Cluster"


class SecureCluster:
    def __init__(self, folder: Path) -> None:
        self.port = free_base(20000, 22000, [*range(6), *range(10000, 10006)])
        self.env = {
            **os.environ,
            "NSM_STACK_DIR": str(folder),
            "NSM_CLUSTER_REDIS_PORT": str(self.port),
            "NSM_CLUSTER_REDIS_PASSWORD": PASSWORD,
            "NSM_CLUSTER_REDIS_TLS": "1",
        }
        self.ca = folder / "cluster" / "redis" / "tls" / "ca.crt"

    def url(self, password: str = PASSWORD, tls: bool = True) -> str:
        """A URL naming one node (the fourth: a replica when the cluster was made)."""
        node = f":{password}@127.0.0.1:{self.port + 3}/0"
        return f"rediss://{node}?ssl_ca_certs={self.ca}" if tls else f"redis://{node}"

    def run(self, *command: str) -> None:
        done = subprocess.run(["bash", str(STACK), *command], env=self.env, capture_output=True,
                              text=True, timeout=180)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureCluster]:
    cluster = SecureCluster(tmp_path_factory.mktemp("secure"))
    try:
        cluster.run("up-cluster", "redis")
        yield cluster
    finally:
        cluster.run("down-cluster")


def test_the_store_works_through_tls_and_a_password(secure: SecureCluster, unique_name: str):
    async def scenario() -> tuple[int | None, int]:
        backend = RedisStateStore(await connect(secure.url()))
        try:
            store = backend.partitions(unique_name)
            write = BucketWrite("m", 7, 10**13, {b'["t"]': b"3"})
            await store.apply_batch(3, None, 41, 1000, PackedWrites.pack([write]),
                                    NewIds.pack([("e1", 5000)]), {"applied": 1})  # fmt: skip
            stored = await store.load(3)
            assert stored.buckets == {("m", 7): {b'["t"]': b"3"}} and stored.seen == {"e1": 5000}
            assert await backend.resolve_namespace(unique_name) == unique_name
            return stored.offset, (await store.counts([3]))["applied"]
        finally:
            await backend.aclose()

    assert asyncio.run(scenario()) == (41, 1)


def test_a_wrong_password_or_no_tls_is_a_clear_error(secure: SecureCluster):
    async def attempt(url: str) -> BaseException | None:
        try:
            client = await connect(url)
        except UNAVAILABLE as error:
            return error
        await client.aclose()
        return None

    wrong = asyncio.run(attempt(secure.url(password="wrong")))
    assert wrong is not None and "password" in str(wrong).lower()
    assert asyncio.run(attempt(secure.url(tls=False))) is not None
    refused = run_nsm("namespace", "list", "--redis-url", secure.url(password="wrong"), expect=1)
    assert "cannot reach Redis" in refused.output + refused.stderr
    assert "wrong" not in refused.output + refused.stderr


def test_a_worker_on_a_tls_cluster_with_a_password_is_exact(secure: SecureCluster, e2e: EndToEnd):
    catalog = load_definitions(EXAMPLE_DEFINITIONS)
    e2e.redis_url = secure.url()  # its keys are removed there at the end
    e2e.create_topic(4)
    e2e.producer().send(generated_messages(53, 4, events=4000, duplicates=2, invalid=1))
    worker = e2e.worker("w", redis_url=secure.url())
    worker.wait_healthy()
    wait_exact([worker], e2e.bootstrap, e2e.topic, catalog)
    assert PASSWORD not in worker.log_path.read_text()
