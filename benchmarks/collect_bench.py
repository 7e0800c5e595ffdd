"""`nsm collect`'s sustained events/s on /v1/batch and its latency, from a load generator on the
same machine, against two baselines measured in the same run over the same calls: (a) an aiohttp
server that reads each body and answers 200 without looking at it (the HTTP stack's ceiling
here), (b) the collector's own producer (librdkafka, idempotent, acks=all) sending the calls
straight to Kafka (the broker's ceiling for this producer).

The load generator is one asyncio process posting pre-built batches of 100 calls (the SDKs'
default batch) on CONCURRENCY connections (32, as from 32 SDK clients; NSM_BENCH_CONNECTIONS)
for DURATION_S; a request counts once it is answered 200. Latency is per request, from sending
to the answer, which includes Kafka's acknowledgement: with a fixed number of connections the
throughput is bounded by connections x 100 / latency. Baseline (b) produces the same requests'
calls with the collector's producer on as many tasks, without HTTP or checks.
"""

from __future__ import annotations

import asyncio
import base64
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from kafka.admin import KafkaAdminClient, NewTopic

from benchmarks.data import BOOTSTRAP, PARTITIONS
from processor.collect.calls import CallRules, read_calls
from processor.collect.producer import CallProducer
from processor.config import Settings
from processor.generate import RecordStream, plan_history
from processor.times import parse_time as parse_time_ms

ROOT = Path(__file__).resolve().parents[1]
NSM = ROOT / ".venv" / "bin" / "nsm"
BATCH = 100
CONCURRENCY = int(os.environ.get("NSM_BENCH_CONNECTIONS", "32"))
DURATION_S = 15.0
WRITE_KEY = "bench-key"


def _bodies(calls_wanted: int = 50_000) -> list[bytes]:
    """Batch request bodies of generated calls (`nsm generate --format segment`)."""
    config = plan_history(seed=42, accounts=500, max_events=calls_wanted,
                          end_ms=parse_time_ms("2026-11-20T00:00:00Z"),
                          event_format="segment")  # fmt: skip
    calls = [orjson.loads(value) for _, value in RecordStream(config)]
    return [
        orjson.dumps({"batch": calls[i : i + BATCH], "sentAt": "2026-11-20T00:00:00Z"})
        for i in range(0, len(calls) - BATCH + 1, BATCH)
    ]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _load(url: str, bodies: list[bytes], duration_s: float) -> dict[str, Any]:
    """Post the bodies round-robin on CONCURRENCY connections for `duration_s`."""
    headers = {
        "Authorization": "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode(),
        "Content-Type": "application/json",
    }
    latencies: list[float] = []
    failures = 0
    events = 0
    next_body = 0
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        deadline = started + duration_s

        async def client() -> None:
            nonlocal next_body, failures, events
            while time.perf_counter() < deadline:
                body = bodies[next_body % len(bodies)]
                next_body += 1
                sent = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status == 200:
                        latencies.append(time.perf_counter() - sent)
                        events += BATCH
                    else:
                        failures += 1

        await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "events_per_s": round(events / elapsed),
        "requests": len(latencies),
        "failed_requests": failures,
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
    }


def _serve_bare(port: int) -> None:
    """Baseline (a): read the body, answer 200, nothing else."""

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"success": True})

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_post("/v1/{endpoint}", handle)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def _wait_for(url: str, process: subprocess.Popen[bytes]) -> None:
    import urllib.error
    import urllib.request

    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def _bare_http(bodies: list[bytes]) -> dict[str, Any]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.collect_bench", "serve-bare", str(port)], cwd=ROOT
    )
    try:
        _wait_for(f"http://127.0.0.1:{port}/health", process)
        return asyncio.run(_load(f"http://127.0.0.1:{port}/v1/batch", bodies, DURATION_S))
    finally:
        process.terminate()
        process.wait(timeout=10)


def _topic() -> str:
    name = f"nsm-bench-collect-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        admin.create_topics([NewTopic(name, PARTITIONS, 1)])
    finally:
        admin.close()
    return name


def _drop_topic(name: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    try:
        admin.delete_topics([name])
    finally:
        admin.close()


def _bare_producer(bodies: list[bytes], topic: str) -> dict[str, Any]:
    """Baseline (b): the calls as the collector produces them, by its own producer (librdkafka,
    idempotent, acks=all), each request's 100 on CONCURRENCY tasks, without HTTP or checks."""
    rules = CallRules(max_call_bytes=32 * 1024, max_future_skew_ms=300_000)
    now = int(time.time() * 1000)
    requests = [read_calls("batch", body, rules, now, now).messages for body in bodies]

    async def produce() -> dict[str, Any]:
        settings = Settings(kafka_bootstrap=BOOTSTRAP)
        producer = CallProducer(settings, topic, 1_000_000, on_brokers_down=lambda: None)
        latencies: list[float] = []
        next_request = 0
        try:
            started = time.perf_counter()
            deadline = started + DURATION_S

            async def client() -> None:
                nonlocal next_request
                while time.perf_counter() < deadline:
                    messages = requests[next_request % len(requests)]
                    next_request += 1
                    sent = time.perf_counter()
                    await producer.produce(messages)
                    latencies.append(time.perf_counter() - sent)

            await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
            elapsed = time.perf_counter() - started
        finally:
            producer.close()
        latencies.sort()
        return {
            "events_per_s": round(len(latencies) * BATCH / elapsed),
            "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
        }

    return asyncio.run(produce())


def _collector(bodies: list[bytes], topic: str) -> dict[str, Any]:
    port = _free_port()
    env = {**os.environ, "NSM_COLLECT_WRITE_KEYS": WRITE_KEY, "NSM_TOPIC": topic,
           "NSM_KAFKA_BOOTSTRAP": BOOTSTRAP, "NSM_COLLECT_PORT": str(port),
           "NSM_COLLECT_HOST": "127.0.0.1", "NSM_MAX_FUTURE_SKEW": "5m"}  # fmt: skip
    process = subprocess.Popen([str(NSM), "collect", "--log-level", "warning"], env=env, cwd=ROOT)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_for(url + "/metrics", process)
        for _ in range(300):  # until Kafka answers (/health 200)
            try:
                import urllib.request

                urllib.request.urlopen(url + "/health", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        asyncio.run(_load(url + "/v1/batch", bodies, 2.0))  # warm-up, untimed
        return asyncio.run(_load(url + "/v1/batch", bodies, DURATION_S))
    finally:
        process.terminate()
        process.wait(timeout=20)


def run() -> dict[str, Any]:
    bodies = _bodies()
    topic = _topic()
    try:
        measured = _collector(bodies, topic)
        bare = _bare_http(bodies)
        producer = _bare_producer(bodies, topic)
    finally:
        _drop_topic(topic)
    return {
        **measured,
        "calls_per_request": BATCH,
        "connections": CONCURRENCY,
        "baseline_a_bare_http_events_per_s": bare["events_per_s"],
        "baseline_a_p99_ms": bare["p99_ms"],
        "baseline_b_bare_producer_events_per_s": producer["events_per_s"],
        "baseline_b_p99_ms": producer["p99_ms"],
        "ratio_to_a": round(measured["events_per_s"] / bare["events_per_s"], 3),
        "ratio_to_b": round(measured["events_per_s"] / producer["events_per_s"], 3),
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve-bare"]:
        _serve_bare(int(sys.argv[2]))
    else:
        print(orjson.dumps(run(), option=orjson.OPT_INDENT_2).decode())
