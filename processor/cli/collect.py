"""`nsm collect`: the Segment/RudderStack HTTP tracking API, producing to the topic."""

from __future__ import annotations

import logging.config

import click


@click.command(
    epilog="""\b
Other settings, from the environment (docs/segment.md):
  NSM_COLLECT_WRITE_KEYS         accepted write keys, comma-separated (required)
  NSM_COLLECT_MAX_CALL_BYTES     largest call and single-call body (32768)
  NSM_COLLECT_MAX_REQUEST_BYTES  largest /v1/batch body, after gzip (512000)
  NSM_COLLECT_MAX_PENDING        calls waiting for Kafka at most; past it, 503 (100000)
  NSM_COLLECT_ACK_TIMEOUT        wait for Kafka's acknowledgement before a 503 (10s)
  NSM_MAX_FUTURE_SKEW            calls further ahead of the clock get 400 (5m)
  NSM_KAFKA_*                    Kafka security, as for the worker"""
)
@click.option("--host", help="Address to listen on (NSM_COLLECT_HOST) [default: 0.0.0.0].")
@click.option("--port", type=int, help="Port (NSM_COLLECT_PORT) [default: 8088].")
@click.option("--topic", help="Topic to produce to (NSM_TOPIC) [default: product-events].")
@click.option("--bootstrap", help="Kafka bootstrap servers (NSM_KAFKA_BOOTSTRAP).")
@click.option(
    "--key-field",
    help="Field whose value keys each message (NSM_COLLECT_KEY_FIELD) [default: the account: "
    "groupId, else context.groupId; then userId, anonymousId].",
)
@click.option(
    "--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"])
)
def command(host: str | None, port: int | None, topic: str | None, bootstrap: str | None,
            key_field: str | None, log_level: str) -> None:  # fmt: skip
    """Run an HTTP collector speaking the Segment/RudderStack tracking API.

    Serves POST /v1/track, /v1/identify, /v1/group, /v1/page, /v1/screen, /v1/alias and
    /v1/batch with basic-auth write keys and gzip bodies, and produces each valid call to the
    topic, keyed by its account. Answers 200 once Kafka acknowledged the calls, 400 with the
    reason, 401 on a bad key, 413 when too large, 503 while Kafka is unreachable (the SDKs
    retry). /metrics and /health on the same port. The worker reads the topic with
    NSM_INPUT_FORMAT=segment.
    """
    from aiohttp import web
    from pydantic import ValidationError

    from processor.collect.app import Collector
    from processor.collect.settings import CollectSettings
    from processor.worker.logs import logging_config

    given = {
        "collect_host": host, "collect_port": port, "topic": topic,
        "kafka_bootstrap": bootstrap, "collect_key_field": key_field,
    }  # fmt: skip
    try:
        settings = CollectSettings(**{k: v for k, v in given.items() if v is not None})  # type: ignore[arg-type]
        collector = Collector(settings)
    except (ValidationError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    logging.config.dictConfig(logging_config(log_level))
    web.run_app(
        collector.app(), host=settings.collect_host, port=settings.collect_port,
        access_log=None, print=None,
    )  # fmt: skip
