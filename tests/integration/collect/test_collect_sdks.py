"""Both official SDKs through `nsm collect`, real Kafka and the worker: measured exactly.

Generated calls (`nsm generate --format segment`) are sent half by segment-analytics-python and
half by rudder-sdk-python (gzip), each account's calls by one of them; the worker reads the topic
with NSM_INPUT_FORMAT=segment and definitions/segment/, and its export must equal `nsm compute`
over the topic, which must equal `nsm compute` over the calls as generated.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
import pytest

from processor.definitions import load_definitions
from processor.engine import compute_metrics
from tests.integration.collect.harness import CollectorProcess
from tests.integration.collect.sdk import (
    END_MS,
    generated_calls,
    rudder_client,
    segment_client,
    send,
)
from tests.integration.worker.conftest import EXAMPLE_DEFINITIONS, EndToEnd
from tests.integration.worker.harness import read_topic, wait_exact, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
SEGMENT_DEFINITIONS = EXAMPLE_DEFINITIONS / "segment"


def topic_calls(e2e: EndToEnd) -> list[dict[str, Any]]:
    records = read_topic(e2e.bootstrap, e2e.topic)
    return [orjson.loads(r.value) for rows in records.values() for r in rows if r.value]


def test_both_sdks_are_measured_exactly(e2e: EndToEnd, collector: CollectorProcess) -> None:
    calls = generated_calls(seed=21, accounts=12, days=10)
    accounts = sorted({c.get("groupId") or c["context"].get("groupId") or "" for c in calls})
    by_rudder = set(accounts[::2])

    def account(call: dict[str, Any]) -> str:
        return call.get("groupId") or call.get("context", {}).get("groupId") or ""

    errors: list[Any] = []
    segment = segment_client(collector.url, errors)
    rudder = rudder_client(collector.url, errors)
    sent = send(segment, (c for c in calls if account(c) not in by_rudder))
    sent += send(rudder, (c for c in calls if account(c) in by_rudder))
    for client in (segment, rudder):
        client.flush()
        client.join()
    assert errors == [] and sent == len(calls)

    stored = wait_until(
        lambda: (found := topic_calls(e2e)) and len(found) >= len(calls) and found,
        60,
        f"{len(calls)} calls in the topic",
    )
    ids = Counter(c["messageId"] for c in stored)
    assert ids == Counter(c["messageId"] for c in calls), "a call lost or produced twice"
    libraries = Counter(c["context"]["library"]["name"] for c in stored)
    assert set(libraries) == {"analytics-python"} and sum(libraries.values()) == len(calls)
    metrics = collector.scrape()
    assert metrics.one("nsm_collect_events_total") == len(calls)
    assert metrics.one("nsm_collect_produce_seconds_count") >= 2

    # What the SDKs made of the calls measures what the calls measure.
    catalog = load_definitions(SEGMENT_DEFINITIONS)
    as_generated = compute_metrics(calls, catalog, now_ms=END_MS, input_format="segment")
    via_sdks = compute_metrics(
        [orjson.dumps(c) for c in stored], catalog, now_ms=END_MS, input_format="segment"
    )
    assert via_sdks.to_json() == as_generated.to_json()
    north_star = as_generated.values["weekly_active_accounts_3plus_reports"]
    assert north_star.value and set(north_star.segments["group.plan"]) - {"unknown"}

    worker = e2e.worker(
        "segment-reader", SEGMENT_DEFINITIONS, extra_env={"NSM_INPUT_FORMAT": "segment"}
    )
    worker.wait_healthy()
    wait_exact([worker], e2e.bootstrap, e2e.topic, catalog, timeout_s=90, input_format="segment")
    assert worker.scrape().total("nsm_events_invalid_total") == 0
