"""kill -9 at random moments, SIGTERM, and Redis going away: the worker ends exact every time."""

from __future__ import annotations

import random
import time

import pytest
import redis

from processor.definitions import load_definitions
from tests.integration.worker.conftest import EXAMPLE_DEFINITIONS, EndToEnd, PrivateRedis
from tests.integration.worker.harness import (
    Trickle,
    WorkerProcess,
    now_ms,
    read_topic,
    stored_offsets,
    wait_exact,
    wait_until,
    write_definitions,
)
from tests.integration.worker.workloads import generated_messages, random_catalogue, random_messages
from tests.strategies import catalog_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]


def assert_offsets_stored(e2e: EndToEnd) -> None:
    """Redis holds, per partition, the offset of the last message: everything was applied."""
    records = read_topic(e2e.bootstrap, e2e.topic)
    ends = {p: (rs[-1].offset if rs else None) for p, rs in records.items()}
    assert stored_offsets(e2e.redis_url, e2e.namespace, e2e.partitions) == ends


def kill_while_consuming(worker: WorkerProcess, rng: random.Random, kills: int) -> None:
    """Each time: wait until the (re)started worker applies messages, let it go on for a random
    moment, SIGKILL it and start it again."""
    for _ in range(kills):
        wait_until(lambda: _processed(worker) > 0, 60, f"{worker.name} to apply messages")
        time.sleep(rng.uniform(0.0, 0.5))
        worker.kill()
        worker.start()


def _processed(worker: WorkerProcess) -> float:
    worker.check_alive()
    try:
        return worker.scrape().total("nsm_events_processed_total")
    except OSError:
        return 0.0


def test_kill_9_at_random_moments_then_exact(e2e: EndToEnd):
    """SIGKILL four times at seeded random moments while it catches up with a stream that keeps
    flowing; each restart resumes from what Redis holds. Example definitions (entities,
    aggregates, formulas, segments), duplicates and invalid messages."""
    rng = random.Random(5)
    catalog = load_definitions(EXAMPLE_DEFINITIONS)
    e2e.create_topic(3)
    messages = generated_messages(5, 3, events=15_000, duplicates=3, invalid=2)
    worker = e2e.worker("crashy")
    trickle = Trickle(e2e.producer(), messages, chunks=60, pause_s=0.5)
    trickle.start()
    kill_while_consuming(worker, rng, kills=4)
    trickle.finish()
    worker.wait_healthy()
    wait_exact([worker], e2e.bootstrap, e2e.topic, catalog, timeout_s=60)
    assert_offsets_stored(e2e)
    assert worker.starts == 5


def test_kill_9_with_random_catalogue_and_reused_ids(e2e: EndToEnd):
    metrics = random_catalogue(21)
    catalog = catalog_of(metrics)
    definitions = write_definitions(e2e.folder / "definitions", metrics)
    e2e.create_topic(2)
    messages = random_messages(21, 2, now_ms() - 60_000, count=8000)
    worker = e2e.worker("crashy", definitions)
    trickle = Trickle(e2e.producer(), messages, chunks=30, pause_s=0.4)
    trickle.start()
    kill_while_consuming(worker, random.Random(21), kills=2)
    trickle.finish()
    worker.wait_healthy()
    wait_exact([worker], e2e.bootstrap, e2e.topic, catalog, timeout_s=60)
    assert_offsets_stored(e2e)


def test_sigterm_exits_0_quickly_and_a_restart_reprocesses_nothing(e2e: EndToEnd):
    catalog = load_definitions(EXAMPLE_DEFINITIONS)
    e2e.create_topic(2)
    messages = generated_messages(8, 2, events=3000, duplicates=2)
    producer = e2e.producer()
    producer.send(messages[:2000])
    worker = e2e.worker("polite")
    worker.wait_healthy()
    wait_exact([worker], e2e.bootstrap, e2e.topic, catalog)
    code, seconds = worker.terminate()
    assert code == 0, worker.log_tail()
    assert seconds < 8, f"took {seconds:.1f}s to stop"
    assert '"worker stopped"' in worker.log_path.read_text()
    producer.send(messages[2000:])
    worker.start()
    worker.wait_healthy()
    wait_exact([worker], e2e.bootstrap, e2e.topic, catalog)
    # The restarted worker applied only what was sent while it was down: nothing twice.
    processed = worker.scrape().total("nsm_events_processed_total")
    assert 0 < processed <= len(messages) - 2000
    assert_offsets_stored(e2e)


def test_redis_going_away_shows_in_health_and_resumes_exact(
    e2e: EndToEnd, private_redis: PrivateRedis
):
    """A Redis of the test's own (append-only file) is killed while events flow and started
    again on the same files: /health says 503 and nsm_dependency_up{redis} 0 meanwhile, and the
    worker ends exact, whatever the lost last second of writes."""
    catalog = load_definitions(EXAMPLE_DEFINITIONS)
    e2e.create_topic(2)
    messages = generated_messages(9, 2, events=6000, duplicates=2, invalid=1)
    worker = e2e.worker("patient", redis_url=private_redis.url)
    worker.wait_healthy()
    producer = e2e.producer()
    producer.send(messages[:2000])
    private_redis.kill()
    trickle = Trickle(producer, messages[2000:4000], chunks=10, pause_s=0.1)
    trickle.start()

    def degraded() -> bool:
        answer = worker.health()
        return answer is not None and answer[0] == 503 and answer[1]["redis"] == "down"

    wait_until(degraded, 20, "/health 503 with redis down")
    assert worker.scrape().one("nsm_dependency_up", dependency="redis") == 0
    trickle.finish()
    time.sleep(1)
    worker.check_alive()
    private_redis.start()
    worker.wait_healthy(timeout_s=30)
    assert worker.scrape().one("nsm_dependency_up", dependency="redis") == 1
    producer.send(messages[4000:])
    wait_exact([worker], e2e.bootstrap, e2e.topic, catalog, timeout_s=60)
    client = redis.Redis.from_url(private_redis.url)
    try:
        meta = client.hget(f"nsm:{e2e.namespace}:{{{e2e.namespace}.p0}}:meta", "offset")
    finally:
        client.close()
    records = read_topic(e2e.bootstrap, e2e.topic)
    assert meta is not None and int(meta) == records[0][-1].offset
