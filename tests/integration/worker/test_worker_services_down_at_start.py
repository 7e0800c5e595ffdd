"""A worker started before Kafka or Redis waits for them, says so, and starts when they appear.

The services it waits for are the test's own: a private stack (scripts/stack.sh on free ports,
as in test_worker_kafka_outage.py) started only after the worker, or a private redis-server with
the shared Kafka. The shared services are never stopped.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from kafka.errors import TopicAlreadyExistsError

from processor.definitions import load_definitions
from tests.integration.worker.conftest import (
    EXAMPLE_DEFINITIONS,
    EndToEnd,
    PrivateRedis,
    PrivateStack,
)
from tests.integration.worker.harness import WorkerProcess, create_topic, wait_exact, wait_until
from tests.integration.worker.workloads import generated_messages

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def _answer(worker: WorkerProcess) -> tuple[int, dict[str, Any]] | None:
    worker.check_alive()
    return worker.health()


def _waiting_lines(worker: WorkerProcess) -> list[dict[str, Any]]:
    lines = []
    for line in worker.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record["message"].startswith("waiting for"):
                lines.append(record)
    return lines


def test_a_worker_started_before_kafka_and_redis_waits_and_then_works(
    unique_name: str, tmp_path: Path
):
    stack = PrivateStack(tmp_path / "stack")
    e2e = EndToEnd(stack.bootstrap, stack.redis_url, unique_name, tmp_path)
    try:
        worker = e2e.worker("early")

        def waiting_for_both() -> bool:
            answer = _answer(worker)
            return answer is not None and answer[0] == 503 and answer[1]["status"] == "starting"

        wait_until(waiting_for_both, 30, "/health 503 while starting")
        answer = _answer(worker)
        assert answer is not None
        assert answer[1]["missing"] == ["kafka", "redis"], answer
        assert worker.scrape().one("nsm_dependency_up", dependency="kafka") == 0
        time.sleep(4)  # a few attempts: after 1, 2 and 4 seconds
        stack.up()
        # The topic may already exist: the worker subscribes as soon as both answer, and the
        # broker creates a topic asked for (one partition).
        with contextlib.suppress(TopicAlreadyExistsError):
            create_topic(stack.bootstrap, e2e.topic, 1)
        e2e.partitions = 1
        messages = [(0, key, value) for _, key, value in generated_messages(5, 1, events=800)]
        e2e.producer().send(messages)
        worker.wait_healthy(timeout_s=90)
        wait_exact([worker], stack.bootstrap, e2e.topic, load_definitions(EXAMPLE_DEFINITIONS),
                   timeout_s=90)  # fmt: skip
        assert worker.starts == 1 and worker.alive, "the worker exited while waiting"

        waits = _waiting_lines(worker)
        assert len(waits) >= 3, worker.log_tail()
        delays = [w["retry_in_s"] for w in waits]
        assert delays[:3] == [1.0, 2.0, 4.0] and max(delays) <= 30, delays
        assert delays == sorted(delays)
        assert all(w["message"] == "waiting for redis and kafka" for w in waits[:3])
        log = worker.log_path.read_text(errors="replace")
        assert "Unable connect to" not in log, "aiokafka's own line per attempt is back"
        assert "Traceback" not in log
    finally:
        for worker in e2e.workers:
            worker.close()
        for producer in e2e.producers:
            producer.close()
        stack.down()


def test_a_worker_waits_for_redis_alone_and_names_it(e2e: EndToEnd, tmp_path: Path):
    """Kafka answers (the shared one), Redis does not yet: /health names Redis only."""
    redis_server = PrivateRedis(tmp_path / "redis")
    try:
        e2e.create_topic(1)
        worker = e2e.worker("waits-for-redis", redis_url=redis_server.url)

        def only_redis_missing() -> bool:
            answer = _answer(worker)
            return answer is not None and answer[1].get("missing") == ["redis"]

        wait_until(only_redis_missing, 30, "/health naming redis alone")
        answer = _answer(worker)
        assert answer is not None and answer[0] == 503 and answer[1]["kafka"] == "up", answer
        redis_server.start()
        messages = generated_messages(6, 1, events=300)
        e2e.producer().send([(0, key, value) for _, key, value in messages])
        worker.wait_healthy(timeout_s=60)
        wait_exact([worker], e2e.bootstrap, e2e.topic, load_definitions(EXAMPLE_DEFINITIONS))
        assert worker.starts == 1
        assert [w["message"] for w in _waiting_lines(worker)][:1] == ["waiting for redis"]
    finally:
        for worker in e2e.workers:
            worker.close()
        redis_server.kill()
