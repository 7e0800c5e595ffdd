"""Kafka going away: a private stack's broker is stopped and started again under a running worker.

The shared services are never touched: the test starts its own Kafka, Redis and Prometheus with
scripts/stack.sh on free ports in a folder of its own, and always stops them at the end.
"""

from __future__ import annotations

import time

import pytest

from processor.definitions import load_definitions
from tests.integration.worker.conftest import EXAMPLE_DEFINITIONS, EndToEnd, PrivateStack
from tests.integration.worker.harness import (
    WorkerProcess,
    create_topic,
    read_topic,
    stored_offsets,
    wait_exact,
    wait_until,
)
from tests.integration.worker.workloads import generated_messages

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def _health(worker: WorkerProcess) -> tuple[int, dict[str, object]] | None:
    worker.check_alive()
    return worker.health()


def _kafka_dependency(worker: WorkerProcess) -> float | None:
    return worker.scrape().one("nsm_dependency_up", dependency="kafka")


def _spare_worker(e2e: EndToEnd) -> WorkerProcess:
    """A worker holding no partition: the second of two in a group reading a 1-partition topic
    (its own topic and namespace). It fetches nothing, so only its tick can notice Kafka."""
    solo = f"{e2e.name}-solo"
    create_topic(e2e.bootstrap, solo, 1)
    pair = [e2e.worker(f"solo-{i}", extra_env={"NSM_TOPIC": solo, "NSM_NAMESPACE": solo})
            for i in range(2)]  # fmt: skip

    def split() -> WorkerProcess | None:
        held = {}
        for worker in pair:
            answer = _health(worker)
            if answer is None or answer[0] != 200:
                return None
            held[worker.name] = answer[1]["partitions"]
        if sorted(held.values()) != [[], [0]]:
            return None
        return next(w for w in pair if held[w.name] == [])

    return wait_until(split, 60, "one partition held by one of two workers")


def test_kafka_going_away_shows_in_health_and_resumes_exact(
    outage_e2e: EndToEnd, private_stack: PrivateStack
):
    """The broker is stopped under an idle, exact worker: within 30 s /health answers 503 with
    kafka down and nsm_dependency_up{kafka} is 0, and so does a worker holding no partition.
    Started again on the same data (topic and offsets kept), the worker recovers and ends exact
    over both halves of the stream."""
    e2e = outage_e2e
    catalog = load_definitions(EXAMPLE_DEFINITIONS)
    e2e.create_topic(3)
    messages = generated_messages(13, 3, events=4000, duplicates=2, invalid=1)
    half = len(messages) // 2
    producer = e2e.producer()
    producer.send(messages[:half])
    worker = e2e.worker("steadfast")
    worker.wait_healthy()
    wait_exact([worker], e2e.bootstrap, e2e.topic, catalog, timeout_s=60)
    assert _kafka_dependency(worker) == 1
    spare = _spare_worker(e2e)
    assert _kafka_dependency(spare) == 1

    private_stack.stop_kafka()
    stopped = time.monotonic()

    def degraded(of: WorkerProcess) -> bool:
        answer = _health(of)
        return answer is not None and answer[0] == 503 and answer[1]["kafka"] == "down"

    wait_until(lambda: degraded(worker), 30, "/health 503 with kafka down", every_s=0.5)
    noticed_s = time.monotonic() - stopped
    wait_until(lambda: degraded(spare), 30, "the spare's /health 503 with kafka down")
    assert _kafka_dependency(spare) == 0
    assert _kafka_dependency(worker) == 0
    # And it stays so: an empty fetch while the broker is away must not count as Kafka up.
    steady_until = time.monotonic() + 4
    while time.monotonic() < steady_until:
        answer = _health(worker)
        assert answer is not None and answer[0] == 503, f"/health flipped back: {answer}"
        assert answer[1]["kafka"] == "down", answer
        assert _kafka_dependency(worker) == 0
        time.sleep(0.1)
    # Redis is not to blame.
    answer = _health(worker)
    assert answer is not None and answer[1]["redis"] == "up", answer
    # Still serving the values it had while the broker is away.
    assert worker.scrape().values, "the exporter withdrew its values during the outage"

    private_stack.up()
    worker.wait_healthy(timeout_s=60)
    assert _kafka_dependency(worker) == 1
    spare.wait_healthy(timeout_s=60)
    producer.send(messages[half:])
    wait_exact([worker], e2e.bootstrap, e2e.topic, catalog, timeout_s=90)
    records = read_topic(e2e.bootstrap, e2e.topic)
    assert stored_offsets(e2e.redis_url, e2e.namespace, 3) == {
        p: rs[-1].offset for p, rs in records.items()
    }
    assert sum(len(rs) for rs in records.values()) == len(messages)
    assert worker.starts == 1, "the worker was restarted"
    print(f"kafka outage noticed after {noticed_s:.1f}s")
