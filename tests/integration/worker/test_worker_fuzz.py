"""Fuzzing the real worker: hostile messages (tests/hostile.py) against the real Kafka and Redis.

One worker reads one topic for the whole test; each hypothesis example adds its messages to the
topic. After each, the worker must still run (never restarted), every message must be applied
or in the dead-letter topic with the reason `nsm compute` gives it, and the export must equal
`nsm compute` over every message so far. The fast variant of the same generator, against the
Python engine and the native core, is tests/unit/test_hostile_messages.py.

No shrinking: the topic keeps what every example sent. A failure prints the example's messages.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings

from processor.engine import compute_metrics
from processor.kafka.dead_letters import REASON_HEADER, SOURCE_HEADER
from tests import hostile
from tests.integration.worker.conftest import EndToEnd
from tests.integration.worker.harness import (
    now_ms,
    read_topic,
    wait_exact,
    wait_until,
    write_definitions,
)
from tests.strategies import catalog_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

EXAMPLES = 20
MAX_MESSAGE_BYTES = 900_000  # under the broker's limit on a message (1 MB)


def test_no_message_stops_the_worker_and_every_one_is_applied_or_dead_lettered(
    e2e: EndToEnd, tmp_path: Path
):
    catalog = catalog_of(hostile.METRICS)
    definitions = write_definitions(tmp_path / "definitions", hostile.METRICS)
    e2e.create_topic(1)
    worker = e2e.worker("fuzzed", definitions)
    worker.wait_healthy()
    producer = e2e.producer()
    # One valid event first: the values are then as of the newest event of the topic (the
    # event clock), not as of the wall clock, which compute and the worker read apart.
    anchor = orjson.dumps({"type": "report.sent", "timestamp": hostile.BASE_MS, "status": "ok"})
    producer.send([(0, None, anchor)])
    sent: list[bytes | None] = [anchor]

    @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(hostile.messages(max_size=40))
    def example(raw: list[bytes | None]) -> None:
        messages = [m for m in raw if m is None or len(m) <= MAX_MESSAGE_BYTES]
        # A tombstone needs a key (the producer refuses a message with neither).
        producer.send([(0, b"tombstone" if m is None else None, m) for m in messages])
        sent.extend(messages)
        wait_exact([worker], e2e.bootstrap, e2e.topic, catalog, timeout_s=60)
        values = [r.value for r in read_topic(e2e.bootstrap, e2e.topic)[0]]
        assert values == sent
        result = compute_metrics(values, catalog, now_ms=now_ms())
        expected = {r.position: r.reason for r in result.rejected}

        def dead_letters() -> dict[int, str] | None:
            rows = read_topic(e2e.bootstrap, f"{e2e.topic}.dlq").get(0, [])
            found = {int(r.headers[SOURCE_HEADER].decode().rpartition("/")[2]):
                     r.headers[REASON_HEADER].decode() for r in rows}  # fmt: skip
            return found if len(found) >= len(expected) else None

        assert wait_until(dead_letters, 30, "every invalid message dead-lettered") == expected
        worker.check_alive()

    example()
    assert worker.starts == 1 and worker.alive
    scrape = worker.scrape()
    result = compute_metrics(sent, catalog, now_ms=now_ms())
    # A worker forgets an event id once its clock is two longest windows past the id's horizon
    # (docs/semantics.md); `nsm compute` never forgets. A repeat of a forgotten id, which hostile
    # timestamps decades apart can make, is then applied by the worker, late everywhere (no value
    # changes, checked above), where compute calls it a duplicate. Every valid event is one or
    # the other in both.
    processed = scrape.total("nsm_events_processed_total")
    duplicates = scrape.total("nsm_events_duplicate_total")
    assert processed + duplicates == result.applied + result.duplicates
    assert result.applied <= processed
    assert scrape.total("nsm_events_invalid_total") == sum(result.invalid.values())
    assert "Traceback" not in worker.log_path.read_text(errors="replace")
