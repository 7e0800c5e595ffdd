"""Each local service is the real thing: a message goes through a Kafka consumer group with both
Kafka clients of our stack and with faust, Redis round-trips a Lua script, Prometheus scrapes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from prometheus_client import CollectorRegistry, Gauge, start_http_server

PARTITIONS = 3


def create_topic(bootstrap: str, name: str, partitions: int = PARTITIONS) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        admin.close()


def test_kafka_python_consumer_group_reads_every_partition(kafka_bootstrap: str, unique_name: str):
    create_topic(kafka_bootstrap, unique_name)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    sent = {f"value-{i}".encode() for i in range(30)}
    for i, value in enumerate(sorted(sent)):
        producer.send(unique_name, key=f"account-{i}".encode(), value=value)
    producer.flush()
    producer.close()

    consumer = KafkaConsumer(
        unique_name,
        bootstrap_servers=kafka_bootstrap,
        group_id=unique_name,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=20_000,
    )
    received, partitions = set(), set()
    for message in consumer:
        received.add(message.value)
        partitions.add(message.partition)
        if len(received) == len(sent):
            break
    consumer.commit()
    committed = sum(consumer.committed(tp) or 0 for tp in consumer.assignment())
    consumer.close()

    assert received == sent
    assert partitions == set(range(PARTITIONS))
    assert committed == len(sent), "the group's committed offsets cover every message"


def test_aiokafka_group_members_split_the_partitions(kafka_bootstrap: str, unique_name: str):
    create_topic(kafka_bootstrap, unique_name, partitions=4)

    async def scenario() -> tuple[set[int], set[int], set[bytes]]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        for i in range(40):
            await producer.send(unique_name, f"v{i}".encode(), key=f"k{i}".encode())
        await producer.flush()
        await producer.stop()

        def member() -> AIOKafkaConsumer:
            return AIOKafkaConsumer(
                unique_name,
                bootstrap_servers=kafka_bootstrap,
                group_id=unique_name,
                auto_offset_reset="earliest",
                enable_auto_commit=False,
            )

        first, second = member(), member()
        await first.start()
        await second.start()
        received: set[bytes] = set()
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            for consumer in (first, second):
                batches = await consumer.getmany(timeout_ms=500)
                for messages in batches.values():
                    received.update(m.value for m in messages)
            both_assigned = first.assignment() and second.assignment()
            if len(received) == 40 and both_assigned:
                break
        a = {tp.partition for tp in first.assignment()}
        b = {tp.partition for tp in second.assignment()}
        await first.stop()
        await second.stop()
        return a, b, received

    first_parts, second_parts, received = asyncio.run(scenario())
    assert len(received) == 40
    assert first_parts and second_parts, "both members of the group got partitions"
    assert not first_parts & second_parts
    assert first_parts | second_parts == {0, 1, 2, 3}


def test_faust_agent_consumes_through_its_group(kafka_bootstrap: str, unique_name: str, tmp_path):
    create_topic(kafka_bootstrap, unique_name, partitions=2)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for i in range(7):
        producer.send(unique_name, key=b"acct", value=f"event-{i}".encode())
    producer.flush()
    producer.close()

    probe = Path(__file__).with_name("faust_probe_app.py")
    env = {
        **os.environ,
        "PROBE_BROKER": f"kafka://{kafka_bootstrap}",
        "PROBE_TOPIC": unique_name,
        "PROBE_EXPECT": "7",
    }
    result = subprocess.run(
        [sys.executable, str(probe), "worker", "--loglevel", "warn", "--without-web"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "PROBE consumed 7" in result.stdout + result.stderr


def test_redis_round_trip_with_a_lua_script(redis_client: redis.Redis, unique_name: str):
    key = f"nsm:test:{unique_name}"
    script = redis_client.register_script(
        "redis.call('HINCRBY', KEYS[1], 'count', ARGV[1]);"
        "return redis.call('HGET', KEYS[1], 'count')"
    )
    try:
        assert int(script(keys=[key], args=[3])) == 3
        assert int(script(keys=[key], args=[4])) == 7
        assert redis_client.hgetall(key) == {b"count": b"7"}
    finally:
        redis_client.delete(key)


def _prometheus_query(prometheus_url: str, expr: str) -> list[dict]:
    url = f"{prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_prometheus_scrapes_a_target(
    prometheus_url: str, prometheus_targets_dir: Path, unique_name
):
    registry = CollectorRegistry()
    gauge = Gauge("nsm_probe_value", "A value only this test serves", ["probe"], registry=registry)
    gauge.labels(probe=unique_name).set(42.5)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    port = server.server_address[1]
    target_file = prometheus_targets_dir / f"{unique_name}.json"
    target_file.write_text(json.dumps([{"targets": [f"127.0.0.1:{port}"]}]))
    try:
        deadline = time.monotonic() + 60
        result: list[dict] = []
        while time.monotonic() < deadline and not result:
            result = _prometheus_query(prometheus_url, f'nsm_probe_value{{probe="{unique_name}"}}')
            time.sleep(1)
        assert result, "Prometheus did not scrape the target within 60 s"
        assert float(result[0]["value"][1]) == 42.5
        assert result[0]["metric"]["instance"] == f"127.0.0.1:{port}"
    finally:
        target_file.unlink()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
