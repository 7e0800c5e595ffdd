"""The worker's automatic rebuild of one changed metric, against `nsm replay` and against the
worker's own live stream, measured in the same run.

    python -m benchmarks.rebuild_bench [--events N]

The change: the north star's `count_at_least: 3` becomes 2, the rest of the example definitions
stays. Each scenario starts from the state `nsm replay` builds with the former definitions, and
runs `nsm worker` with the new ones.

1. **Rebuild speed** (the bench topic of N events, read to its end by the replay): the worker's
   live stream has nothing to apply, and the rebuild of the changed metric reads the N events.
   Figure: N over the time from the worker storing its pending marks to the last hand-over,
   against the events/s of that `nsm replay` of every metric over the same N events.
2. **The live stream meanwhile** (a topic of 2N events, produced in two halves a second apart so
   that Kafka's timestamps tell them apart; `nsm replay --to` the first half): the live stream
   applies the second half while the rebuild reads the first. Figure: the live stream's
   events/s until the last hand-over, against a baseline run with the former definitions (no
   rebuild) on a second replay of the same state. The rebuild's events/s under this load is
   recorded too: it runs at a lower CPU priority and yields the cores to the live stream.

Kafka, Redis, the worker and its rebuild share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis

from benchmarks.data import (
    BOOTSTRAP,
    CACHE,
    PARTITIONS,
    ROOT,
    bench_producer,
    events_file,
    filled_topic,
    forget_run,
    recreate_topic,
    send_line,
    topic_end_offsets,
)
from processor.config import Settings
from processor.definitions import load_definitions
from processor.replay.run import ReplayRequest, replay
from processor.store.namespaces import drop

REDIS_URL = os.environ.get("NSM_REDIS_URL", "redis://127.0.0.1:6379/0")
CHANGED = "weekly_active_accounts_3plus_reports"


def split_topic(path: Path) -> tuple[str, int, int]:
    """A topic of every line of `path` (2N events) produced in two halves with a pause between:
    (name, events in the first half, the Kafka time between the halves)."""
    lines = path.read_bytes().splitlines()
    half = len(lines) // 2
    topic = f"nsm-bench-rebuild-{path.stem}"
    marker = CACHE / f"{topic}.json"
    if marker.exists() and sum(topic_end_offsets(topic).values()) == len(lines):
        return topic, half, int(json.loads(marker.read_text())["between_ms"])
    recreate_topic(topic)
    print(f"filling topic {topic} with 2 x {half:,} events ...", flush=True)
    producer = bench_producer()
    between = 0
    for index, line in enumerate(lines):
        if index == half:
            producer.flush()
            time.sleep(1.0)
            between = int(time.time() * 1000)
            time.sleep(1.0)
        send_line(producer, topic, line)
    producer.flush()
    producer.close()
    marker.write_text(json.dumps({"between_ms": between}))
    return topic, half, between


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _meta(client: redis.Redis, namespace: str, partition: int, field: str) -> bytes | None:
    value = client.hget(f"nsm:{namespace}:{{{namespace}.p{partition}}}:meta", field)
    return value if value is None else bytes(value)


def _applied(client: redis.Redis, namespace: str) -> int:
    offsets = [_meta(client, namespace, p, "offset") for p in range(PARTITIONS)]
    return sum(0 if o is None else int(o) + 1 for o in offsets)


def _pending(client: redis.Redis, namespace: str) -> bool:
    return any(_meta(client, namespace, p, "pending") for p in range(PARTITIONS))


def run_worker(
    topic: str, namespace: str, definitions: Path, total: int, rebuilding: bool
) -> dict[str, Any]:
    """One worker on a replayed state until it applied the whole topic (and, rebuilding, handed
    every rebuilt metric over): the live stream's events/s, and for a rebuild its duration and
    the live stream's events/s meanwhile."""
    client = redis.Redis.from_url(REDIS_URL)
    env = {**os.environ, "NSM_TOPIC": topic, "NSM_NAMESPACE": namespace, "NSM_CLOCK": "events",
           "NSM_METRICS_PORT": str(_free_port()), "NSM_DEFINITIONS": str(definitions)}  # fmt: skip
    before = _applied(client, namespace)
    process = subprocess.Popen(
        [sys.executable, "-m", "processor.cli", "worker", "--tick", "1", "--log-level", "warning"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        started = live_started = rebuilt = live_done = None
        applied_at_rebuilt = base = 0
        live_done = time.perf_counter() if before >= total else None  # nothing to apply
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"worker exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            applied = _applied(client, namespace)
            pending = rebuilding and _pending(client, namespace)
            now = time.perf_counter()
            # The rebuild starts when the worker stores its pending marks (loading the
            # partitions); the live stream when its first batch is written.
            if started is None and pending:
                started = now
            if live_started is None and applied > before:
                live_started, base = now, applied
            if started is not None and rebuilt is None and not pending:
                rebuilt, applied_at_rebuilt = now, applied
            if live_started is not None and live_done is None and applied >= total:
                live_done = now
            if live_done is not None and (rebuilt is not None or not rebuilding):
                break
            time.sleep(0.05)
        assert live_done is not None, "the worker did not finish"
        out: dict[str, Any] = {}
        if live_started is not None:
            out["live_events_per_s"] = round((total - base) / (live_done - live_started))
        if rebuilding:
            assert started is not None and rebuilt is not None
            out["rebuild_seconds"] = round(rebuilt - started, 2)
            if live_started is not None and min(rebuilt, live_done) > live_started:
                overlap_end = min(rebuilt, live_done)
                done_then = total if live_done <= rebuilt else applied_at_rebuilt
                out["live_events_per_s_during_rebuild"] = round(
                    (done_then - base) / (overlap_end - live_started)
                )
        return out
    finally:
        process.terminate()
        process.wait(timeout=30)
        client.close()


def replay_into(topic: str, namespace: str, to_ms: int | None) -> dict[str, Any]:
    """`nsm replay` of the example definitions (default processes, no history)."""
    settings = Settings()
    request = ReplayRequest(
        namespace=namespace, topic=topic, bootstrap=BOOTSTRAP,
        catalog=load_definitions(str(ROOT / "definitions")), to_ms=to_ms, history=False,
        live=f"{namespace}-live",
    )  # fmt: skip

    async def main() -> dict[str, Any]:
        client = aioredis.Redis.from_url(settings.redis_url.get_secret_value())
        try:
            report = await replay(client, settings, request)
        finally:
            await client.aclose()
        return {"events": report.events, "events_per_s": round(report.events / report.seconds),
                "processes": report.processes}  # fmt: skip

    return asyncio.run(main())


def changed_definitions(folder: Path) -> Path:
    """The example definitions with the north star's count_at_least 3 changed to 2."""
    shutil.copytree(ROOT / "definitions", folder, dirs_exist_ok=True)
    path = folder / "north_stars.yaml"
    text = path.read_text()
    path.write_text(text.replace("count_at_least: 3\n", "count_at_least: 2\n", 1))
    assert load_definitions(folder)[CHANGED] != load_definitions(ROOT / "definitions")[CHANGED]
    return folder


def run(events: int) -> dict[str, Any]:
    """The figures `make bench` records (benchmarks/run.py calls this)."""
    changed = changed_definitions(Path(tempfile.mkdtemp(prefix="nsm-bench-defs-")))
    namespaces: list[str] = []

    def fresh() -> str:
        namespaces.append(f"bench-rebuild-{uuid.uuid4().hex[:8]}")
        return namespaces[-1]

    try:
        # 1. Rebuild speed: the whole bench topic, the live stream idle.
        topic, total = filled_topic(events_file(events))
        replayed = replay_into(topic, (speed := fresh()), None)
        alone = run_worker(topic, speed, changed, total, rebuilding=True)
        rate = total / alone["rebuild_seconds"]
        # 2. The live stream while a rebuild runs, against the same stream without one.
        split, half, between = split_topic(events_file(2 * events, seed=43))
        both = sum(topic_end_offsets(split).values())
        replay_into(split, (base := fresh()), between)
        baseline = run_worker(split, base, ROOT / "definitions", both, rebuilding=False)
        replay_into(split, (busy := fresh()), between)
        loaded = run_worker(split, busy, changed, both, rebuilding=True)
        during = loaded["live_events_per_s_during_rebuild"]
        return {
            "events_rebuilt": total,
            "replay_events_per_s": replayed["events_per_s"],
            "replay_processes": replayed["processes"],
            "rebuild_seconds": alone["rebuild_seconds"],
            "rebuild_events_per_s": round(rate),
            "rebuild_ratio_to_replay": round(rate / replayed["events_per_s"], 3),
            "live_backlog": both - half,
            "live_baseline_events_per_s": baseline["live_events_per_s"],
            "live_events_per_s_during_rebuild": during,
            "live_ratio_during_rebuild": round(during / baseline["live_events_per_s"], 3),
            "rebuild_seconds_under_live_load": loaded["rebuild_seconds"],
            "rebuild_events_per_s_under_live_load": round(half / loaded["rebuild_seconds"]),
        }
    finally:
        shutil.rmtree(changed, ignore_errors=True)
        client = aioredis.Redis.from_url(REDIS_URL)

        async def clean() -> None:
            for namespace in namespaces:
                await drop(client, namespace)
            await client.aclose()

        asyncio.run(clean())
        for namespace in namespaces:
            forget_run(f"nsm-{namespace}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    print(json.dumps(run(args.events), indent=2))


if __name__ == "__main__":
    main()
