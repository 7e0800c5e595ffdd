"""Changing and adding metrics without a gap, against the real Kafka and Redis.

The worker rebuilds a changed or new metric from the topic by itself and exports it only once it
is complete; every other metric goes on. Scraped every half second, the worker never shows a
wrong value: a metric is absent (nsm_metric_ready 0) or equal to `nsm compute` with the new
definitions. Also: reloads on SIGHUP and on a change of the files, an invalid reload that keeps
the running set, kill -9 during a rebuild, and a topic that no longer holds the window's start.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient
from kafka.structs import TopicPartition

from processor.definitions.model import Catalog
from tests.integration.test_replay_support import run_nsm
from tests.integration.worker.conftest import EndToEnd
from tests.integration.worker.harness import (
    Message,
    Scrape,
    WorkerProcess,
    comparable,
    differences,
    expected_metrics,
    partition_for,
    read_topic,
    wait_exact,
    wait_until,
    write_definitions,
)
from tests.integration.worker.workloads import random_messages
from tests.strategies import catalog_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

PARTITIONS = 4
NOW_MS = 1_795_168_800_000  # the event clock's end of the data (2026-11-20T10:00:00Z)
WINDOW = {"window": "2h", "bucket": "10m"}


def _metric(name: str, **body: Any) -> dict[str, Any]:
    return {"name": name, "tier": "diagnostic", **WINDOW, **body}


ACTIVE3 = _metric(
    "active_accounts",
    segments=["plan"],
    entities={"key": "account_id", "all": [{"event": "report.sent", "count_at_least": 3}]},
)
ACTIVE2 = {
    **ACTIVE3,
    "entities": {"key": "account_id", "all": [{"event": "report.sent", "count_at_least": 2}]},
}
DEALS = _metric("deals", aggregate={"event": "deal.won", "count": True})
PINGS = _metric("pings", aggregate={"event": "x.ping", "count": True})
USERS = _metric(
    "report_users", segments=["plan"], aggregate={"event": "report.sent", "distinct": "user_id"}
)
OLD = [ACTIVE3, DEALS, PINGS]
NEW = [ACTIVE2, DEALS, PINGS, USERS]
# The metrics that the backlog of x.ping events leaves as they are: exact at every scrape.
STEADY = ("active_accounts", "deals", "report_users")


def pings(count: int, seed: int) -> list[Message]:
    """x.ping events inside the data's time range (the event clock does not move), with ids of
    their own: only `pings` counts them."""
    out = []
    for i in range(count):
        key = f"acct-{(i * 7 + seed) % 12}".encode()
        event = {"type": "x.ping", "timestamp": NOW_MS - 3_600_000 + (i * 997) % 3_600_000,
                 "event_id": f"ping-{seed}-{i}", "account_id": key.decode()}  # fmt: skip
        out.append((partition_for(key, None, PARTITIONS), key, orjson.dumps(event)))
    return out


def check_scrape(scrape: Scrape, expected: dict[str, Any], catalog: Catalog) -> set[str]:
    """Every metric of STEADY is absent and not ready, or ready and equal to `expected`;
    returns those that are exact."""
    actual = comparable(scrape.values, catalog)
    exact = set()
    for name in STEADY:
        ready = scrape.one("nsm_metric_ready", metric=name)
        if name in scrape.values:
            assert ready == 1.0, f"{name} exported while not ready"
            assert actual[name] == expected[name], (
                f"{name} exported a wrong value:\n"
                + differences({name: actual[name]}, {name: expected[name]})
            )
            exact.add(name)
        else:
            assert ready in (None, 0.0), f"{name} is ready but not exported"
    return exact


def setup_old_worker(
    e2e: EndToEnd, events: int, partitions: int = PARTITIONS
) -> tuple[Path, WorkerProcess]:
    e2e.create_topic(partitions)
    e2e.producer().send(random_messages(7, partitions, NOW_MS, count=events))
    folder = write_definitions(e2e.folder / "definitions", OLD)
    worker = e2e.worker("w1", folder)
    worker.wait_healthy()
    wait_exact([worker], e2e.bootstrap, e2e.topic, catalog_of(OLD), timeout_s=120)
    return folder, worker


def test_a_changed_and_a_new_metric_are_rebuilt_after_a_restart_without_a_wrong_value(
    e2e: EndToEnd,
):
    folder, worker = setup_old_worker(e2e, 60_000)
    worker.terminate()
    write_definitions(folder, NEW)
    # A backlog for the live stream to apply while the rebuild runs.
    e2e.producer().send(pings(20_000, 1))
    catalog = catalog_of(NEW)
    expected, _, _ = expected_metrics(read_topic(e2e.bootstrap, e2e.topic), catalog)

    started = time.monotonic()
    worker.start()
    scrapes, not_ready, exact_at = 0, set(), None
    while time.monotonic() - started < 120:
        worker.check_alive()
        try:
            scrape = worker.scrape()
        except OSError:
            time.sleep(0.5)
            continue
        scrapes += 1
        exact = check_scrape(scrape, expected, catalog)
        not_ready |= set(STEADY) - exact
        if exact == set(STEADY) and exact_at is None:
            exact_at = time.monotonic() - started
        if exact_at is not None and scrape.one("nsm_rebuild_remaining_messages", partition="0") in (
            None, 0.0,
        ):  # fmt: skip
            break
        time.sleep(0.5)
    assert exact_at is not None, f"not exact after 120 s:\n{worker.log_tail()}"
    # The rebuilt metrics were seen missing (never as a placeholder) before they were complete.
    assert {"active_accounts", "report_users"} <= not_ready, (scrapes, not_ready)
    wait_exact([worker], e2e.bootstrap, e2e.topic, catalog, timeout_s=60)
    log = worker.log_path.read_text()
    assert "definition new or changed: rebuilding it from the topic" in log
    assert "rebuilt metrics handed over" in log
    print(f"exact {exact_at:.1f} s after the restart, {scrapes} scrapes")  # for the closing note


def test_two_workers_each_rebuild_their_partitions_and_export_only_what_all_have(
    e2e: EndToEnd,
):
    folder, first = setup_old_worker(e2e, 40_000)
    second = e2e.worker("w2", folder)
    # The second worker joins late: a rebalance may still move partitions (their lag unknown
    # for a moment) until each worker holds two.
    second.wait_healthy()
    wait_until(
        lambda: [w.scrape().one("nsm_partitions_assigned") for w in (first, second)] == [2, 2],
        60,
        "two partitions each",
    )
    wait_exact([first, second], e2e.bootstrap, e2e.topic, catalog_of(OLD), timeout_s=120)
    for worker in (first, second):
        worker.terminate()
    write_definitions(folder, NEW)
    catalog = catalog_of(NEW)
    expected, _, _ = expected_metrics(read_topic(e2e.bootstrap, e2e.topic), catalog)
    for worker in (first, second):
        worker.start()
    deadline = time.monotonic() + 120
    exact_at = None
    while time.monotonic() < deadline and exact_at is None:
        for worker in (first, second):
            worker.check_alive()
            try:
                scrape = worker.scrape()
            except OSError:
                continue
            if scrape.exporter and check_scrape(scrape, expected, catalog) == set(STEADY):
                exact_at = time.monotonic()
        time.sleep(0.5)
    assert exact_at is not None, "not exact within 120 s"
    # The group may still rebalance (the second worker joined late): once each worker holds two
    # partitions, the values are exact and stay so.
    wait_until(
        lambda: [w.scrape().one("nsm_partitions_assigned") for w in (first, second)] == [2, 2],
        60,
        "two partitions each",
    )
    wait_exact([first, second], e2e.bootstrap, e2e.topic, catalog, timeout_s=60)
    logs = [w.log_path.read_text() for w in (first, second)]
    rebuilt = [
        {json.loads(line)["partition"] for line in log.splitlines()
         if line.startswith("{") and "rebuilt metrics handed over" in line}
        for log in logs
    ]  # fmt: skip
    assert rebuilt[0] | rebuilt[1] == set(range(PARTITIONS)), rebuilt


def test_replay_before_the_deploy_then_swap_once_the_workers_run_the_definitions(
    e2e: EndToEnd,
):
    folder, worker = setup_old_worker(e2e, 20_000)
    new_folder = write_definitions(e2e.folder / "new-definitions", NEW)
    rebuilt = f"{e2e.namespace}-r"
    swap = ("namespace", "swap", rebuilt, "--live", e2e.namespace, "--topic", e2e.topic)
    client = redis.Redis.from_url(e2e.redis_url)
    try:
        replay = ("replay", "--namespace", rebuilt, "--topic", e2e.topic, "--live", e2e.namespace)
        run_nsm(*replay, "--definitions", str(new_folder), "--no-progress", "--no-history")
        # The workers still run the old definitions: swapping now would make them rebuild.
        refused = run_nsm(*swap, "--definitions", str(new_folder), expect=1).stderr
        assert "other definitions than the workers run" in refused
        write_definitions(folder, NEW)
        assert worker.process is not None
        os.kill(worker.process.pid, signal.SIGHUP)
        wait_until(
            lambda: worker.scrape().one("nsm_definitions_reloads_total", outcome="applied"),
            30,
            "the reload",
        )
        swapped = run_nsm(*swap, "--definitions", str(new_folder))
        assert f"{e2e.namespace} now serves {rebuilt}" in swapped.stdout
        wait_exact([worker], e2e.bootstrap, e2e.topic, catalog_of(NEW), timeout_s=60)
        assert "namespace swapped" in worker.log_path.read_text()
    finally:
        for key in client.scan_iter(match=f"nsm:{rebuilt}:*"):
            client.unlink(key)
        client.close()


def test_a_sighup_reload_rebuilds_and_an_invalid_one_keeps_the_running_set(e2e: EndToEnd):
    folder, worker = setup_old_worker(e2e, 20_000)
    write_definitions(folder, NEW)
    assert worker.process is not None
    os.kill(worker.process.pid, signal.SIGHUP)
    catalog = catalog_of(NEW)
    wait_exact([worker], e2e.bootstrap, e2e.topic, catalog, timeout_s=60)
    assert worker.scrape().one("nsm_definitions_reloads_total", outcome="applied") == 1.0

    # An invalid set: a typo in a field name of the model. The running set goes on.
    (folder / "metrics.yaml").write_text(
        (folder / "metrics.yaml").read_text().replace("count_at_least: 2", "count_at_lest: 2")
    )
    os.kill(worker.process.pid, signal.SIGHUP)
    wait_until(
        lambda: worker.scrape().one("nsm_definitions_reloads_total", outcome="rejected") == 1.0,
        20,
        "the invalid reload to be counted",
    )
    log = worker.log_path.read_text()
    assert "definitions reload rejected" in log
    problems = [json.loads(line) for line in log.splitlines()
                if line.startswith("{") and "metrics.yaml:" in line]  # fmt: skip
    assert any("count_at_lest" in p["message"] for p in problems), problems
    e2e.producer().send(pings(2_000, 2))
    wait_exact([worker], e2e.bootstrap, e2e.topic, catalog, timeout_s=60)
    assert worker.scrape().one("nsm_metric_ready", metric="report_users") == 1.0


def test_watch_definitions_reloads_when_the_files_change(e2e: EndToEnd):
    e2e.create_topic(PARTITIONS)
    e2e.producer().send(random_messages(11, PARTITIONS, NOW_MS, count=5_000))
    folder = write_definitions(e2e.folder / "definitions", OLD)
    worker = e2e.worker("w1", folder, extra_env={"NSM_WATCH_DEFINITIONS": "0.3"})
    worker.wait_healthy()
    wait_exact([worker], e2e.bootstrap, e2e.topic, catalog_of(OLD), timeout_s=60)
    write_definitions(folder, [m for m in NEW if m["name"] != "pings"])
    catalog = catalog_of([m for m in NEW if m["name"] != "pings"])
    wait_exact([worker], e2e.bootstrap, e2e.topic, catalog, timeout_s=60)
    scrape = worker.scrape()
    assert "pings" not in scrape.values and scrape.one("nsm_metric_ready", metric="pings") is None
    # The removed metric's state is deleted.
    client = redis.Redis.from_url(e2e.redis_url)
    try:
        keys = list(client.scan_iter(match=f"nsm:{e2e.namespace}:*:m:pings:*"))
        metas = [client.hgetall(f"nsm:{e2e.namespace}:{{{e2e.namespace}.p{p}}}:meta")
                 for p in range(PARTITIONS)]  # fmt: skip
    finally:
        client.close()
    assert keys == []
    assert all(b"def:pings" not in meta for meta in metas)


def test_kill_9_during_a_rebuild_resumes_it_and_stays_exact(e2e: EndToEnd):
    """One partition of 120,000 events: its group reads it in three batches, and the worker is
    killed once it has stored some of them but not all."""
    folder, worker = setup_old_worker(e2e, 120_000, partitions=1)
    worker.terminate()
    write_definitions(folder, NEW)
    worker.start()
    client = redis.Redis.from_url(e2e.redis_url)
    prefix = f"nsm:{e2e.namespace}:{{{e2e.namespace}.p0}}:"

    def reading() -> bool:
        worker.check_alive()
        for group in json.loads(client.hget(prefix + "meta", "shadows") or b"[]"):
            meta = client.hgetall(f"{prefix}r.{group}:meta")
            if b"offset" in meta and b"complete" not in meta:
                return True
        return False

    try:
        wait_until(reading, 90, "a rebuild that stored some of its batches", every_s=0.02)
    finally:
        client.close()
    worker.kill()
    worker.start()
    wait_exact([worker], e2e.bootstrap, e2e.topic, catalog_of(NEW), timeout_s=120)
    starts = worker.log_path.read_text().split("---- start ")
    resumed = [
        json.loads(line) for line in starts[-1].splitlines()
        if line.startswith("{") and "rebuilding metrics from the topic" in line
    ]  # fmt: skip
    assert any(r["from_offset"] > 0 for r in resumed), resumed


def test_a_topic_that_no_longer_holds_the_window_start_gives_coverage_below_1(e2e: EndToEnd):
    """Wall clock: 10 days of events with their time as the Kafka timestamp, and the oldest
    deleted as retention would (DeleteRecords moves the log start: the broker's retention check
    runs every 5 minutes). A 7-day metric is complete once everything left is applied, and its
    coverage says which share of its window that is; so for a metric added later."""
    e2e.create_topic(1)
    now = int(time.time() * 1000)
    day = 86_400_000
    events = []
    for i in range(2_000):
        ts = now - 10 * day + i * (10 * day - 60_000) // 2_000
        events.append({"type": "report.sent", "timestamp": ts, "event_id": f"e{i}",
                       "account_id": f"a{i % 50}", "user_id": f"u{i % 120}"})  # fmt: skip
    producer = e2e.producer()
    for event in events:
        producer._producer.send(e2e.topic, value=orjson.dumps(event), partition=0,
                                timestamp_ms=event["timestamp"])  # fmt: skip
    producer._producer.flush()
    cut = 1_400  # the first 7 days (and a little) are gone: the 7d window starts before
    admin = KafkaAdminClient(bootstrap_servers=e2e.bootstrap)
    try:
        admin.delete_records({TopicPartition(e2e.topic, 0): cut})
    finally:
        admin.close()
    weekly = {"name": "weekly_reports", "tier": "diagnostic", "window": "7d", "bucket": "1h",
              "aggregate": {"event": "report.sent", "count": True}}  # fmt: skip
    folder = write_definitions(e2e.folder / "definitions", [weekly])
    worker = e2e.worker("w1", folder, clock="wall")
    worker.wait_healthy()
    first_kept = events[cut]["timestamp"]

    def covered() -> Scrape | None:
        worker.check_alive()
        scrape = worker.scrape()
        return scrape if scrape.one("nsm_metric_ready", metric="weekly_reports") == 1.0 else None

    scrape = wait_until(covered, 60, "the 7d metric to be ready")
    ratio = scrape.one("nsm_metric_window_coverage_ratio", metric="weekly_reports")
    assert ratio is not None and 0 < ratio < 1
    hour = 3_600_000
    window_start = (now // hour - 7 * 24 + 1) * hour
    assert ratio == pytest.approx((now - first_kept) / (now - window_start), abs=0.01)
    assert scrape.values["weekly_reports"]["value"] == len(events) - cut

    # A metric added later is rebuilt from what the topic holds: covered likewise.
    daily = {**weekly, "name": "daily_reports", "window": "1d"}
    write_definitions(folder, [weekly, daily])
    assert worker.process is not None
    os.kill(worker.process.pid, signal.SIGHUP)
    scrape = wait_until(
        lambda: (s := worker.scrape()).one("nsm_metric_ready", metric="daily_reports") == 1.0 and s,
        60,
        "the added metric to be ready",
    )
    assert scrape.one("nsm_metric_window_coverage_ratio", metric="daily_reports") == 1.0
    assert scrape.one("nsm_metric_window_coverage_ratio", metric="weekly_reports") < 1
    in_day = sum(1 for e in events[cut:] if e["timestamp"] >= (now // hour - 23) * hour)
    assert scrape.values["daily_reports"]["value"] == in_day


def test_a_topic_ending_in_a_transaction_marker_is_complete_once_caught_up(e2e: EndToEnd):
    """A transactional producer ends the topic with a commit marker, which carries no event: the
    worker's first start is complete once its position has passed it, not never."""
    e2e.create_topic(1)
    producer = KafkaProducer(bootstrap_servers=e2e.bootstrap,
                             transactional_id=f"{e2e.name}-tx")  # fmt: skip
    try:
        producer.init_transactions()
        producer.begin_transaction()
        for partition, key, value in random_messages(5, 1, NOW_MS, count=3_000):
            producer.send(e2e.topic, key=key, value=value, partition=partition)
        producer.commit_transaction()
    finally:
        producer.close()
    folder = write_definitions(e2e.folder / "definitions", OLD)
    worker = e2e.worker("w1", folder)
    worker.wait_healthy()
    wait_exact([worker], e2e.bootstrap, e2e.topic, catalog_of(OLD), timeout_s=60)
