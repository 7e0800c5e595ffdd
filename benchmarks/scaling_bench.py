"""The scaling run: one topic of 16 partitions, read by 1, 2 and 4 workers in one consumer group
on this machine, with the bare consume loop over the same topic as the same-run baseline.

The workers form their group before any of them reads the topic: they start serving a namespace
whose stored offsets are already at the end of the topic (so they hold their partitions and
idle), and once every worker holds partitions the namespace pointer is swapped to an empty one
(`nsm namespace swap`, docs/backfill.md): each worker then reads its partitions from the start.
The figures run from that swap until every partition is applied to the end, so that startup and
rebalances are not in them.

Per run: events/s, the CPU the workers and Redis spent, each worker's peak memory, and the load
average before it (the machine is shared: a busy machine shows in it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from benchmarks import worker_bench
from benchmarks.data import filled_topic, forget_run, topic_end_offsets
from processor.definitions import load_definitions
from processor.partition.state import first_metric_ids, metric_id_marks
from processor.store.client import connect_sync
from processor.store.namespaces import target_key
from processor.store.partition_store import FORMAT, PartitionKeys
from processor.worker.rebuild import state_marks

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 16
WORKERS = (1, 2, 4)


def run(path: Path) -> dict[str, Any]:
    topic, total = filled_topic(path, PARTITIONS)
    worker_bench.bare_consume(topic, total)  # warm the broker, untimed
    bare = worker_bench.bare_consume(topic, total)
    runs = []
    for workers in WORKERS:
        load = os.getloadavg()[0]
        measured = group_run(topic, total, workers)
        measured["load_average_before"] = round(load, 2)
        measured["ratio_to_bare"] = round(measured["events_per_s"] / bare, 3)
        measured["partitions_per_worker"] = PARTITIONS / workers
        runs.append(measured)
    return {
        "partitions": PARTITIONS,
        "messages": total,
        "cpus": len(os.sched_getaffinity(0)),
        "bare_aiokafka_events_per_s": round(bare),
        "runs": runs,
    }


def _assigned(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read()
    except OSError:
        return 0
    for line in body.splitlines():
        if line.startswith(b"nsm_partitions_assigned "):
            return int(float(line.split()[1]))
    return 0


def group_run(topic: str, total: int, workers: int) -> dict[str, Any]:
    logical = f"bench-{uuid.uuid4().hex[:8]}"
    idle, fresh = f"{logical}-idle", f"{logical}-run"
    client = connect_sync(worker_bench.REDIS_URL)
    # Each partition of the idle namespace is stored as complete at the topic's end, for the
    # running definitions (their versions, ids and dedup horizon): the workers load it as it is,
    # with nothing to read or rebuild, until the pointer moves.
    catalog = load_definitions(ROOT / "definitions")
    ids = first_metric_ids(catalog)
    complete = {"format": FORMAT, **state_marks(catalog), **metric_id_marks(ids, len(ids) + 1)}
    for partition, end in topic_end_offsets(topic).items():
        meta = {"offset": str(end - 1), **complete}
        client.hset(PartitionKeys(idle, partition).meta, mapping=meta)  # type: ignore[arg-type]
    client.set(target_key(logical), idle)
    redis_pid = int(client.info("server")["process_id"])  # type: ignore[index]
    processes, ports = [], []
    for _ in range(workers):
        ports.append(worker_bench._free_port())
        env = {**os.environ, "NSM_TOPIC": topic, "NSM_NAMESPACE": logical,
               "NSM_METRICS_PORT": str(ports[-1]), "NSM_CLOCK": "events",
               "NSM_DEFINITIONS": str(ROOT / "definitions")}  # fmt: skip
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "processor.cli", "worker", "--tick", "0.5", "--log-level",
             "warning"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        ))  # fmt: skip
    pids = [process.pid for process in processes]

    def cpu() -> list[float]:
        return [worker_bench._cpu_seconds(pid) for pid in [*pids, redis_pid]]

    try:
        deadline = time.monotonic() + 300
        while True:  # the group formed: every partition held, by every worker some
            held = [_assigned(port) for port in ports]
            if all(held) and sum(held) == PARTITIONS:
                break
            _check(processes, deadline)
            time.sleep(0.2)
        time.sleep(2)  # and settled
        started, cpu_start = time.perf_counter(), cpu()
        client.set(target_key(logical), fresh)
        deadline = time.monotonic() + 900
        while worker_bench._applied(client, fresh, PARTITIONS) < total:  # type: ignore[arg-type]
            _check(processes, deadline)
            time.sleep(0.1)
        elapsed, spent = time.perf_counter() - started, cpu()
        used = [end - start for start, end in zip(cpu_start, spent, strict=True)]
        worker_cpu, redis_cpu = sum(used[:-1]), used[-1]
        return {
            "workers": workers,
            "events_per_s": round(total / elapsed),
            "seconds": round(elapsed, 2),
            "worker_cpu_s": round(worker_cpu, 2),
            "redis_cpu_s": round(redis_cpu, 2),
            "events_per_worker_cpu_s": round(total / max(worker_cpu, 1e-9)),
            "events_per_redis_cpu_s": round(total / max(redis_cpu, 1e-9)),
            "worker_peak_rss_mb": [worker_bench._peak_rss_mb(pid) for pid in pids],
        }
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        for name in (logical, idle, fresh):
            for key in client.scan_iter(f"nsm:{name}:*", count=1000):
                client.unlink(key)
        client.close()
        forget_run(f"nsm-{logical}")


def _check(processes: list[subprocess.Popen[bytes]], deadline: float) -> None:
    for process in processes:
        if process.poll() is not None:
            assert process.stderr is not None
            raise RuntimeError(f"worker exited: {process.stderr.read().decode()[-2000:]}")
    if time.monotonic() > deadline:
        raise RuntimeError("the scaling run timed out")
