"""The worker's automatic rebuild of one changed metric, against `nsm replay` and against the
worker's own live stream, measured in the same run.

    python -m benchmarks.rebuild_bench [--events N]

The topic holds 2N generated events: N first, then (a second later, so that Kafka's timestamps
tell the halves apart) N more. `nsm replay --to` the first half builds, twice, the state of the
example definitions as of the first half's end (its events/s is the replay figure over the same
N events the rebuild reads). Then, each on one of those states:

- baseline: `nsm worker` with the example definitions; its live stream applies the second half
  (events/s);
- rebuild: `nsm worker` with the north star's `count_at_least: 3` changed to 2. Its live stream
  applies the second half while the rebuild of the changed metric reads the first half, from
  offset 0 to where the live stream took it on. Figures: the rebuild's events/s (the first half
  over the time from the worker holding its partitions to the last hand-over), and the live
  stream's events/s over the same time, against the baseline's.

The machine runs Kafka, Redis, the worker and its rebuild at once: on two shared cores the live
stream and the rebuild compete for them.
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


def replay_first_half(topic: str, between_ms: int, namespace: str) -> dict[str, Any]:
    """`nsm replay --to` the first half into `namespace` (default processes, no history)."""
    settings = Settings()
    request = ReplayRequest(
        namespace=namespace, topic=topic, bootstrap=BOOTSTRAP,
        catalog=load_definitions(str(ROOT / "definitions")), to_ms=between_ms, history=False,
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
    """One worker on a replayed state until it applied the whole topic; the live stream's
    events/s, and for a rebuild its duration and the live stream's events/s meanwhile."""
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
        assert live_started is not None and live_done is not None, "the worker did not finish"
        live = (total - base) / (live_done - live_started)
        out: dict[str, Any] = {"live_events_per_s": round(live)}
        if rebuilding:
            assert started is not None and rebuilt is not None
            overlap_end = min(rebuilt, live_done)
            done_then = total if live_done <= rebuilt else applied_at_rebuilt
            out["rebuild_seconds"] = round(rebuilt - started, 2)
            if overlap_end > live_started:
                out["live_events_per_s_during_rebuild"] = round(
                    (done_then - base) / (overlap_end - live_started)
                )
        return out
    finally:
        process.terminate()
        process.wait(timeout=30)
        client.close()


def run(events: int) -> dict[str, Any]:
    """The figures `make bench` records (benchmarks/run.py calls this)."""
    topic, half, between = split_topic(events_file(2 * events, seed=43))
    total = sum(topic_end_offsets(topic).values())
    changed = Path(tempfile.mkdtemp(prefix="nsm-bench-defs-"))
    namespaces = []
    try:
        shutil.copytree(ROOT / "definitions", changed, dirs_exist_ok=True)
        path = changed / "north_stars.yaml"
        text = path.read_text()
        assert text.count("count_at_least: 3\n") >= 1
        path.write_text(text.replace("count_at_least: 3\n", "count_at_least: 2\n", 1))
        assert load_definitions(changed)[CHANGED] != load_definitions(ROOT / "definitions")[CHANGED]
        figures: dict[str, Any] = {"events_rebuilt": half, "live_backlog": total - half}
        results = {}
        for kind, definitions in (("baseline", ROOT / "definitions"), ("rebuild", changed)):
            namespace = f"bench-rebuild-{uuid.uuid4().hex[:8]}"
            namespaces.append(namespace)
            replayed = replay_first_half(topic, between, namespace)
            results[kind] = run_worker(topic, namespace, definitions, total, kind == "rebuild")
            results[kind]["replay"] = replayed
        replay_rate = min(r["replay"]["events_per_s"] for r in results.values())
        rebuild = results["rebuild"]
        rebuild_rate = half / rebuild["rebuild_seconds"]
        baseline = results["baseline"]["live_events_per_s"]
        during = rebuild["live_events_per_s_during_rebuild"]
        figures.update({
            "replay_events_per_s": replay_rate,
            "replay_processes": results["rebuild"]["replay"]["processes"],
            "rebuild_seconds": rebuild["rebuild_seconds"],
            "rebuild_events_per_s": round(rebuild_rate),
            "rebuild_ratio_to_replay": round(rebuild_rate / replay_rate, 3),
            "live_baseline_events_per_s": baseline,
            "live_events_per_s_during_rebuild": during,
            "live_ratio_during_rebuild": round(during / baseline, 3),
        })  # fmt: skip
        return figures
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
