"""`nsm replay` against the real Kafka and Redis: equal to `nsm compute` and the oracle as of the
newest event, from the earliest offset or from a time, after an interruption, and never touching
the namespace the workers serve."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import redis
import yaml

from processor.definitions import Catalog
from processor.engine import compute_metrics
from processor.events import format_time
from processor.replay import run as replay_run
from processor.store.namespaces import info_key, target_key
from tests.integration.test_replay_support import (
    DEFINITIONS,
    PARTITIONS,
    Topic,
    catalog,
    history_topic,
    namespace_keys,
    namespaces,
    replay_json,
    run_nsm,
)
from tests.oracle import oracle_compute

__all__ = ["catalog", "history_topic", "namespaces"]  # fixtures used below


def metric_dicts() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in ("gtm.yaml", "north_stars.yaml"):
        with open(f"{DEFINITIONS}/{name}") as handle:
            out += yaml.safe_load(handle)["metrics"]
    return out


def test_a_replay_equals_compute_and_the_oracle_and_leaves_the_live_namespace_alone(
    history_topic: Topic, catalog: Catalog, namespaces: str, redis_client: redis.Redis
):
    live = f"{namespaces}-live"
    # The served namespace holds state of its own (here: an earlier, shorter replay).
    cut = format_time(history_topic.messages[len(history_topic.messages) // 3].timestamp_ms)
    replay_json(
        "--namespace",
        live,
        "--topic",
        history_topic.name,
        "--to",
        cut,
        "--live",
        f"{namespaces}-elsewhere",
    )
    before = namespace_keys(redis_client, live)
    assert before

    shadow = f"{namespaces}-full"
    replayed = replay_json("--namespace", shadow, "--topic", history_topic.name, "--live", live)

    raw = history_topic.values()
    assert replayed == compute_metrics(raw, catalog).to_json()
    oracle = oracle_compute([v.decode() for v in raw], metric_dicts(), None, 1_900_000_000_000)
    assert replayed == oracle
    assert namespace_keys(redis_client, live) == before
    info = redis_client.hgetall(info_key(shadow))
    assert info[b"status"] == b"complete"
    assert orjson.loads(info[b"end_offsets"]) == {
        str(p): sum(1 for m in history_topic.messages if m.partition == p)
        for p in range(PARTITIONS)
    }

    # Writing into the served namespace, or into what a pointer targets, is refused.
    refused = run_nsm(
        "replay",
        "--namespace",
        live,
        "--topic",
        history_topic.name,
        "--live",
        live,
        "--definitions",
        DEFINITIONS,
        expect=1,
    )
    assert "logical name" in refused.output + refused.stderr
    redis_client.set(target_key(f"{namespaces}-other"), shadow)
    refused = run_nsm(
        "replay",
        "--namespace",
        shadow,
        "--topic",
        history_topic.name,
        "--live",
        live,
        "--definitions",
        DEFINITIONS,
        "--discard",
        expect=1,
    )
    assert "serves" in refused.output + refused.stderr
    assert namespace_keys(redis_client, live) == before


def test_a_replay_from_a_time_equals_compute_over_the_messages_from_those_offsets(
    history_topic: Topic, catalog: Catalog, namespaces: str
):
    messages = history_topic.messages
    since = messages[len(messages) // 2].timestamp_ms
    # The broker's answer, derived here from what was produced: per partition, the first
    # message stamped at or after the time.
    start = {
        p: min(
            (m.offset for m in messages if m.partition == p and m.timestamp_ms >= since),
            default=10**9,
        )
        for p in range(PARTITIONS)
    }
    assert 0 < sum(start.values()) < len(messages)
    replayed = replay_json(
        "--namespace",
        f"{namespaces}-since",
        "--topic",
        history_topic.name,
        "--from",
        format_time(since),
        "--live",
        f"{namespaces}-live",
    )
    assert replayed == compute_metrics(history_topic.values(start), catalog).to_json()
    assert replayed != compute_metrics(history_topic.values(), catalog).to_json()


def test_an_interrupted_replay_resumes_to_the_same_result(
    history_topic: Topic,
    catalog: Catalog,
    namespaces: str,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
):
    name = f"{namespaces}-resumed"
    real_apply = replay_run.PartitionState.apply_batch
    calls = 0

    def apply_then_stop(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 9:
            raise KeyboardInterrupt
        return real_apply(self, *args, **kwargs)

    monkeypatch.setattr(replay_run.PartitionState, "apply_batch", apply_then_stop)
    args = (
        "replay",
        "--namespace",
        name,
        "--topic",
        history_topic.name,
        "--batch",
        "300",
        "--definitions",
        DEFINITIONS,
        "--no-progress",
        "--live",
        f"{namespaces}-live",
    )
    stopped = run_nsm(*args, expect=130)
    assert "--resume" in stopped.stderr
    assert redis_client.hget(info_key(name), "status") == b"interrupted"
    monkeypatch.setattr(replay_run.PartitionState, "apply_batch", real_apply)

    # Neither started again nor overwritten without being asked.
    assert "--resume" in run_nsm(*args, expect=1).stderr
    resumed = run_nsm(*args, "--resume")
    assert "after resuming" in resumed.stderr
    read = int(resumed.stderr.split(" messages")[0].split()[-1].replace(",", ""))
    assert 0 < read < len(history_topic.messages)
    expected = compute_metrics(history_topic.values(), catalog).to_json()
    assert orjson.loads(resumed.stdout) == expected
    # The history of a resumed replay is as exact: its last point is the final values' bucket.
    assert redis_client.hget(info_key(name), "history_points") not in (None, b"0")
