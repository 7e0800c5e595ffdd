"""Kafka clients built from settings, security options passed through unchanged (CONTRACT §5)."""

from __future__ import annotations

import contextlib

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from processor.config import Settings
from processor.kafka import unreadable

# Every consumer made here or elsewhere in the process passes an unreadable record batch on as
# one marker instead of failing on it at every fetch (unreadable.py).
unreadable.install()


def _security(settings: Settings) -> dict[str, object]:
    options = settings.kafka_client_options()
    if options.get("security_protocol") in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        options["ssl_context"] = create_ssl_context(
            cafile=options.pop("ssl_cafile", None),
            certfile=options.pop("ssl_certfile", None),
            keyfile=options.pop("ssl_keyfile", None),
        )
    return options


def batch_consumer(settings: Settings, group_id: str) -> AIOKafkaConsumer:
    """A consumer in the worker's group that reads large batches; offsets are not auto-committed
    because Redis holds the truth of what was applied (they are committed only to show lag)."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        client_id=f"{group_id}-consumer",
        **_security(settings),
    )


def producer(settings: Settings, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        linger_ms=5,
        client_id=client_id,
        **_security(settings),
    )


async def ensure_dead_letter_topic(settings: Settings, topic: str, dead_letters: str) -> int | None:
    """Create the dead-letter topic with the input topic's partition count and replication unless
    it exists, so it does not depend on the broker's auto-creation. Returns the input topic's
    partition count, None when the input topic does not exist yet.

    Without the input topic, the replication is that of a default Kafka cluster (3, or as many
    brokers as there are): one replica would refuse every write on a cluster whose
    `min.insync.replicas` is 2."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, **_security(settings))
    await admin.start()
    try:
        topics = await admin.list_topics()
        partitions = None
        if topic in topics:
            described = await admin.describe_topics([topic])
            partitions = len(described[0]["partitions"])
            replication = len(described[0]["partitions"][0]["replicas"])
        else:
            replication = min(3, len((await admin.describe_cluster())["brokers"]))
        if dead_letters not in topics:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(dead_letters, partitions or 1, max(1, replication))]
                )
        return partitions
    finally:
        await admin.close()
