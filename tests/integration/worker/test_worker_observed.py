"""The wall clock (windows slide with no new events) and what Prometheus sees of a real worker."""

from __future__ import annotations

import itertools
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from processor.definitions import load_definitions
from processor.engine import compute_metrics
from tests.integration.test_prometheus_rules import (
    generated_expressions,
    north_star_expressions,
    query,
)
from tests.integration.worker.conftest import EXAMPLE_DEFINITIONS, EndToEnd
from tests.integration.worker.harness import (
    TICK_S,
    WorkerProcess,
    comparable,
    differences,
    now_ms,
    partition_for,
    read_topic,
    values_of,
    wait_exact,
    wait_until,
    write_definitions,
)
from tests.integration.worker.workloads import generated_messages
from tests.strategies import catalog_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SHORT: list[dict[str, Any]] = [
    {"name": "recent_reports", "tier": "north_star", "window": "20s", "bucket": "5s",
     "segments": ["plan"], "aggregate": {"event": "report.sent", "count": True}},
    {"name": "recent_amount", "tier": "diagnostic", "window": "20s", "bucket": "5s",
     "aggregate": {"event": "*", "sum": "amount"}},
    {"name": "minute_accounts", "tier": "diagnostic", "window": "1m", "bucket": "10s",
     "segments": ["plan"],
     "entities": {"key": "account_id", "all": [{"event": "*", "count_at_least": 2}]}},
]  # fmt: skip


def test_wall_clock_values_equal_compute_as_of_now_and_slide_without_events(e2e: EndToEnd):
    """NSM_CLOCK=wall: each scrape equals compute as of the exported time, which follows the
    wall clock; with no new events the short windows empty on the tick (expiry on a timer)."""
    catalog = catalog_of(SHORT)
    definitions = write_definitions(e2e.folder / "definitions", SHORT)
    e2e.create_topic(2)
    rng = random.Random(4)
    start = now_ms()
    messages = []
    for i in range(60):
        account = f"acct-{rng.randrange(6)}"
        event = {"type": rng.choice(["report.sent", "seat.active"]), "account_id": account,
                 "timestamp": start - rng.randrange(0, 12_000), "plan": rng.choice(["a", "b"]),
                 "amount": rng.choice([1, 2.5]), "event_id": f"e{i}"}  # fmt: skip
        key = account.encode()
        messages.append((partition_for(key, None, 2), key, orjson.dumps(event)))
    worker = e2e.worker("wall", definitions, clock="wall")
    worker.wait_healthy()
    # faust's data folder goes to the temporary directory, not where the worker was started.
    assert not list(worker.workdir.glob("*-data"))
    e2e.producer().send(messages)
    raw = [v for v in values_of(read_topic(e2e.bootstrap, e2e.topic)) if v is not None]
    newest = max(orjson.loads(v)["timestamp"] for v in raw)

    def check_scrape() -> tuple[int, Any]:
        scrape = worker.scrape()
        assert scrape.as_of_ms is not None
        assert abs(scrape.as_of_ms - now_ms()) < 3_000, "as_of does not follow the wall clock"
        result = compute_metrics(raw, catalog, at_ms=scrape.as_of_ms, now_ms=now_ms())
        expected = comparable(result.to_json()["metrics"], catalog)
        actual = comparable(scrape.values, catalog)
        return scrape.as_of_ms, (actual, expected)

    # Once every message is applied, every scrape equals compute as of its own time.
    wait_until(lambda: worker.scrape().lag() == {0: 0, 1: 0}, 30, "lag 0")
    time.sleep(2 * TICK_S)
    seen: list[float] = []
    while True:
        as_of, (actual, expected) = check_scrape()
        assert actual == expected, f"as of {as_of}:\n" + differences(actual, expected)
        seen.append(actual["recent_reports"]["value"])
        if as_of > newest + 20_000 + 5_000:
            break
        assert now_ms() < newest + 40_000, "the window did not slide past the events"
        time.sleep(0.5)
    assert seen[0] > 0 and seen[-1] == 0
    assert any(later < earlier for earlier, later in itertools.pairwise(seen))
    assert actual["minute_accounts"]["value"] is not None


@pytest.fixture
def scraped_by_prometheus(
    e2e: EndToEnd, prometheus_targets_dir: Path
) -> Iterator[tuple[EndToEnd, WorkerProcess]]:
    """A worker over the example definitions that the shared Prometheus scrapes (file_sd)."""
    catalog = load_definitions(EXAMPLE_DEFINITIONS)
    e2e.create_topic(2)
    e2e.producer().send(generated_messages(3, 2, events=3000))
    worker = e2e.worker("scraped")
    worker.wait_healthy()
    wait_exact([worker], e2e.bootstrap, e2e.topic, catalog)
    target = prometheus_targets_dir / f"{e2e.name}.json"
    target.write_text(
        json.dumps([{"targets": [f"127.0.0.1:{worker.port}"], "labels": {"test": e2e.name}}])
    )
    try:
        yield e2e, worker
    finally:
        target.unlink(missing_ok=True)


def test_prometheus_scrapes_a_real_worker_and_the_north_star_panels_have_data(
    scraped_by_prometheus: tuple[EndToEnd, WorkerProcess], prometheus_url: str
):
    e2e, worker = scraped_by_prometheus
    catalog = load_definitions(EXAMPLE_DEFINITIONS)
    star = catalog.north_stars()[0]
    served = worker.scrape().values[star.name]["value"]
    selector = f'nsm_metric_value{{metric="{star.name}", segment="", test="{e2e.name}"}}'

    def scraped() -> list[Any]:
        return list(query(prometheus_url, selector)["data"]["result"])

    result = wait_until(scraped, 40, f"Prometheus to scrape {selector}", every_s=1)
    assert float(result[0]["value"][1]) == served
    # Every generated expression evaluates; those of the north-star panels return data, the
    # readiness and coverage panels included, but those that need a week of history (week-over-
    # week comparisons, the seasonal centre recorded from them) or an active alert (ALERTS).
    for where, expr in generated_expressions():
        answer = query(prometheus_url, expr)
        assert answer["status"] == "success", f"{where}: {answer.get('error')}"
    expressions = north_star_expressions(catalog)
    assert any("nsm_metric_ready" in expr for _, expr in expressions)
    empty = [
        where
        for where, expr in expressions
        if not _needs_history_or_an_alert(expr)
        and not query(prometheus_url, expr)["data"]["result"]
    ]
    assert not empty
    # This worker's own readiness and coverage, as Prometheus scraped them.
    for name in ("nsm_metric_ready", "nsm_metric_window_coverage_ratio"):
        own = query(prometheus_url, f'{name}{{metric="{star.name}", test="{e2e.name}"}}')
        assert [float(r["value"][1]) for r in own["data"]["result"]] == [1.0], (name, own)


def _needs_history_or_an_alert(expr: str) -> bool:
    return "offset" in expr or "nsm:metric_value:seasonal" in expr or expr.startswith("ALERTS")
