"""Shared by the replay and namespace tests: a generated history produced to a fresh topic.

The messages are keyed by account and stamped with their event time (a producer sending as
events happen), so `--from TIME` finds per-partition offsets; each message's partition and offset
are kept, so a test knows exactly which events a replay from given offsets reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import redis
from click.testing import CliRunner, Result
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from processor.cli import main
from processor.definitions import Catalog, load_definitions
from processor.events import parse_time
from processor.generate import RecordStream, plan_history
from tests.integration.conftest import ROOT

PARTITIONS = 4
END_MS = 1_795_168_800_000  # 2026-11-20T10:00:00Z
DEFINITIONS = str(ROOT / "definitions")


@dataclass(frozen=True)
class Produced:
    partition: int
    offset: int
    timestamp_ms: int
    value: bytes


@dataclass
class Topic:
    name: str
    messages: list[Produced]  # in production order

    def values(self, start: dict[int, int] | None = None) -> list[bytes]:
        """The values read from these per-partition offsets on (all when None)."""
        return [m.value for m in self.messages if start is None or m.offset >= start[m.partition]]


def _kafka_time(value: bytes, default: int) -> int:
    try:
        stamp = orjson.loads(value).get("timestamp")
        return stamp if isinstance(stamp, int) else parse_time(stamp)
    except Exception:
        return default


def produce_history(bootstrap: str, topic: str, days: float, seed: int = 11) -> Topic:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        admin.close()
    config = plan_history(
        seed=seed, accounts=30, end_ms=END_MS, days=days, duplicates_pct=2.0, invalid_pct=1.0,
        disorder_ms=120_000,
    )  # fmt: skip
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        max_in_flight_requests_per_connection=1,
    )
    futures = []
    last = config.start_ms
    try:
        for key, value in RecordStream(config):
            last = _kafka_time(value, last)
            futures.append(
                (producer.send(topic, key=key, value=value, timestamp_ms=last), last, value)
            )
        producer.flush()
    finally:
        producer.close()
    messages = []
    for future, stamp, value in futures:
        meta = future.get(timeout=30)
        messages.append(Produced(meta.partition, meta.offset, stamp, value))
    return Topic(topic, messages)


def run_nsm(*args: str, expect: int | None = 0) -> Result:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    if expect is not None:
        assert result.exit_code == expect, result.output + result.stderr
    return result


def replay_json(*args: str) -> dict[str, Any]:
    result = run_nsm("replay", "--definitions", DEFINITIONS, "--no-progress", *args)
    return orjson.loads(result.stdout)  # type: ignore[no-any-return]


def namespace_keys(client: redis.Redis, namespace: str) -> dict[bytes, bytes]:
    """Every key under nsm:<namespace>: with its serialised value (DUMP)."""
    return {key: client.dump(key) for key in client.scan_iter(match=f"nsm:{namespace}:*")}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_definitions(DEFINITIONS)


@pytest.fixture(scope="module")
def history_topic(kafka_bootstrap: str) -> Topic:
    return produce_history(kafka_bootstrap, f"replay-{_uid()}", days=9)


@pytest.fixture
def namespaces(redis_client: redis.Redis, unique_name: str) -> Iterator[str]:
    """A prefix for this test's namespaces; every namespace under it is deleted at the end."""
    yield unique_name
    for key in redis_client.scan_iter(match=f"nsm:{unique_name}*"):
        redis_client.unlink(key)


def _uid() -> str:
    import uuid

    return uuid.uuid4().hex[:10]
