"""`nsm namespace list|diff|swap|drop` against the real Redis, and a swap seen by a running
`nsm worker`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis

from processor.definitions import Catalog
from processor.engine import compute_metrics
from processor.store.client import connect
from processor.store.namespaces import info_key, previous_key, resolve_namespace, target_key
from processor.store.partition_store import PartitionKeys
from tests.integration.test_replay_support import (
    DEFINITIONS,
    Topic,
    catalog,
    history_topic,
    namespace_keys,
    namespaces,
    replay_json,
    run_nsm,
)
from tests.ports import free_port

__all__ = ["catalog", "history_topic", "namespaces"]  # fixtures used below

PLANTED = 7
METRIC = "weekly_reports_sent"  # a count without a formula over it


def _uint(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        value |= (data[at] & 0x7F) << shift
        at += 1
        if data[at - 1] < 0x80:
            return value, at
        shift += 7


def _put_uint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def plant(client: redis.Redis, namespace: str) -> None:
    """Add PLANTED to the total of METRIC's newest bucket in one partition (docs/state.md: an
    aggregate item is `<metric id><bucket>` -> total, then each segment's labels)."""
    items = []
    for partition in range(4):
        keys = PartitionKeys(namespace, partition)
        metric_id = int(client.hget(keys.meta, f"mid:{METRIC}"))
        for field in client.hkeys(keys.aggregates):
            found, at = _uint(field, 0)
            if found == metric_id:
                zigzag, _ = _uint(field, at)
                items.append(((zigzag >> 1) ^ -(zigzag & 1), keys.aggregates, field))
    _, key, field = max(items)
    value = client.hget(key, field)
    assert value[0] == 0  # an integer total: tag 0, then its zigzag varint
    zigzag, end = _uint(value, 1)
    total = (zigzag >> 1) ^ -(zigzag & 1)
    client.hset(key, field, b"\x00" + _put_uint((total + PLANTED) << 1) + value[end:])


def resolve(url: str, logical: str) -> str:
    async def main() -> str:
        client = await connect(url)
        try:
            return await resolve_namespace(client, logical)
        finally:
            await client.aclose()

    return asyncio.run(main())


def test_diff_finds_a_planted_difference(history_topic: Topic, namespaces: str, redis_client):
    left, right = f"{namespaces}-a", f"{namespaces}-b"
    for name in (left, right):
        replay_json("--namespace", name, "--topic", history_topic.name, "--live", "x-none")
    agree = run_nsm("namespace", "diff", left, right, "--definitions", DEFINITIONS)
    assert "agree on every metric" in agree.stdout
    plant(redis_client, right)
    found = run_nsm(
        "namespace", "diff", left, right, "--definitions", DEFINITIONS, "--format", "json", expect=1
    )
    differences = orjson.loads(found.stdout)["differences"]
    assert [(d["metric"], d["segment"]) for d in differences] == [(METRIC, "")]
    assert differences[0]["right"] - differences[0]["left"] == PLANTED
    assert (
        METRIC
        in run_nsm("namespace", "diff", left, right, "--definitions", DEFINITIONS, expect=1).stdout
    )


def scraped_total(port: int, metric: str) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if (
            line.startswith("nsm_metric_value{")
            and f'metric="{metric}"' in line
            and 'segment=""' in line
        ):
            return float(line.rsplit(" ", 1)[1])
    return None


