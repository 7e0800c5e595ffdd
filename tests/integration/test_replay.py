"""`nsm replay` against the real Kafka and Redis: equal to `nsm compute` and the oracle as of the
newest event, from the earliest offset or from a time, after an interruption, and never touching
the namespace the workers serve."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
import yaml

from processor.definitions import Catalog
from processor.engine import compute_metrics
from processor.engine.summaries import decode_summary
from processor.events import format_time
from processor.partition import state as partition_state
from processor.store.namespaces import history_key, info_key, target_key
from processor.store.partition_store import PartitionKeys
from tests.faults import injected_fault
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
            out += yaml.safe_load(handle).get("metrics", [])
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


def assert_resumed_exactly(
    client: redis.Redis, name: str, topic: Topic, catalog: Catalog, stdout: str | bytes
) -> None:
    """The resumed replay's values equal compute over the whole topic, and the counts add up
    over both runs: every message once, whatever was in flight when it was interrupted."""
    assert orjson.loads(stdout) == compute_metrics(topic.values(), catalog).to_json()
    info = {k.decode(): v for k, v in client.hgetall(info_key(name)).items()}
    counted = int(info["applied"]) + int(info["duplicates"])
    counted += sum(orjson.loads(info["invalid"]).values())
    assert counted == len(topic.messages)


def test_an_interrupted_replay_resumes_to_the_same_result(
    history_topic: Topic,
    catalog: Catalog,
    namespaces: str,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
):
    name = f"{namespaces}-resumed"
    real_apply = partition_state.PartitionState.apply_batch
    calls = 0

    def apply_then_stop(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 9:
            raise KeyboardInterrupt
        return real_apply(self, *args, **kwargs)

    monkeypatch.setattr(partition_state.PartitionState, "apply_batch", apply_then_stop)
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
    monkeypatch.setattr(partition_state.PartitionState, "apply_batch", real_apply)

    # Neither started again nor overwritten without being asked.
    assert "--resume" in run_nsm(*args, expect=1).stderr
    resumed = run_nsm(*args, "--resume")
    assert "after resuming" in resumed.stderr
    read = int(resumed.stderr.split(" messages")[0].split()[-1].replace(",", ""))
    assert 0 < read < len(history_topic.messages)
    assert_resumed_exactly(redis_client, name, history_topic, catalog, resumed.stdout)
    # The history of a resumed replay is as exact: its last point is the final values' bucket.
    assert redis_client.hget(info_key(name), "history_points") not in (None, b"0")


def _history(client: redis.Redis, namespace: str) -> dict[bytes, Any]:
    return {
        t: orjson.loads(zlib.decompress(raw)) if t != b"meta" else orjson.loads(raw)
        for t, raw in client.hgetall(history_key(namespace)).items()
    }


def test_a_replay_in_several_processes_equals_one_in_a_single_process(
    history_topic: Topic, catalog: Catalog, namespaces: str, redis_client: redis.Redis
):
    common = ("--topic", history_topic.name, "--live", f"{namespaces}-live")
    single = run_nsm("replay", "--definitions", DEFINITIONS, "--no-progress",
                     "--namespace", f"{namespaces}-one", "--processes", "1", *common)  # fmt: skip
    several = run_nsm("replay", "--definitions", DEFINITIONS, "--no-progress",
                      "--namespace", f"{namespaces}-two", "--processes", "3", *common)  # fmt: skip
    assert "(1 process)" in single.stderr and "(3 processes)" in several.stderr
    expected = compute_metrics(history_topic.values(), catalog).to_json()
    assert orjson.loads(several.stdout) == orjson.loads(single.stdout) == expected
    one, two = (
        _history(redis_client, f"{namespaces}-one"),
        _history(redis_client, f"{namespaces}-two"),
    )
    assert len(one) > 100
    assert two == one
    # The stored state is the same too: every partition's offset and summary.
    for p in range(PARTITIONS):
        keys = [PartitionKeys(n, p) for n in (f"{namespaces}-one", f"{namespaces}-two")]
        assert redis_client.hget(keys[0].meta, "offset") == redis_client.hget(
            keys[1].meta, "offset"
        )
        summaries = [decode_summary(catalog, redis_client.get(k.summary)) for k in keys]
        assert summaries[0] == summaries[1]


def _slow_replay(
    client: redis.Redis, topic: Topic, namespaces: str, name: str, own_group: bool
) -> tuple[list[str], subprocess.Popen[bytes]]:
    """A replay in two processes, in batches of two messages, once every partition has some of
    its state stored; with `own_group`, in a process group of its own as a shell gives a
    foreground job, so that Ctrl-C reaches every process."""
    args = [sys.executable, "-m", "processor.cli", "replay", "--namespace", name,
            "--topic", topic.name, "--definitions", DEFINITIONS, "--no-progress",
            "--live", f"{namespaces}-live", "--processes", "2", "--batch", "2"]  # fmt: skip
    replay = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              start_new_session=own_group)  # fmt: skip
    deadline = time.monotonic() + 60
    keys = [PartitionKeys(name, p).meta for p in range(PARTITIONS)]
    while not all(client.hget(k, "offset") for k in keys):
        assert replay.poll() is None, replay.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return args, replay


def _resume(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    resumed = subprocess.run([*args, "--resume", "--batch", "5000"], capture_output=True,
                             timeout=120)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert b"after resuming" in resumed.stderr
    return resumed


def test_ctrl_c_stops_every_process_of_a_replay_and_resume_finishes_it_exactly(
    history_topic: Topic, catalog: Catalog, namespaces: str, redis_client: redis.Redis
):
    name = f"{namespaces}-interrupted"
    args, replay = _slow_replay(redis_client, history_topic, namespaces, name, own_group=True)
    os.killpg(replay.pid, signal.SIGINT)
    _, stderr = replay.communicate(timeout=60)
    assert replay.returncode == 130, stderr
    assert b"--resume" in stderr
    assert redis_client.hget(info_key(name), "status") == b"interrupted"
    keys = [PartitionKeys(name, p).meta for p in range(PARTITIONS)]
    stored = sum(int(redis_client.hget(k, "offset") or -1) + 1 for k in keys)
    assert 0 < stored < len(history_topic.messages)

    resumed = _resume(args)
    assert_resumed_exactly(redis_client, name, history_topic, catalog, resumed.stdout)


def test_a_replay_process_killed_with_sigkill_fails_the_replay_and_resume_finishes_it_exactly(
    history_topic: Topic, catalog: Catalog, namespaces: str, redis_client: redis.Redis
):
    name = f"{namespaces}-killed"
    args, replay = _slow_replay(redis_client, history_topic, namespaces, name, own_group=False)
    children = subprocess.run(["pgrep", "-P", str(replay.pid)], capture_output=True, text=True)
    shards = [int(pid) for pid in children.stdout.split()
              if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]  # fmt: skip
    assert len(shards) == 2
    os.kill(shards[0], signal.SIGKILL)
    _, stderr = replay.communicate(timeout=60)
    assert replay.returncode == 1, stderr
    assert b"exit code -9" in stderr and b"--resume" in stderr
    assert redis_client.hget(info_key(name), "status") == b"interrupted"

    resumed = _resume(args)
    assert_resumed_exactly(redis_client, name, history_topic, catalog, resumed.stdout)


def test_a_message_the_engine_fails_on_is_unprocessable_and_the_rest_replayed_exactly(
    history_topic: Topic, catalog: Catalog, namespaces: str, redis_client: redis.Redis
):
    """A failure injected on one event (tests/faults.py): the replay counts it as unprocessable,
    restores its partition from what it stored, and applies the rest once."""
    values = history_topic.values()
    ids = []
    for value in values:
        try:
            event = orjson.loads(value)
        except orjson.JSONDecodeError:
            continue  # the topic mixes in invalid messages, some cut off after their event_id
        if isinstance(event, dict) and isinstance(event.get("event_id"), str):
            ids.append(event["event_id"])
    marker = orjson.dumps({"event_id": ids[len(ids) // 2]})[1:-1]  # `"event_id":"..."`
    assert sum(marker in v for v in values) == 1
    name = f"{namespaces}-failing"
    with injected_fault(marker):
        replayed = replay_json("--namespace", name, "--topic", history_topic.name, "--live",
                               f"{namespaces}-live", "--batch", "50")  # fmt: skip
    clean = [None if marker in v else v for v in values]
    assert replayed == compute_metrics(clean, catalog).to_json()
    info = {k.decode(): v for k, v in redis_client.hgetall(info_key(name)).items()}
    assert orjson.loads(info["invalid"]).get("unprocessable") == 1
