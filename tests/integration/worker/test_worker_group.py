"""Two workers in one consumer group split the partitions, stay exact through rebalances, and
exactly one of them exports the nsm_metric_value series."""

from __future__ import annotations

import time

import pytest

from processor.definitions import load_definitions
from tests.integration.worker.conftest import EXAMPLE_DEFINITIONS, EndToEnd
from tests.integration.worker.harness import TICK_S, WorkerProcess, wait_exact, wait_until
from tests.integration.worker.workloads import generated_messages

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]


def assert_one_exporter(workers: list[WorkerProcess], scrapes: int = 5) -> None:
    """At every scrape, one worker says nsm_exporter 1 and serves the values; the others say 0
    and serve no nsm_metric_value series at all."""
    for _ in range(scrapes):
        answers = [w.scrape() for w in workers]
        exporters = [a for a in answers if a.exporter]
        assert len(exporters) == 1, [a.one("nsm_exporter") for a in answers]
        assert exporters[0].samples.get("nsm_metric_value")
        for other in answers:
            if other is not exporters[0]:
                assert other.one("nsm_exporter") == 0
                assert not other.samples.get("nsm_metric_value")
                assert other.as_of_ms is None
        time.sleep(TICK_S)


def test_two_workers_split_partitions_and_stay_exact_through_rebalances(e2e: EndToEnd):
    catalog = load_definitions(EXAMPLE_DEFINITIONS)
    e2e.create_topic(4)
    messages = generated_messages(31, 4, events=9000, duplicates=3, invalid=2, disorder_s=600)
    third = len(messages) // 3
    producer = e2e.producer()
    a = e2e.worker("a")
    a.wait_healthy()
    producer.send(messages[:third])
    wait_exact([a], e2e.bootstrap, e2e.topic, catalog)

    # B joins while messages flow: the first rebalance.
    b = e2e.worker("b")
    producer.send(messages[third : third + third // 2])
    b.wait_healthy()
    producer.send(messages[third + third // 2 : 2 * third])

    def split() -> bool:
        owned = [set(w.health()[1]["partitions"]) for w in (a, b)]  # type: ignore[index]
        return all(owned) and owned[0] | owned[1] == {0, 1, 2, 3} and not owned[0] & owned[1]

    wait_until(split, 40, "the two workers to split the four partitions")
    wait_exact([a, b], e2e.bootstrap, e2e.topic, catalog)
    assert_one_exporter([a, b])
    assert all(w.scrape().one("nsm_partitions_assigned") == 2 for w in (a, b))

    # The exporter leaves (SIGTERM) while the rest is produced: the second rebalance, and the
    # export moves to the remaining worker.
    leaving = a if a.scrape().exporter else b
    staying = b if leaving is a else a
    producer.send(messages[2 * third : 2 * third + 500])
    code, _ = leaving.terminate()
    assert code == 0, leaving.log_tail()
    producer.send(messages[2 * third + 500 :])
    wait_exact([staying], e2e.bootstrap, e2e.topic, catalog)
    assert staying.scrape().one("nsm_partitions_assigned") == 4

    # It comes back: a third rebalance, still exact, still one exporter.
    leaving.start()
    leaving.wait_healthy()
    wait_until(split, 40, "the partitions to be split again")
    wait_exact([a, b], e2e.bootstrap, e2e.topic, catalog)
    assert_one_exporter([a, b])
