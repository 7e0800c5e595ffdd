"""Poison messages: none stops the worker, the rest of the stream is applied exactly.

- The messages that crashed the worker for good (a restarted worker read the same batch and
  crashed again): a valid `invoice.paid` whose `plan` is nested 1,020 levels deep, under a metric
  segmented by plan, and messages with a type or a timestamp nested as deep. Amid 100,000
  generated events, the first is applied like any other event and the others go to the
  dead-letter topic with their reasons, and the worker never restarts.
- A message the worker fails on for a reason nobody foresaw (injected here into a real worker
  in this process): it goes to the dead-letter topic as `unprocessable`, its batch is applied
  again without it from what Redis holds, and every other event counts exactly once.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from aiokafka import AIOKafkaConsumer, TopicPartition

from processor.config import Settings
from processor.definitions import load_definitions
from processor.engine.engine import Engine
from processor.events import Event, parse_time
from processor.kafka import clients
from processor.kafka.dead_letters import DETAIL_HEADER, REASON_HEADER, SOURCE_HEADER
from processor.worker.partition import Message, PartitionState
from processor.worker.telemetry import Telemetry
from tests.integration.worker.conftest import EXAMPLE_DEFINITIONS, EndToEnd
from tests.integration.worker.harness import (
    Producer,
    create_topic,
    delete_groups,
    delete_topics,
    now_ms,
    partition_for,
    read_topic,
    redis_worker,
    wait_exact,
)
from tests.integration.worker.workloads import generated_messages

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REVENUE = """\
metrics:
  - name: revenue_by_plan
    tier: diagnostic
    parent: weekly_active_accounts_3plus_reports
    window: 30d
    segments: [plan]
    aggregate: {event: invoice.paid, sum: amount}
  - name: paying_accounts_by_plan
    tier: diagnostic
    parent: weekly_active_accounts_3plus_reports
    window: 30d
    segments: [plan]
    entities: {key: account_id, all: [{event: invoice.paid, count_at_least: 1}]}
