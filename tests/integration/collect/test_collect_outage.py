"""Kafka going away under `nsm collect`: 503s, the SDK retries, nothing lost or counted twice.

A private stack (its own Kafka and Redis on free ports, tests/integration/worker/
test_worker_kafka_outage.py) is used, so the shared broker is never stopped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from processor.definitions import load_definitions
from processor.engine import compute_metrics
from tests.integration.collect.harness import CollectorProcess
from tests.integration.collect.sdk import END_MS, generated_calls, segment_client, send
from tests.integration.worker.conftest import (
    EXAMPLE_DEFINITIONS,
    EndToEnd,
    PrivateStack,
    outage_e2e,
    private_stack,
)
from tests.integration.worker.harness import read_topic, wait_exact, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
__all__ = ["outage_e2e", "private_stack"]  # fixtures used below


@pytest.fixture
def outage_collector(
    outage_e2e: EndToEnd, private_stack: PrivateStack, tmp_path: Path
) -> Iterator[CollectorProcess]:
    outage_e2e.create_topic(2)
    process = CollectorProcess(
        topic=outage_e2e.topic,
        bootstrap=private_stack.bootstrap,
        workdir=tmp_path,
        extra_env={"NSM_COLLECT_ACK_TIMEOUT": "3s"},
    ).start()
    try:
        process.wait_ready()
        yield process
    finally:
        process.close()


def test_a_broker_outage_is_retried_without_loss_or_double_counting(
    outage_e2e: EndToEnd, private_stack: PrivateStack, outage_collector: CollectorProcess
) -> None:
    e2e, collector = outage_e2e, outage_collector
    calls = generated_calls(seed=33, accounts=6, days=8)
    first, second = calls[: len(calls) // 2], calls[len(calls) // 2 :]
    errors: list[Any] = []
    client = segment_client(collector.url, errors)
    send(client, first)
    client.flush()
    assert errors == []

    private_stack.stop_kafka()
    send(client, second)  # the client's thread now meets 503s and keeps the calls

    def refusing() -> bool:
        scrape = collector.scrape()
        return (scrape.one("nsm_collect_requests_total", endpoint="batch", status="503") or 0) >= 2

    wait_until(refusing, 60, "the collector answering 503 while Kafka is away")
    assert collector.health() == 503
    assert collector.scrape().one("nsm_collect_kafka_up") == 0

    private_stack.up()
    client.flush()  # returns once the retried batches were accepted
    client.join()
    assert errors == [], errors
    assert collector.health() == 200

    stored = [
        orjson.loads(r.value)
        for rows in read_topic(e2e.bootstrap, e2e.topic).values()
        for r in rows
        if r.value
    ]
    ids = Counter(c["messageId"] for c in stored)
    assert set(ids) == {c["messageId"] for c in calls}, "a call acknowledged to the SDK was lost"
    repeated = sum(n - 1 for n in ids.values())
    print(f"{repeated} calls reached the topic more than once (retries), deduplicated below")

    catalog = load_definitions(EXAMPLE_DEFINITIONS / "segment")
    expected = compute_metrics(calls, catalog, now_ms=END_MS, input_format="segment")
    from_topic = compute_metrics(
        [orjson.dumps(c) for c in stored], catalog, now_ms=END_MS, input_format="segment"
    )
    assert from_topic.to_json() == expected.to_json()
    assert from_topic.duplicates == repeated
    worker = e2e.worker(
        "after-outage",
        EXAMPLE_DEFINITIONS / "segment",
        extra_env={"NSM_INPUT_FORMAT": "segment"},
    )
    worker.wait_healthy(timeout_s=90)
    wait_exact([worker], e2e.bootstrap, e2e.topic, catalog, timeout_s=90, input_format="segment")
    assert worker.scrape().total("nsm_events_duplicate_total") == repeated
