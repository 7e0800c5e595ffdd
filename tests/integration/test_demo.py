"""`make demo` runs the whole pipeline: the worker, the generator and a live view of north stars."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_demo_shows_the_north_stars_live(kafka_bootstrap: str, redis_client: redis.Redis,
                                         unique_name: str):  # fmt: skip
    port = free_port()
    env = {**os.environ, "NSM_TOPIC": unique_name, "NSM_NAMESPACE": unique_name,
           "NSM_METRICS_PORT": str(port), "COLUMNS": "200"}  # fmt: skip
    try:
        result = subprocess.run(
            [sys.executable, "scripts/demo.py", "--seconds", "25", "--days", "3"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
        )  # fmt: skip
    finally:
        for key in redis_client.scan_iter(f"nsm:{unique_name}:*"):
            redis_client.unlink(key)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "NSM is running" in result.stdout
    row = re.search(
        r"weekly_active_accounts_3plus_reports\s*│\s*north_star\s*│\s*(\d+)", result.stdout
    )
    assert row, result.stdout[-3000:]
    assert int(row.group(1)) > 0, "the north star has a value from the generated stream"
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the demo stopped its worker"
