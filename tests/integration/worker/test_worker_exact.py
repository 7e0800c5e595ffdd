"""Random workloads through the real worker equal `nsm compute` (and the oracle where it holds)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from processor.definitions import load_definitions
from tests.integration.worker.conftest import EXAMPLE_DEFINITIONS, EndToEnd
from tests.integration.worker.harness import (
    comparable,
    definition_dicts,
    now_ms,
    read_topic,
    stored_offsets,
    values_of,
    wait_exact,
    write_definitions,
)
from tests.integration.worker.workloads import generated_messages, random_catalogue, random_messages
from tests.oracle import oracle_compute
from tests.strategies import catalog_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_generated_stream_with_faults_equals_compute(e2e: EndToEnd):
    """The example definitions over `nsm generate` with duplicates, invalid messages and disorder,
    on four partitions; part of the stream arrives while the worker runs."""
    catalog = load_definitions(EXAMPLE_DEFINITIONS)
    e2e.create_topic(4)
    messages = generated_messages(11, 4, events=4000, duplicates=5, invalid=3, disorder_s=3 * 3600)
    producer = e2e.producer()
    producer.send(messages[:2500])
    worker = e2e.worker("w1")
    worker.wait_healthy()
    producer.send(messages[2500:])
    expected = wait_exact([worker], e2e.bootstrap, e2e.topic, catalog)
    assert any(v["value"] for v in expected.values()), "a workload with nothing to compare"
    # The oracle agrees here: generator repeats are exact copies, always within the horizon.
    records = read_topic(e2e.bootstrap, e2e.topic)
    raw: list[dict[str, Any] | str] = [v.decode() for v in values_of(records) if v]
    oracle = oracle_compute(raw, definition_dicts(EXAMPLE_DEFINITIONS), None, now_ms())
    assert comparable(oracle["metrics"], catalog) == expected
    ends = {p: len(rs) - 1 for p, rs in records.items()}
    assert stored_offsets(e2e.redis_url, e2e.namespace, 4) == ends
    scrape = worker.scrape()
    assert scrape.total("nsm_events_invalid_total") > 0
    assert scrape.total("nsm_events_duplicate_total") > 0


@pytest.mark.parametrize(("seed", "reused_ids"), [(1, 0.0), (2, 0.03), (3, 0.03)])
def test_random_catalogue_and_events_equal_compute(e2e: EndToEnd, seed: int, reused_ids: float):
    """Small random definitions on short windows, events spread over several windows with
    disorder, exact repeats, reused ids (within and beyond the dedup horizon) and invalid ones."""
    metrics = random_catalogue(seed)
    catalog = catalog_of(metrics)
    definitions = write_definitions(e2e.folder / "definitions", metrics)
    e2e.create_topic(3)
    messages = random_messages(seed, 3, now_ms() - 120_000, reused_ids=reused_ids)
    producer = e2e.producer()
    worker = e2e.worker("w1", definitions)
    worker.wait_healthy()
    half = len(messages) // 2
    producer.send(messages[:half])
    time.sleep(0.5)
    producer.send(messages[half:])
    expected = wait_exact([worker], e2e.bootstrap, e2e.topic, catalog)
    assert any(v["value"] for v in expected.values()), "a workload with nothing to compare"
    if not reused_ids:  # the oracle may still treat every repeat of an id as a duplicate
        records = read_topic(e2e.bootstrap, e2e.topic)
        raw: list[dict[str, Any] | str] = [v.decode() for v in values_of(records) if v]
        assert (
            comparable(oracle_compute(raw, metrics, None, now_ms())["metrics"], catalog) == expected
        )
