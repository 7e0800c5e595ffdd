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
import hmac
import logging
import time
from typing import Any

import orjson
from aiohttp import BasicAuth, web
from aiohttp.web_protocol import RequestPayloadError
from confluent_kafka import KafkaException
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
from processor.collect.producer import CallProducer, DeliveryFailed
from processor.collect.settings import CollectSettings
from processor.collect.telemetry import CollectTelemetry

log = logging.getLogger("nsm.collect")
UNAUTHORIZED = "unauthorized"
KAFKA_UNAVAILABLE = "kafka_unavailable"
OVERLOADED = "overloaded"
BAD_ENCODING = "bad_encoding"
# Seconds an SDK is asked to wait before retrying a 503 (Segment's libraries honour it).
RETRY_AFTER_S = "1"
MAX_BACKOFF_S = 5.0


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
        self.producer: CallProducer | None = None
        self.kafka_up = False
        self.pending = 0
        self._starting: asyncio.Task[None] | None = None

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
        loop = asyncio.get_running_loop()
        self.producer = CallProducer(
            self.settings,
            self.topic,
            # Room for every call the collector lets wait, and the retries' repeats.
            max_queued=2 * self.settings.collect_max_pending,
            on_brokers_down=lambda: self._set_kafka(False),
        )
        delay = 0.1
        while True:
            try:
                await loop.run_in_executor(None, self.producer.check, 5.0)
            except KafkaException as exc:
                log.warning("kafka unreachable; retrying", extra={"error": str(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)
                continue
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
            left = await asyncio.get_running_loop().run_in_executor(None, self.producer.close)
            if left:
                log.warning("stopped with calls not delivered", extra={"calls": left})

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
        if producer is None or (not self.kafka_up and self._starting and not self._starting.done()):
            return self._refuse(503, KAFKA_UNAVAILABLE, "Kafka is not reachable yet; retry")
        if self.pending + len(messages) > self.settings.collect_max_pending:
            return self._refuse(503, OVERLOADED, "too many calls wait for Kafka; retry")
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            delivered = producer.produce(messages)
        except BufferError as exc:
            return self._unavailable(exc)
        count = len(messages)
        self.pending += count
        self.telemetry.pending.set(self.pending)
        delivered.add_done_callback(lambda _: self._release(count))
        try:
            # shield: a request that stops waiting leaves the delivery to librdkafka.
            await asyncio.wait_for(asyncio.shield(delivered), self.settings.ack_timeout_s)
        except (TimeoutError, DeliveryFailed) as exc:
            return self._unavailable(exc)
        self.telemetry.produce_seconds.observe(loop.time() - started)
        self.telemetry.events.inc(count)
        self._set_kafka(True)
        return None

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