"""
DEPTH = 1020


def _nested(depth: int, inner: bytes = b'"pro"') -> bytes:
    return b"[" * depth + inner + b"]" * depth


def test_the_crash_loop_messages_amid_100k_events(e2e: EndToEnd, tmp_path: Path):
    definitions = tmp_path / "definitions"
    shutil.copytree(EXAMPLE_DEFINITIONS, definitions)
    (definitions / "revenue.yaml").write_text(REVENUE)
    catalog = load_definitions(definitions)
    e2e.create_topic(2)
    messages = generated_messages(14, 2, events=100_000, accounts=200, days=30)
    assert len(messages) >= 100_000
    newest = max(parse_time(str(orjson.loads(v)["timestamp"])) for _, _, v in messages if v)
    paid = {"type": "invoice.paid", "timestamp": newest - 3_600_000, "account_id": "acme",
            "amount": 1200, "currency": "USD", "event_id": "inv-deep"}  # fmt: skip
    deep_plan = orjson.dumps(paid)[:-1] + b', "plan": ' + _nested(DEPTH) + b"}"
    deep_type = b'{"type": ' + _nested(DEPTH) + b', "timestamp": 1795168800000}'
    deep_ts = b'{"type": "invoice.paid", "timestamp": ' + _nested(DEPTH, b"1") + b"}"
    poison = {deep_type: "missing_type", deep_ts: "bad_timestamp"}
    key = b"acme"
    middle = len(messages) // 2
    partition = partition_for(key, None, 2)
    injected = [(partition, key, deep_plan), *((partition, key, v) for v in poison)]
    messages[middle:middle] = injected
    worker = e2e.worker("steady", definitions)
    worker.wait_healthy()
    e2e.producer().send(messages)
    expected = wait_exact([worker], e2e.bootstrap, e2e.topic, catalog, timeout_s=180)
    # The deep plan is a segment value like any other: its label is its compact JSON.
    plan_label = "[" * DEPTH + '"pro"' + "]" * DEPTH
    assert expected["paying_accounts_by_plan"]["segments"]["plan"][plan_label] == 1

    rows = [r for rs in read_topic(e2e.bootstrap, f"{e2e.topic}.dlq").values() for r in rs]
    assert sorted((r.value or b"", r.headers[REASON_HEADER].decode()) for r in rows) == sorted(
        poison.items()
    )
    for row in rows:
        assert len(row.headers[DETAIL_HEADER]) < 300  # a short detail, never the value itself
    scrape = worker.scrape()
    assert scrape.total("nsm_events_invalid_total") == len(poison)
    assert scrape.total("nsm_events_processed_total") >= 100_000 - 1000  # duplicates aside
    assert worker.starts == 1 and worker.alive
    assert "Traceback" not in worker.log_path.read_text(errors="replace")


# ---- a failure nobody foresaw, in a real worker ------------------------------------------------

_APPLY = Engine.apply


def _failing_on_marked(engine: Engine, event: Event, seq: int, clock: int | None = None) -> Any:
    """Engine.apply, failing after it applied an event marked `"poison": true`: the state the
    worker holds then has part of the event in it, which must not count."""
    late = _APPLY(engine, event, seq, clock)
    if event.data.get("poison") is True:
        raise RuntimeError("injected failure")
    return late


def test_a_message_the_worker_fails_on_is_unprocessable_and_the_rest_exact(
    redis_url: str, redis_client: redis.Redis, kafka_bootstrap: str, unique_name: str,
    monkeypatch: pytest.MonkeyPatch,
):  # fmt: skip
    """In this process, so that the failure can be injected: the worker's own loop, clients and
    partition state, against the real Kafka and Redis."""
    catalog = load_definitions(EXAMPLE_DEFINITIONS)
    topic = f"{unique_name}-events"
    create_topic(kafka_bootstrap, topic, 1)
    newest = now_ms() - 60_000
    values = []
    for i in range(400):
        event: dict[str, Any] = {"type": "report.sent", "timestamp": newest - 1000 * (400 - i),
                                 "account_id": f"a{i % 7}", "user_id": f"u{i % 5}",
                                 "event_id": f"e{i}"}  # fmt: skip
        if i in (50, 51, 333):
            event["poison"] = True
        values.append(orjson.dumps(event))
    producer = Producer(kafka_bootstrap, topic)
    producer.send([(0, None, v) for v in values])
    producer.close()
    settings = Settings(kafka_bootstrap=kafka_bootstrap, redis_url=redis_url, topic=topic,
                        namespace=unique_name, clock="events")  # fmt: skip
    monkeypatch.setattr(Engine, "apply", _failing_on_marked)

    async def scenario() -> PartitionState:
        worker = await redis_worker(settings, catalog, Telemetry(catalog))
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=unique_name,
                                    enable_auto_commit=False)  # fmt: skip
        await consumer.start()
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        worker.consumer = consumer
        worker.producer = clients.producer(settings, "poison-test")
        await worker.producer.start()
        await worker.acquire({tp})
        loop = asyncio.create_task(worker.run())
        for _ in range(300):
            state = worker.partitions.get(0)
            if state is not None and state.offset == len(values) - 1:
                break
            assert not loop.done(), loop
            await asyncio.sleep(0.1)
        await worker.stop()
        assert loop.done() and loop.exception() is None
        return worker.partitions[0]

    try:
        state = asyncio.run(scenario())
        reference = PartitionState(catalog, 0)
        clean = [None if b'"poison"' in v else v for v in values]
        reference.apply_batch([Message(i, v) for i, v in enumerate(clean)], newest, 300_000, True)
        assert state.summarize(newest) == reference.summarize(newest)
        # The producer created the dead-letter topic (the worker's start was skipped): with the
        # broker's default partitions, among which keyless messages are spread.
        found = read_topic(kafka_bootstrap, f"{topic}.dlq").values()
        rows = sorted(
            (r for rs in found for r in rs),
            key=lambda r: int(r.headers[SOURCE_HEADER].decode().rpartition("/")[2]),
        )
        assert [(r.headers[SOURCE_HEADER].decode().rpartition("/")[2],
                 r.headers[REASON_HEADER], r.headers[DETAIL_HEADER]) for r in rows] == [
            (str(o), b"unprocessable", b"RuntimeError: injected failure") for o in (50, 51, 333)
        ]  # fmt: skip
        assert [r.value for r in rows] == [values[50], values[51], values[333]]
        counts = redis_client.hgetall(f"nsm:{unique_name}:{{{unique_name}.p0}}:meta")
        assert counts[b"invalid:unprocessable"] == b"3"
        assert counts[b"applied"] == str(len(values) - 3).encode()
    finally:
        delete_topics(kafka_bootstrap, topic)
        delete_groups(kafka_bootstrap, [unique_name])
        for key in redis_client.scan_iter(match=f"nsm:{unique_name}:*"):
            redis_client.unlink(key)
