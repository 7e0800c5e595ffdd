"""Bad input: every kind of invalid message goes to `<topic>.dlq` with its reason and is counted,
the worker keeps running, the valid events around them are exact; late events are counted."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from processor.kafka.dead_letters import REASON_HEADER, SOURCE_HEADER
from tests.integration.worker.conftest import EndToEnd
from tests.integration.worker.harness import (
    Message,
    now_ms,
    partition_for,
    read_topic,
    wait_exact,
    wait_until,
    write_definitions,
)
from tests.strategies import catalog_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

METRICS: list[dict[str, Any]] = [
    {"name": "reports", "tier": "north_star", "window": "1h", "bucket": "10m",
     "segments": ["plan"], "aggregate": {"event": "report.sent", "count": True}},
    {"name": "active_accounts", "tier": "diagnostic", "window": "30m", "bucket": "5m",
     "entities": {"key": "account_id", "all": [{"event": "*", "count_at_least": 2}]}},
]  # fmt: skip


def corpus(now: int) -> list[tuple[bytes | None, str]]:
    """(message value, the reason it must be rejected with)."""
    event = {"type": "report.sent", "account_id": "a1"}
    return [
        (b"{not json", "not_json"),
        (b"", "not_json"),  # an empty message
        (None, "not_json"),  # a tombstone: no value at all
        (b'{"type": "report.sent", "timestamp": 1, "x": "\xff\xfe"}', "not_json"),  # bad UTF-8
        (b'{"type": "report.sent", "timestamp": NaN}', "not_json"),
        (b"[1, 2, 3]", "not_object"),
        (b'"just a string"', "not_object"),
        (b"42", "not_object"),
        (orjson.dumps({"timestamp": now}), "missing_type"),
        (orjson.dumps({"type": 7, "timestamp": now}), "missing_type"),
        (orjson.dumps({"type": "report.sent"}), "missing_timestamp"),
        (orjson.dumps({"type": "report.sent", "timestamp": None}), "missing_timestamp"),
        (orjson.dumps({**event, "timestamp": "2026-11-20T10:00:00"}), "bad_timestamp"),  # no zone
        (orjson.dumps({**event, "timestamp": True}), "bad_timestamp"),
        (orjson.dumps({**event, "timestamp": float(now)}), "bad_timestamp"),
        (orjson.dumps({**event, "timestamp": str(now)}), "bad_timestamp"),
        (orjson.dumps({**event, "timestamp": now + 3_600_000}), "future_timestamp"),
        (b"x" * 900_000, "not_json"),  # a huge message
        (orjson.dumps({**event, "timestamp": now, "pad": "y" * 900_000})[:-2], "not_json"),
    ]


def test_invalid_corpus_goes_to_the_dead_letter_topic_and_valid_events_stay_exact(e2e: EndToEnd):
    catalog = catalog_of(METRICS)
    definitions = write_definitions(e2e.folder / "definitions", METRICS)
    e2e.create_topic(2)
    now = now_ms() - 60_000
    bad = corpus(now_ms())
    messages: list[Message] = []
    for i, (value, _) in enumerate(bad):
        account = f"acct-{i % 5}"
        good = {"type": "report.sent", "timestamp": now - i * 60_000, "account_id": account,
                "plan": ["free", "pro"][i % 2], "event_id": f"e{i}"}  # fmt: skip
        partition = partition_for(account.encode(), None, 2)  # an entity in one partition
        messages.append((partition, account.encode(), orjson.dumps(good)))
        messages.append((partition, account.encode(), value))
    # A huge valid event is applied like any other.
    huge = {"type": "report.sent", "timestamp": now, "account_id": "big", "pad": "z" * 700_000}
    messages.append((0, b"big", orjson.dumps(huge)))
    worker = e2e.worker("w", definitions)
    worker.wait_healthy()
    e2e.producer().send(messages)
    expected = wait_exact([worker], e2e.bootstrap, e2e.topic, catalog)
    assert expected["reports"]["value"] == len(bad) + 1
    worker.check_alive()

    scrape = worker.scrape()
    wanted: dict[str, int] = {}
    for _, reason in bad:
        wanted[reason] = wanted.get(reason, 0) + 1
    counted = {
        labels["reason"]: int(v) for labels, v in scrape.samples["nsm_events_invalid_total"] if v
    }
    assert counted == wanted
    assert scrape.total("nsm_events_processed_total") == len(bad) + 1

    def dead_letters() -> list[Any]:
        found = read_topic(e2e.bootstrap, f"{e2e.topic}.dlq")
        rows = [r for rs in found.values() for r in rs]
        return rows if len(rows) >= len(bad) else []

    rows = wait_until(dead_letters, 20, "every invalid message in the dead-letter topic")
    got = sorted((r.value or b"", r.headers[REASON_HEADER].decode()) for r in rows)
    assert got == sorted((v or b"", reason) for v, reason in bad)
    for row in rows:
        topic, _, offset = row.headers[SOURCE_HEADER].decode().rpartition("/")
        assert topic.startswith(e2e.topic) and offset.isdigit()
    tombstones = [r for r in rows if r.value is None]
    assert len(tombstones) == 1


def test_late_events_are_counted_and_not_applied(e2e: EndToEnd):
    """NSM_CLOCK=events: after newer events, ones older than a metric's window are late for
    that metric (counted per metric), and still applied to the metrics whose window holds them."""
    catalog = catalog_of(METRICS)
    definitions = write_definitions(e2e.folder / "definitions", METRICS)
    e2e.create_topic(1)
    now = now_ms() - 10_000
    newer = [
        orjson.dumps({"type": "report.sent", "timestamp": now - k * 1000, "account_id": "a"})
        for k in range(3)
    ]
    # 45 minutes old: late for the 30-minute window only; 2 hours old: late for both.
    late_one = orjson.dumps({"type": "report.sent", "timestamp": now - 45 * 60_000,
                             "account_id": "b"})  # fmt: skip
    late_both = orjson.dumps({"type": "report.sent", "timestamp": now - 2 * 3_600_000,
                              "account_id": "b"})  # fmt: skip
    worker = e2e.worker("w", definitions)
    worker.wait_healthy()
    producer = e2e.producer()
    producer.send([(0, b"a", v) for v in newer])
    time.sleep(1)
    producer.send([(0, b"b", late_one), (0, b"b", late_both), (0, b"b", late_one)])
    expected = wait_exact([worker], e2e.bootstrap, e2e.topic, catalog)
    assert expected["reports"]["value"] == 5
    scrape = worker.scrape()
    late = {labels["metric"]: v for labels, v in scrape.samples.get("nsm_events_late_total", [])}
    assert late == {"active_accounts": 3, "reports": 1}
