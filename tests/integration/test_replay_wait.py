"""`nsm replay --wait`: a replay started before Kafka or Redis answers waits for them, up to the
wait, then gives up with a clear message; when they come up in time, it replays exactly."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import orjson
import pytest

from processor.definitions import Catalog
from processor.engine import compute_metrics
from tests.integration.test_replay_support import (
    DEFINITIONS,
    Topic,
    catalog,
    history_topic,
    namespaces,
    run_nsm,
)
from tests.integration.worker.conftest import PrivateRedis
from tests.integration.worker.harness import NSM
from tests.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
__all__ = ["catalog", "history_topic", "namespaces"]  # fixtures used below


def test_a_replay_gives_up_after_its_wait_naming_what_did_not_answer(redis_url: str):
    closed = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = run_nsm("replay", "--namespace", "never", "--bootstrap", closed, "--redis-url",
                     redis_url, "--definitions", DEFINITIONS, "--no-progress", "--wait", "4s",
                     expect=1)  # fmt: skip
    seconds = time.monotonic() - started
    assert 4 <= seconds < 30, seconds
    assert f"kafka ({closed}) did not answer within 4 s" in result.stderr
    attempts = [line for line in result.stderr.splitlines() if "waiting for" in line]
    assert [line.split("next try in ")[1] for line in attempts[:2]] == ["1 s", "2 s"]
    assert "Traceback" not in result.stderr


def test_a_replay_started_before_redis_waits_for_it_and_replays(
    history_topic: Topic, namespaces: str, tmp_path: Path, kafka_bootstrap: str,
    catalog: Catalog,
):  # fmt: skip
    server = PrivateRedis(tmp_path / "redis")
    replay = subprocess.Popen(
        [str(NSM), "replay", "--namespace", f"{namespaces}-late", "--topic", history_topic.name,
         "--bootstrap", kafka_bootstrap, "--redis-url", server.url, "--definitions",
         DEFINITIONS, "--no-progress", "--no-history", "--wait", "2m"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        time.sleep(4)
        assert replay.poll() is None, replay.communicate()
        server.start()
        stdout, stderr = replay.communicate(timeout=120)
        assert replay.returncode == 0, stderr.decode()
        assert b"waiting for redis" in stderr
        assert orjson.loads(stdout) == compute_metrics(history_topic.values(), catalog).to_json()
    finally:
        if replay.poll() is None:
            replay.kill()
            replay.wait()
        server.kill()
