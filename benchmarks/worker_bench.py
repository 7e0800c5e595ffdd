"""The streaming worker's sustained events/s on a pre-filled topic, against two baselines over the
same topic in the same run: (a) a bare aiokafka consume-and-decode loop, (b) a naive faust agent
making one Redis round trip per event. Also Redis memory: the state per active (entity, metric),
and the dedup ids per id kept; the /metrics scrape time; and what the run cost: CPU seconds of the
workers and of Redis, and the workers' peak memory (capacity figures, docs/capacity.md)."""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import redis
from aiokafka import AIOKafkaConsumer
from prometheus_client import generate_latest

from benchmarks.data import BOOTSTRAP, forget_run
from processor.definitions import load_definitions
from processor.definitions.model import Catalog, Metric
from processor.engine import MetricValue
from processor.engine.summaries import stored_as_of
from processor.store.client import connect_sync
from processor.worker.readiness import MetricStatus
from processor.worker.runtime import MAX_FETCH_RECORDS
from processor.worker.telemetry import Telemetry

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("NSM_REDIS_URL", "redis://127.0.0.1:6379/0")


def bare_consume(topic: str, total: int) -> float:
    async def loop() -> float:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=BOOTSTRAP, group_id=f"bench-bare-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest", enable_auto_commit=False,
            max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024,
        )  # fmt: skip
        await consumer.start()
        count, started = 0, None
        try:
            while count < total:
                batches = await consumer.getmany(timeout_ms=1000, max_records=MAX_FETCH_RECORDS)
                if started is None and batches:
                    started = time.perf_counter()
                for records in batches.values():
                    for record in records:
                        orjson.loads(record.value)
                    count += len(records)
        finally:
            await consumer.stop()
        assert started is not None
        return count / (time.perf_counter() - started)

    return asyncio.run(loop())


