"""`make demo` runs the whole pipeline: the worker, the generator and a live view of north stars."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import redis
from kafka import KafkaConsumer, TopicPartition

from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


def _north_star(output: str) -> int:
    row = re.search(r"weekly_active_accounts_3plus_reports\s*│\s*north_star\s*│\s*(\d+)", output)
    assert row, output[-3000:]
    return int(row.group(1))


def _messages(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def test_demo_shows_the_north_stars_live_and_runs_again_alike(
    kafka_bootstrap: str, redis_client: redis.Redis, unique_name: str
):
    env = {**os.environ, "NSM_TOPIC": unique_name, "NSM_NAMESPACE": unique_name, "COLUMNS": "200"}
    runs = []
    try:
        for _ in range(2):
            port = free_port()
            result = subprocess.run(
                [sys.executable, "scripts/demo.py", "--seconds", "20", "--days", "3"],
                cwd=ROOT, env={**env, "NSM_METRICS_PORT": str(port)},
                capture_output=True, text=True, timeout=240,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr[-3000:]
            assert "NSM is running" in result.stdout
            with socket.socket() as probe:
                assert probe.connect_ex(("127.0.0.1", port)) != 0, "the demo stopped its worker"
            runs.append((_north_star(result.stdout), _messages(kafka_bootstrap, unique_name)))
    finally:
        for key in redis_client.scan_iter(f"nsm:{unique_name}:*"):
            redis_client.unlink(key)
    (first, first_messages), (second, second_messages) = runs
    assert first > 0, "the north star has a value from the generated stream"
    assert "Starting afresh" in result.stdout
    # The second run starts from an empty topic and namespace: not twice the numbers.
    assert second_messages < 1.5 * first_messages, runs
    assert abs(second - first) <= max(3, 0.25 * first), runs