def wait_for_total(port: int, value: float, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    seen = None
    while time.monotonic() < deadline:
        seen = scraped_total(port, METRIC)
        if seen == value:
            return
        assert process.poll() is None, log.read_text()[-3000:]
        time.sleep(0.5)
    pytest.fail(f"the worker exports {METRIC}={seen}, expected {value}\n{log.read_text()[-3000:]}")


@pytest.fixture
def worker(
    history_topic: Topic, namespaces: str, redis_url: str, kafka_bootstrap: str, tmp_path: Path
) -> Iterator[tuple[int, subprocess.Popen[bytes], Path]]:
    port, log = free_port(), tmp_path / "worker.log"
    env = {
        **os.environ,
        "NSM_NAMESPACE": f"{namespaces}-live",
        "NSM_TOPIC": history_topic.name,
        "NSM_METRICS_PORT": str(port),
        "NSM_CLOCK": "events",
        "NSM_DEFINITIONS": DEFINITIONS,
        "NSM_REDIS_URL": redis_url,
        "NSM_KAFKA_BOOTSTRAP": kafka_bootstrap,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "processor.cli", "worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield port, process, log
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_swap_is_seen_by_a_running_worker(
    history_topic: Topic,
    catalog: Catalog,
    namespaces: str,
    redis_client: redis.Redis,
    redis_url: str,
    worker: tuple[int, subprocess.Popen[bytes], Path],
):
    port, process, log = worker
    live, rebuilt = f"{namespaces}-live", f"{namespaces}-rebuilt"
    expected = compute_metrics(history_topic.values(), catalog).to_json()
    total = float(expected["metrics"][METRIC]["value"])
    wait_for_total(port, total, process, log)  # the worker has consumed the topic itself

    replay_json("--namespace", rebuilt, "--topic", history_topic.name, "--live", live)
    plant(redis_client, rebuilt)  # so that the worker's numbers show where they come from
    swapped = run_nsm(
        "namespace",
        "swap",
        rebuilt,
        "--live",
        live,
        "--topic",
        history_topic.name,
        "--definitions",
        DEFINITIONS,
    )
    assert f"{live} now serves {rebuilt}" in swapped.stdout
    assert resolve(redis_url, live) == rebuilt
    assert redis_client.get(previous_key(live)) == live.encode()
    wait_for_total(port, total + PLANTED, process, log)

    # The served namespace cannot be dropped; the former one can, its pointer stays.
    assert "served as" in run_nsm("namespace", "drop", rebuilt, "--live", live, expect=1).stderr
    run_nsm("namespace", "drop", live, "--live", live)
    assert redis_client.get(target_key(live)) == rebuilt.encode()
    assert set(namespace_keys(redis_client, live)) == {
        target_key(live).encode(),
        previous_key(live).encode(),
    }


def test_swap_refuses_what_a_worker_should_not_serve(
    history_topic: Topic, namespaces: str, redis_client: redis.Redis, tmp_path: Path
):
    live = f"{namespaces}-live"
    swap = ("namespace", "swap")
    assert (
        "does not exist"
        in run_nsm(
            *swap, f"{namespaces}-nothing", "--live", live, "--topic", history_topic.name, expect=1
        ).stderr
    )
    # Built from other definitions than the workers run: only the north stars.
    only = tmp_path / "defs"
    only.mkdir()
    (only / "north_stars.yaml").write_text(Path(DEFINITIONS, "north_stars.yaml").read_text())
    partial = f"{namespaces}-partial"
    run_nsm(
        "replay",
        "--namespace",
        partial,
        "--topic",
        history_topic.name,
        "--definitions",
        str(only),
        "--no-progress",
        "--no-history",
        "--live",
        live,
    )
    refused = run_nsm(
        *swap,
        partial,
        "--live",
        live,
        "--topic",
        history_topic.name,
        "--definitions",
        DEFINITIONS,
        expect=1,
    ).stderr
    assert "other definitions" in refused and "not in" in refused
    # From another topic.
    refused = run_nsm(
        *swap,
        partial,
        "--live",
        live,
        "--topic",
        "another-topic",
        "--definitions",
        str(only),
        expect=1,
    ).stderr
    assert "another-topic" in refused
    # Not complete.
    redis_client.hset(info_key(partial), "status", "interrupted")
    refused = run_nsm(
        *swap,
        partial,
        "--live",
        live,
        "--topic",
        history_topic.name,
        "--definitions",
        str(only),
        expect=1,
    ).stderr
    assert "--resume" in refused
    assert redis_client.get(target_key(live)) is None

    listed = orjson.loads(run_nsm("namespace", "list", "--live", live, "--format", "json").stdout)
    view = next(v for v in listed if v["name"] == partial)
    assert view["status"] == "interrupted" and view["partitions"] == 4 and view["keys"] > 4
    assert view["newest_ms"] is not None
