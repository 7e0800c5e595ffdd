"""The faust app around the worker: lifecycle and signals, the tick timer, /metrics and /health.

The input topic is read by `runtime.Worker` as an app service, not by a faust agent, because faust's
per-message dispatch is about 30x slower than a batch fetch (see runtime.py and BENCHMARKS.md).
"""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
from pathlib import Path
from typing import Any

import faust
import mode
from faust.app.base import BootStrategy
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from processor.config import Settings
from processor.definitions.model import Catalog
from processor.worker.reload import Reloader
from processor.worker.runtime import Worker
from processor.worker.telemetry import Telemetry

_TEMP = Path(tempfile.gettempdir())


class _NoKafkaBoot(BootStrategy):
    """faust starts no Kafka client of its own: the worker reads and writes Kafka with its own
    clients (runtime.py), which wait for the broker. faust's producer and consumer group read
    and wrote nothing, but their start failed the whole worker when the broker was away (it
    exited instead of waiting), and its group held a restarted worker back for a session."""

    enable_kafka = False


class _App(faust.App):
    BootStrategy = _NoKafkaBoot


def create_app(
    settings: Settings,
    catalog: Catalog,
    tick_seconds: float,
    watch_definitions_s: float | None = None,
) -> faust.App:
    app = _App(
        f"nsm-{settings.namespace}-app",
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_credentials=_credentials(settings),
        store="memory://",
        web_port=settings.metrics_port,
        web_bind="0.0.0.0",
        web_host="localhost",
        autodiscover=False,
        topic_partitions=1,
        # faust keeps its local tables under `datadir`, by default in the working directory. NSM
        # has no faust tables (its state is in Redis): keep the folder out of the user's way.
        datadir=os.environ.get("APP_DATADIR", str(_TEMP / "{conf.name}-data")),
    )
    telemetry = Telemetry(catalog)
    worker = Worker(settings, catalog, telemetry)
    reloader = Reloader(worker, settings.definitions, telemetry)

    class StreamService(mode.Service):
        """Waits for Kafka and Redis, then runs the batch loop for the life of the app; faust
        stops it on SIGTERM. The waiting is part of the task, not of the start: the web server
        answers /health (503, naming what is missing) meanwhile. SIGHUP reloads the
        definitions, and so does a change of their files with --watch-definitions."""

        async def on_start(self) -> None:
            asyncio.get_running_loop().add_signal_handler(
                signal.SIGHUP, lambda: asyncio.ensure_future(reloader.reload("SIGHUP"))
            )

        @mode.Service.task
        async def _consume(self) -> None:
            await worker.start()
            await worker.run()

        @mode.Service.task
        async def _watch(self) -> None:
            if watch_definitions_s is not None:
                await reloader.watch(watch_definitions_s)

        async def on_stop(self) -> None:
            await worker.stop()

    app.service(StreamService)

    @app.timer(interval=tick_seconds)
    async def tick() -> None:
        await worker.tick()

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        # aiohttp wants the charset apart from the type, so the header is set whole.
        return web.bytes(
            generate_latest(telemetry.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        report = worker.health()
        return web.json(report, status=200 if report["status"] == "ok" else 503)

    app.nsm_worker = worker  # type: ignore[attr-defined]
    return app


def _credentials(settings: Settings) -> Any:
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    ssl_context = None
    if protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        ssl_context = create_ssl_context(
            cafile=settings.kafka_ssl_cafile,
            certfile=settings.kafka_ssl_certfile,
            keyfile=settings.kafka_ssl_keyfile,
        )
    if protocol == "SSL":
        return faust.SSLCredentials(ssl_context)
    password = (
        settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    )
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=password,
        mechanism=settings.kafka_sasl_mechanism or "PLAIN",
        ssl_context=ssl_context,
    )
