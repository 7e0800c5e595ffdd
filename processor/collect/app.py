"""`nsm collect`: the Segment/RudderStack HTTP tracking API in front of the topic (aiohttp).

A request is answered 200 only once Kafka has acknowledged every call it accepted (an idempotent
producer with acks=all), so nothing acknowledged to a sender is lost. While Kafka is unreachable,
or when more calls than `max_pending` are waiting for acknowledgements, it answers 503 so that the
SDKs keep the calls and retry; a retried call repeats its `messageId`, which the worker drops as a
duplicate. Nothing is buffered beyond `max_pending` calls.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import functools
import hmac
import logging
import time
from typing import Any

import orjson
from aiohttp import BasicAuth, web
from aiohttp.web_protocol import RequestPayloadError
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from processor.collect.calls import (
    BATCH,
    ENDPOINTS,
    TOO_LARGE,
    BadRequest,
    CallRules,
    Message,
    read_calls,
    response_body,
)
from processor.collect.settings import CollectSettings
from processor.collect.telemetry import CollectTelemetry
from processor.kafka import clients

log = logging.getLogger("nsm.collect")
UNAUTHORIZED = "unauthorized"
KAFKA_UNAVAILABLE = "kafka_unavailable"
OVERLOADED = "overloaded"
BAD_ENCODING = "bad_encoding"
# Seconds an SDK is asked to wait before retrying a 503 (Segment's libraries honour it).
RETRY_AFTER_S = "1"
MAX_BACKOFF_S = 5.0
_PARTITIONER = DefaultPartitioner()
PARTITION_CACHE_SIZE = 100_000


class TooLarge(Exception):
    pass


class Collector:
    """The request handling around one producer; `app()` is the aiohttp application."""

    def __init__(self, settings: CollectSettings, telemetry: CollectTelemetry | None = None):
        self.settings = settings
        self.telemetry = telemetry or CollectTelemetry()
        self.topic = settings.topic
        self.rules = CallRules(
            max_call_bytes=settings.collect_max_call_bytes,
            max_future_skew_ms=settings.max_future_skew_ms,
            key_field=settings.collect_key_field,
        )
        self._keys = settings.write_keys()
        if not self._keys:
            raise ValueError("no write key: set NSM_COLLECT_WRITE_KEYS (comma-separated)")
        self.producer: AIOKafkaProducer | None = None
        self.kafka_up = False
        self.pending = 0
        self._starting: asyncio.Task[None] | None = None
        # The partition of each key seen (murmur2 in Python costs as much as checking a call).
        self._partition_of: dict[bytes, int] = {}
        self._partition_count = 0

    # ---- lifecycle -------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.collect_max_request_bytes + 1)
        app.router.add_post("/v1/{endpoint}", self.handle)
        app.router.add_get("/health", self.health)
        app.router.add_get("/metrics", self.metrics)
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def _on_startup(self, app: web.Application) -> None:
        # Serve at once (503 while Kafka is away); the producer connects in the background.
        self._starting = asyncio.create_task(self._start_producer())

    async def _start_producer(self) -> None:
        delay = 0.1
        while True:
            producer = clients.idempotent_producer(self.settings, "nsm-collect")
            try:
                await producer.start()
            except (KafkaError, OSError) as exc:
                await producer.stop()
                log.warning("kafka unreachable; retrying", extra={"error": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
                continue
            self.producer = producer
            self._set_kafka(True)
            log.info("collector ready", extra={"topic": self.topic})
            return

    async def _on_cleanup(self, app: web.Application) -> None:
        if self._starting is not None:
            self._starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starting
        if self.producer is not None:
            # Delivers what is still in hand before closing.
            await self.producer.stop()

    def _set_kafka(self, up: bool) -> None:
        if up != self.kafka_up:
            log.log(logging.INFO if up else logging.WARNING, "kafka " + ("up" if up else "down"))
        self.kafka_up = up
        self.telemetry.kafka_up.set(1 if up else 0)

    # ---- requests --------------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        status = "ok" if self.kafka_up else "kafka unreachable"
        return web.json_response({"status": status}, status=200 if self.kafka_up else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(self.telemetry.registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def handle(self, request: web.Request) -> web.Response:
        endpoint = request.match_info["endpoint"]
        if endpoint not in ENDPOINTS:
            raise web.HTTPNotFound(text=f"no endpoint /v1/{endpoint}")
        status, body, headers = await self._answer(endpoint, request)
        self.telemetry.requests.labels(endpoint, str(status)).inc()
        return web.Response(
            body=orjson.dumps(body), status=status, content_type="application/json",
            headers=headers,
        )  # fmt: skip

    async def _answer(
        self, endpoint: str, request: web.Request
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if not self._authorized(request.headers.get("Authorization")):
            return self._refuse(401, UNAUTHORIZED, "a valid write key is needed (basic auth)")
        limit = (
            self.settings.collect_max_request_bytes
            if endpoint == BATCH
            else self.settings.collect_max_call_bytes
        )
        try:
            body = await _read_body(request, limit)
        except TooLarge:
            return self._refuse(413, TOO_LARGE, f"the body is larger than {limit:,} bytes")
        except BadRequest as exc:
            return self._refuse(400, exc.code, str(exc))
        now = int(time.time() * 1000)
        try:
            calls = read_calls(endpoint, body, self.rules, now, now)
        except BadRequest as exc:
            return self._refuse(400, exc.code, str(exc))
        for rejected in calls.rejected:
            self.telemetry.rejected.labels(rejected.reason).inc()
        if calls.messages:
            refused = await self._produce(calls.messages)
            if refused is not None:
                return refused
        status, answer = response_body(calls)
        return status, answer, {}

    def _refuse(
        self, status: int, code: str, message: str
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        self.telemetry.rejected.labels(code).inc()
        headers = {"Retry-After": RETRY_AFTER_S} if status == 503 else {}
        if status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="nsm collect"'
        return status, {"success": False, "code": code, "message": message}, headers

    def _authorized(self, header: str | None) -> bool:
        """Whether the basic-auth user is a write key, compared in constant time with each."""
        if not header:
            return False
        try:
            given = BasicAuth.decode(header).login.encode()
        except (ValueError, binascii.Error):
            return False
        matched = False
        for key in self._keys:
            # Every key is compared, so the time does not tell which one (if any) matched.
            matched |= hmac.compare_digest(given, key)
        return matched

    async def _produce(
        self, messages: list[Message]
    ) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        """Hand the calls to Kafka and wait for every acknowledgement; a 503 answer when Kafka
        is unreachable, too slow, or too much is already waiting."""
        producer = self.producer
        if producer is None:
            return self._refuse(503, KAFKA_UNAVAILABLE, "Kafka is not reachable yet; retry")
        if self.pending + len(messages) > self.settings.collect_max_pending:
            return self._refuse(503, OVERLOADED, "too many calls wait for Kafka; retry")
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.settings.ack_timeout_s
        self.pending += len(messages)
        self.telemetry.pending.set(self.pending)
        handed = 0
        futures: list[asyncio.Future[Any]] = []
        try:
            async with asyncio.timeout_at(deadline):
                for partition, batch, count in await self._batches(producer, messages):
                    future = await producer.send_batch(batch, self.topic, partition=partition)
                    future.add_done_callback(functools.partial(self._acknowledged, count))
                    futures.append(future)
                    handed += count
            # asyncio.wait, not a timeout around it: that would cancel the deliveries in flight.
            done, waiting = await asyncio.wait(futures, timeout=max(deadline - loop.time(), 0))
        except (TimeoutError, KafkaError) as exc:
            self._release(len(messages) - handed)
            return self._unavailable(exc)
        except BaseException:
            self._release(len(messages) - handed)
            raise
        failed = next((f.exception() for f in done if f.exception() is not None), None)
        if waiting or failed is not None:
            return self._unavailable(failed or TimeoutError("no acknowledgement in time"))
        self.telemetry.produce_seconds.observe(loop.time() - started)
        self.telemetry.events.inc(len(messages))
        self._set_kafka(True)
        return None

    async def _batches(
        self, producer: AIOKafkaProducer, messages: list[Message]
    ) -> list[tuple[int, Any, int]]:
        """The messages as record batches per partition: (partition, batch, messages in it).

        Whole batches, not one send per message: a send costs more than the rest of a call's
        work. A key's partition is the default partitioner's (murmur2), as any Kafka client's.
        """
        partitions = sorted(await producer.partitions_for(self.topic))
        if len(partitions) != self._partition_count:
            self._partition_of.clear()
            self._partition_count = len(partitions)
        known = self._partition_of
        by_partition: dict[int, list[Message]] = {}
        for message in messages:
            key = message.key
            partition = known.get(key) if key is not None else None
            if partition is None:
                partition = _PARTITIONER(key, partitions, partitions)
                if key is not None:
                    if len(known) >= PARTITION_CACHE_SIZE:
                        known.clear()
                    known[key] = partition
            by_partition.setdefault(partition, []).append(message)
        batches = []
        for partition, group in by_partition.items():
            batch, count = producer.create_batch(), 0
            for message in group:
                if batch.append(key=message.key, value=message.value, timestamp=None) is None:
                    batches.append((partition, batch, count))  # full: start the next one
                    batch, count = producer.create_batch(), 0
                    batch.append(key=message.key, value=message.value, timestamp=None)
                count += 1
            batches.append((partition, batch, count))
        return batches

    def _acknowledged(self, count: int, future: asyncio.Future[Any]) -> None:
        self._release(count)
        if not future.cancelled():
            future.exception()  # retrieved, so asyncio does not log it as never retrieved

    def _release(self, count: int) -> None:
        self.pending -= count
        self.telemetry.pending.set(self.pending)

    def _unavailable(self, exc: BaseException) -> tuple[int, dict[str, Any], dict[str, str]]:
        if self.kafka_up:
            log.warning("produce failed; answering 503 until Kafka acknowledges again",
                        extra={"error": repr(exc)})  # fmt: skip
        self._set_kafka(False)
        return self._refuse(503, KAFKA_UNAVAILABLE, "Kafka did not acknowledge the calls; retry")


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The request body, TooLarge past `limit` bytes.

    aiohttp inflates a gzip (or deflate, br, zstd) body as it reads, a chunk at a time, so the
    limit counts inflated bytes and a small body that inflates hugely stops at the limit.
    """
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > limit:
                raise TooLarge
            chunks.append(chunk)
    except RequestPayloadError as exc:
        raise BadRequest(BAD_ENCODING, f"the body cannot be read: {exc}") from None
    return b"".join(chunks)
