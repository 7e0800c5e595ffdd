"""Fixtures for tests against the real local services started by `make up`.

A service that does not answer fails the test with a message saying how to start it: these tests
never skip.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from processor.config import Settings
from processor.store.client import connect_sync

ROOT = Path(__file__).resolve().parents[2]
STACK_DIR = Path(os.environ.get("NSM_STACK_DIR", ROOT / ".stack"))


def _require_port(name: str, host: str, port: int) -> None:
    try:
        with socket.create_connection((host, port), timeout=3):
            return
    except OSError as exc:
        pytest.fail(f"{name} is not reachable on {host}:{port} ({exc}); start it with `make up`")


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def kafka_bootstrap(settings: Settings) -> str:
    host, port = settings.kafka_bootstrap.rsplit(":", 1)
    _require_port("Kafka", host, int(port))
    return settings.kafka_bootstrap


@pytest.fixture(scope="session")
def redis_url(settings: Settings) -> str:
    url = settings.redis_url.get_secret_value()
    client = connect_sync(url)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is not reachable at {settings.redis_url_for_logs} ({exc}); `make up`")
    finally:
        client.close()
    return url


@pytest.fixture(scope="session")
def prometheus_url() -> str:
    port = int(os.environ.get("NSM_PROMETHEUS_PORT", "9090"))
    _require_port("Prometheus", "127.0.0.1", port)
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def prometheus_targets_dir() -> Path:
    """Where the local Prometheus discovers scrape targets (file_sd, see scripts/stack.sh)."""
    path = STACK_DIR / "prometheus" / "targets"
    if not path.is_dir():
        pytest.fail(f"{path} does not exist: the local Prometheus was not started by `make up`")
    return path


@pytest.fixture
def unique_name() -> str:
    """A name no other test uses, for topics, groups and namespaces."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = connect_sync(redis_url)
    yield client
    client.close()
