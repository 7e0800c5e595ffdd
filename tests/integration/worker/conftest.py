"""The end-to-end fixture: unique topic, namespace and workers per test, all removed afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from tests.integration.worker.harness import (
    ROOT,
    Producer,
    WorkerProcess,
    create_topic,
    delete_groups,
    delete_namespace,
    delete_topics,
    wait_until,
)
from tests.ports import free_port, free_ports

EXAMPLE_DEFINITIONS = ROOT / "definitions"


@dataclass
class EndToEnd:
    """One test's own topic, namespace and worker processes on the shared services."""

    bootstrap: str
    redis_url: str
    name: str
    folder: Path
    partitions: int = 0
    workers: list[WorkerProcess] = field(default_factory=list)
    producers: list[Producer] = field(default_factory=list)
    redis_urls: set[str] = field(default_factory=set)

    @property
    def topic(self) -> str:
        return f"{self.name}-events"

    @property
    def namespace(self) -> str:
        return self.name

    def create_topic(self, partitions: int, replication: int = 1) -> str:
        create_topic(self.bootstrap, self.topic, partitions, replication)
        self.partitions = partitions
        return self.topic

    def producer(self, compression: str | None = None) -> Producer:
        producer = Producer(self.bootstrap, self.topic, compression)
        self.producers.append(producer)
        return producer

    def worker(
        self,
        name: str,
        definitions: Path = EXAMPLE_DEFINITIONS,
        *,
        clock: str = "events",
        redis_url: str | None = None,
        bootstrap: str | None = None,
        extra_env: Mapping[str, str] | None = None,
        start: bool = True,
    ) -> WorkerProcess:
        url = redis_url or self.redis_url
        self.redis_urls.add(url)
        worker = WorkerProcess(
            name=name,
            topic=self.topic,
            namespace=self.namespace,
            definitions=definitions,
            redis_url=url,
            bootstrap=bootstrap or self.bootstrap,
            workdir=self.folder,
            clock=clock,
            extra_env=extra_env,
        )
        self.workers.append(worker)
        if start:
            worker.start()
        return worker

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
        for producer in self.producers:
            producer.close()
        delete_namespace(self.redis_url, self.namespace)
        delete_topics(self.bootstrap, self.name)
        delete_groups(self.bootstrap, [f"nsm-{self.namespace}", f"nsm-{self.namespace}-app"])
        # Some of faust's own topics are named after the app, which carries the namespace.
        delete_topics(self.bootstrap, f"nsm-{self.namespace}")


@pytest.fixture
def e2e(
    kafka_bootstrap: str, redis_url: str, unique_name: str, tmp_path: Path
) -> Iterator[EndToEnd]:
    env = EndToEnd(kafka_bootstrap, redis_url, unique_name, tmp_path)
    try:
        yield env
    finally:
        env.close()


class PrivateRedis:
    """A redis-server of the test's own on a free port, with an append-only file, so that it can be
    killed and started again on the same data without touching the shared one."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        log = (self.folder / "redis.log").open("ab")
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.folder), "--appendonly", "yes", "--save", "", "--daemonize", "no"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        log.close()

        def answers() -> bool:
            client = redis.Redis.from_url(self.url)
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False
            finally:
                client.close()

        wait_until(answers, 20, f"the test redis-server on port {self.port}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.kill()


STACK = ROOT / "scripts" / "stack.sh"


class PrivateStack:
    """Kafka, Redis and Prometheus of the test's own, run by scripts/stack.sh on free ports."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.kafka_port, controller, self.redis_port, prometheus, metrics = free_ports(5)
        self.env = {
            **os.environ,
            "NSM_STACK_DIR": str(folder),
            "NSM_KAFKA_PORT": str(self.kafka_port),
            "NSM_KAFKA_CONTROLLER_PORT": str(controller),
            "NSM_REDIS_PORT": str(self.redis_port),
            "NSM_PROMETHEUS_PORT": str(prometheus),
            "NSM_METRICS_PORT": str(metrics),
        }
        self.bootstrap = f"127.0.0.1:{self.kafka_port}"
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"

    def _run(self, command: str, timeout_s: float) -> None:
        done = subprocess.run(
            [str(STACK), command], env=self.env, capture_output=True, text=True, timeout=timeout_s
        )
        assert done.returncode == 0, f"stack.sh {command} failed:\n{done.stdout}\n{done.stderr}"

    def up(self) -> None:
        self._run("up", 180)

    def down(self) -> None:
        self._run("down", 120)

    @property
    def kafka_pid(self) -> int:
        return int((self.folder / "kafka" / "kafka.pid").read_text())

    def stop_kafka(self, timeout_s: float = 60) -> None:
        """SIGTERM the broker and wait until it has exited."""
        pid = self.kafka_pid
        os.kill(pid, signal.SIGTERM)

        def exited() -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            return False

        wait_until(exited, timeout_s, f"kafka (pid {pid}) to exit")


@pytest.fixture
def private_stack(tmp_path: Path) -> Iterator[PrivateStack]:
    stack = PrivateStack(tmp_path / "stack")
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


@pytest.fixture
def outage_e2e(private_stack: PrivateStack, unique_name: str, tmp_path: Path) -> Iterator[EndToEnd]:
    """Like `e2e`, on the private stack; nothing to delete afterwards, the stack goes whole."""
    env = EndToEnd(private_stack.bootstrap, private_stack.redis_url, unique_name, tmp_path)
    try:
        yield env
    finally:
        for worker in env.workers:
            worker.close()
        for producer in env.producers:
            producer.close()
