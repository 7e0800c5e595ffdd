"""The collector's Kafka producer: librdkafka (confluent-kafka), idempotent, acks=all.

Why librdkafka and not aiokafka, which the worker reads with: the collector hands Kafka every
call it accepts, and aiokafka's per-message `send` cost more than the rest of a call's work
(make bench: about 23k calls/s for a bare aiokafka producer on two cores), while aiokafka's whole
batches wait for the previous batch of their partition to be sent. librdkafka batches in C and
reports each delivery; a thread polls it and hands the reports to the event loop.

Keys are partitioned with murmur2, as Kafka's Java clients and aiokafka do, so a key lands in the
same partition whichever of them produced it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError, Producer

from processor.collect.calls import Message
from processor.config import Settings

log = logging.getLogger("nsm.collect")
POLL_S = 0.05
# How long librdkafka keeps trying one message; a request stops waiting long before (503).
MESSAGE_TIMEOUT_MS = 60_000


class DeliveryFailed(Exception):
    """Kafka refused a message or librdkafka gave up on it; the message says why."""


# kafka-python/aiokafka option names (Settings.kafka_client_options) -> librdkafka's.
_LIBRDKAFKA_NAMES = {
    "security_protocol": "security.protocol",
    "sasl_mechanism": "sasl.mechanism",
    "sasl_plain_username": "sasl.username",
    "sasl_plain_password": "sasl.password",
    "ssl_cafile": "ssl.ca.location",
    "ssl_certfile": "ssl.certificate.location",
    "ssl_keyfile": "ssl.key.location",
}


def librdkafka_config(settings: Settings) -> dict[str, Any]:
    """The settings' Kafka options (CONTRACT §5) in librdkafka's spelling."""
    config = {_LIBRDKAFKA_NAMES[k]: v for k, v in settings.kafka_client_options().items()}
    config["security.protocol"] = str(config["security.protocol"]).lower()
    return {"bootstrap.servers": settings.kafka_bootstrap, **config}


class CallProducer:
    """Produces a request's messages and tells the event loop when all were acknowledged."""

    def __init__(
        self,
        settings: Settings,
        topic: str,
        max_queued: int,
        on_brokers_down: Callable[[], None],
    ) -> None:
        self.topic = topic
        self._loop = asyncio.get_running_loop()
        self._on_brokers_down = on_brokers_down
        self._producer = Producer(
            {
                **librdkafka_config(settings),
                "client.id": "nsm-collect",
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 2,
                "partitioner": "murmur2_random",
                # librdkafka's own bound; the collector refuses calls before it is reached.
                "queue.buffering.max.messages": max_queued,
                "message.timeout.ms": MESSAGE_TIMEOUT_MS,
                "error_cb": self._on_error,
                "logger": logging.getLogger("nsm.collect.librdkafka"),
            }
        )
        self._running = True
        self._poller = threading.Thread(target=self._poll, name="nsm-collect-kafka", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while self._running:
            self._producer.poll(POLL_S)  # runs the delivery callbacks, in this thread

    def _on_error(self, error: KafkaError) -> None:
        if error.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            self._loop.call_soon_threadsafe(self._on_brokers_down)

    def check(self, timeout_s: float) -> None:
        """Raise KafkaException unless a broker answers (blocking: run it apart)."""
        self._producer.list_topics(timeout=timeout_s)

    def produce(self, messages: Sequence[Message]) -> asyncio.Future[None]:
        """Hand the messages to librdkafka. The future is done once every one is acknowledged
        (or fails with the first error); BufferError when librdkafka's queue is full."""
        done: asyncio.Future[None] = self._loop.create_future()
        tally = _Tally(len(messages), done, self._loop)
        produce = self._producer.produce
        topic = self.topic
        for index, message in enumerate(messages):
            try:
                produce(topic, value=message.value, key=message.key, on_delivery=tally.delivered)
            except BufferError:
                # Those handed over stay with librdkafka; the rest were never sent.
                tally.never_sent(len(messages) - index, "librdkafka's queue is full")
                raise
        return done

    def close(self, timeout_s: float = 10.0) -> int:
        """Deliver what is in hand (up to the timeout); returns how many were not."""
        left = int(self._producer.flush(timeout_s))
        self._running = False
        self._poller.join(timeout=5)
        return left


class _Tally:
    """Counts a request's deliveries (in librdkafka's thread) and settles its future once."""

    def __init__(self, count: int, done: asyncio.Future[None], loop: asyncio.AbstractEventLoop):
        self._remaining = count
        self._failure: str | None = None
        self._done = done
        self._loop = loop
        self._lock = threading.Lock()

    def delivered(self, error: KafkaError | None, _: Any) -> None:
        self._count(1, None if error is None else error.str())

    def never_sent(self, count: int, why: str) -> None:
        self._count(count, why)

    def _count(self, count: int, failure: str | None) -> None:
        with self._lock:
            if failure is not None and self._failure is None:
                self._failure = failure
            self._remaining -= count
            finished = self._remaining == 0
        if finished:
            self._loop.call_soon_threadsafe(_settle, self._done, self._failure)


def _settle(done: asyncio.Future[None], failure: str | None) -> None:
    if done.done():
        return
    if failure is None:
        done.set_result(None)
    else:
        done.set_exception(DeliveryFailed(failure))
