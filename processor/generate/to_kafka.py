"""Producing generated records to a Kafka topic: a thin sink over kafka-python's KafkaProducer."""

from __future__ import annotations

from typing import Any

from processor.config import Settings


class KafkaUnavailable(RuntimeError):
    """No broker answered at the bootstrap address: start Kafka (`make up`) or fix --bootstrap."""


class DeliveryFailed(RuntimeError):
    """Some records were not acknowledged by the brokers; the message says how many and why."""


class KafkaSink:
    """Sends each record with its key; every record must be acknowledged by all in-sync replicas."""

    def __init__(self, bootstrap: str, topic: str, **overrides: Any) -> None:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        settings: dict[str, Any] = {
            "bootstrap_servers": [host.strip() for host in bootstrap.split(",") if host.strip()],
            "acks": "all",
            # Batches of up to 256 KiB, waiting a few milliseconds to fill them: throughput
            # matters more than the latency of a single synthetic event.
            "linger_ms": 10,
            "batch_size": 256 * 1024,
            "client_id": "nsm-generate",
            # Security (SASL, TLS) passes through from the environment, as for the worker.
            **Settings().kafka_client_options(),
            **overrides,
        }
        try:
            self._producer = KafkaProducer(**settings)
        except KafkaError as error:
            raise KafkaUnavailable(
                f"cannot reach Kafka at {bootstrap} ({type(error).__name__}): "
                "start it (make up) or pass --bootstrap"
            ) from None
        self._topic = topic
        self.failed = 0
        self.first_error: str | None = None

    def _on_error(self, error: BaseException) -> None:
        self.failed += 1
        if self.first_error is None:
            self.first_error = f"{type(error).__name__}: {error}"

    def write(self, key: bytes | None, value: bytes) -> None:
        self._producer.send(self._topic, key=key, value=value).add_errback(self._on_error)

    def close(self) -> None:
        try:
            self._producer.flush()
        finally:
            self._producer.close()
        if self.failed:
            raise DeliveryFailed(
                f"{self.failed:,} records were not delivered to {self._topic}: {self.first_error}"
            )