def naive_faust(topic: str, seconds: float = 20) -> float:
    out = ROOT / ".stack" / f"naive-{uuid.uuid4().hex[:8]}.txt"
    env = {**os.environ, "BENCH_TOPIC": topic, "BENCH_SECONDS": str(seconds),
           "BENCH_RUN": out.stem, "BENCH_OUT": str(out), "PYTHONPATH": str(ROOT)}  # fmt: skip
    app = ROOT / "benchmarks" / "naive_faust_app.py"
    result = subprocess.run(
        [sys.executable, str(app), "worker", "--loglevel", "warn"], env=env, cwd=ROOT / ".stack",
        capture_output=True, text=True, timeout=seconds + 120,
    )  # fmt: skip
    if not out.exists():
        raise RuntimeError(f"naive faust baseline failed: {result.stderr[-2000:]}")
    count, elapsed = out.read_text().split()
    out.unlink()
    forget_run(f"nsm-bench-naive-{out.stem}")
    with connect_sync(REDIS_URL) as client:
        client.unlink(f"nsm:bench-naive-{out.stem}:counts")
    return int(count) / float(elapsed)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _applied(client: redis.Redis, namespace: str, partitions: int) -> int:
    total = 0
    for p in range(partitions):
        offset = client.hget(f"nsm:{namespace}:{{{namespace}.p{p}}}:meta", "offset")
        total += 0 if offset is None else int(offset) + 1
    return total


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a local process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def worker(
    topic: str, total: int, partitions: int, workers: int = 1, measure_memory: bool | None = None
) -> dict[str, Any]:
    """Sustained events/s of `workers` worker processes in one consumer group, from the moment
    every worker holds partitions (the group is formed; with one worker, its first applied batch)
    until every partition's applied offset reaches the end of the topic; the CPU the workers and
    Redis spent over that time and the workers' peak memory; with one worker (or
    `measure_memory`), also the scrape and Redis memory."""
    if measure_memory is None:
        measure_memory = workers == 1
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    client = connect_sync(REDIS_URL)
    processes, ports = [], []
    for _ in range(workers):
        ports.append(_free_port())
        env = {**os.environ, "NSM_TOPIC": topic, "NSM_NAMESPACE": namespace,
               "NSM_METRICS_PORT": str(ports[-1]), "NSM_CLOCK": "events",
               "NSM_DEFINITIONS": str(ROOT / "definitions")}  # fmt: skip
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "processor.cli", "worker", "--tick", "2", "--log-level",
             "warning"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        ))  # fmt: skip
    redis_pid = int(client.info("server")["process_id"])
    pids = [process.pid for process in processes]
    try:
        # (time, applied messages, CPU seconds of each worker and of Redis) at the first applied
        # batch of any worker, once every worker holds partitions, and at the end of the topic.
        Mark = tuple[float, int, list[float]]

        def mark(applied: int) -> Mark:
            return time.perf_counter(), applied, [_cpu_seconds(p) for p in [*pids, redis_pid]]

        drain: Mark | None = None
        group: Mark | None = None
        end: Mark | None = None
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            applied = _applied(client, namespace, partitions)
            if drain is None and applied:
                drain = mark(applied)
            if group is None and applied and all(_holds_partitions(port) for port in ports):
                group = mark(applied)
            if applied >= total:
                end = mark(applied)
                break
            for process in processes:
                if process.poll() is not None:
                    raise RuntimeError(f"worker exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            time.sleep(0.2)
        assert drain is not None, "the worker applied nothing"
        assert end is not None, "the workers did not reach the end of the topic within 900 s"
        # With several workers, the group's figure only when at least a quarter of the topic is
        # left once the group has formed: a small topic is drained before. Otherwise (and for
        # the CPU figures) the drain from the first applied batch, startup and rebalances in it.
        grouped = group is not None and (workers == 1 or total - group[1] >= total / 4)
        since = group if grouped and group is not None else drain
        elapsed = end[0] - since[0]
        spent = [e - s for s, e in zip(since[2], end[2], strict=True)]
        worker_cpu, redis_cpu = sum(spent[:-1]), spent[-1]
        measured = total - since[1]
        cost = {
            "workers": workers,
            "events_per_s": round(measured / elapsed) if grouped else None,
            "drain_events_per_s": round((total - drain[1]) / (end[0] - drain[0])),
            "measured_events": measured,
            "seconds": round(elapsed, 2),
            "worker_cpu_s": round(worker_cpu, 2),
            "redis_cpu_s": round(redis_cpu, 2),
            "events_per_worker_cpu_s": round(measured / max(worker_cpu, 1e-9)),
            "events_per_redis_cpu_s": round(measured / max(redis_cpu, 1e-9)),
            "worker_peak_rss_mb": [_peak_rss_mb(pid) for pid in pids],
        }
        if not measure_memory:
            return cost
        _await_final_summaries(client, namespace, partitions)
        time.sleep(1)  # the export follows the summaries in the same tick
        exporter = next(port for port in ports if _exports(port))
        scrape_s, series, by_metric = _scrape(exporter)
        memory = _memory_per_entity_metric(
            client, namespace, load_definitions(ROOT / "definitions")
        )
        return {**cost, "scrape_ms": round(scrape_s * 1000, 1), "scrape_series": series,
                "scrape_series_by_metric": by_metric, **memory}  # fmt: skip
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        for key in client.scan_iter(f"nsm:{namespace}:*", count=1000):
            client.unlink(key)
        client.close()
        forget_run(f"nsm-{namespace}")


def _await_final_summaries(client: redis.Redis, namespace: str, partitions: int) -> None:
    """Until every partition's stored summary is as of the newest event (the event clock), so
    that expiry has run and the export is final: the tick summarises at most a fifth of the time,
    so under load the last summaries may be seconds old when the last batch lands."""
    metas = [f"nsm:{namespace}:{{{namespace}.p{p}}}:" for p in range(partitions)]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        newest = max(int(client.hget(m + "meta", "max_ts") or 0) for m in metas)
        summaries = [client.get(m + "summary") for m in metas]
        if all(s is not None and stored_as_of(s) == newest for s in summaries):
            return
        time.sleep(0.2)
    raise RuntimeError("the worker's summaries did not reach the newest event within 60 s")


def _holds_partitions(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read()
    except OSError:
        return False  # not serving yet
    for line in body.splitlines():
        if line.startswith(b"nsm_partitions_assigned "):
            return float(line.split()[1]) > 0
    return False


def _exports(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return b"\nnsm_exporter 1.0" in response.read()


def _scrape(port: int) -> tuple[float, int, dict[str, int]]:
    """Median scrape time, and the nsm_metric_value series, in all and per metric."""
    timings = []
    body = b""
    for _ in range(10):
        started = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            body = response.read()
        timings.append(time.perf_counter() - started)
    by_metric: dict[str, int] = {}
    for line in body.splitlines():
        if line.startswith(b"nsm_metric_value{"):
            metric = line.split(b'metric="', 1)[1].split(b'"', 1)[0].decode()
            by_metric[metric] = by_metric.get(metric, 0) + 1
    return statistics.median(timings), sum(by_metric.values()), by_metric


def _uint(data: bytes, at: int) -> tuple[int, int]:
    """An unsigned varint of the stored format (docs/state.md) at `at`, and where it ends."""
    value, shift = 0, 0
    while True:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if byte < 0x80:
            return value, at
        shift += 7


def _record_metrics(record: bytes) -> list[int]:
    """The stored ids of the metrics an entity's record holds (format 2)."""
    ids, at = [], 1
    while at < len(record):
        metric_id, at = _uint(record, at)
        length, at = _uint(record, at)
        ids.append(metric_id)
        at += length
    return ids


def _ids_in(member: bytes) -> int:
    """How many event ids a batch's member of the ids zset holds (format 2)."""
    packed = member.partition(b":")[2]
    count, at = 0, 1
    while at < len(packed):
        _, at = _uint(packed, at)  # the group's horizon (zigzag)
        n, at = _uint(packed, at)
        count += n
        at += 16 * n
    return count


def _memory_per_entity_metric(
    client: redis.Redis, namespace: str, catalog: Catalog
) -> dict[str, Any]:
    """Redis bytes of the namespace's state per active (entity, metric) with state, and apart, of
    its event ids per id kept for dedup (each key as `MEMORY USAGE` counts it)."""
    state_bytes, id_bytes, ids_kept, pairs, entities = 0, 0, 0, 0, 0
    for key in client.scan_iter(f"nsm:{namespace}:*", count=1000):
        size = client.memory_usage(key, samples=0) or 0
        name = key.decode()
        if name.endswith(":ids"):
            id_bytes += size
            ids_kept += sum(_ids_in(m) for m in client.zrange(key, 0, -1))
            continue
        state_bytes += size
        if name.endswith(":e"):
            for record in client.hvals(key):
                entities += 1
                pairs += len(_record_metrics(record))
    return {
        "redis_bytes": state_bytes + id_bytes,
        "active_entity_metric_pairs": pairs,
        "active_entities": entities,
        "redis_bytes_per_entity_metric": round((state_bytes + id_bytes) / max(1, pairs)),
        "redis_bytes_state_per_entity_metric": round(state_bytes / max(1, pairs)),
        "event_ids_kept": ids_kept,
        "redis_bytes_event_ids": id_bytes,
        "redis_bytes_per_event_id": round(id_bytes / max(1, ids_kept), 1),
    }


def scrape_5k_series() -> dict[str, Any]:
    """Serialising 5,000 nsm_metric_value series, as the exporter does on each scrape."""
    metrics = [Metric.model_validate({"name": f"m{i}", "tier": "granular", "window": "7d",
               "segments": ["account_id"], "max_segment_values": 1000,
               "aggregate": {"event": "x", "count": True}}) for i in range(5)]  # fmt: skip
    telemetry = Telemetry(Catalog(metrics={m.name: m for m in metrics}))
    values = {
        m.name: MetricValue(999, {"account_id": {f"acct-{j}": Decimal(j) for j in range(999)}})
        for m in metrics
    }
    telemetry.publish(0, values, {name: MetricStatus(True, 1.0) for name in values})
    series = sum(1 + len(v.segments["account_id"]) for v in values.values())
    timings = []
    for _ in range(20):
        started = time.perf_counter()
        generate_latest(telemetry.registry)
        timings.append(time.perf_counter() - started)
    return {"series": series, "median_ms": round(statistics.median(timings) * 1000, 1)}
