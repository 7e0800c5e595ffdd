"""`nsm worker`: the streaming processor (Kafka -> exact windows in Redis -> /metrics)."""

from __future__ import annotations

import sys

import click

from processor.config import Settings


@click.command(context_settings={"show_default": True})
@click.option(
    "--definitions",
    envvar="NSM_DEFINITIONS",
    default="definitions/",
    help="Folder of metric definitions (NSM_DEFINITIONS).",
)
@click.option(
    "--topic",
    envvar="NSM_TOPIC",
    default="product-events",
    help="Input topic (NSM_TOPIC); invalid events go to <topic>.dlq.",
)
@click.option(
    "--bootstrap",
    envvar="NSM_KAFKA_BOOTSTRAP",
    default="127.0.0.1:9092",
    help="Kafka bootstrap servers (NSM_KAFKA_BOOTSTRAP).",
)
@click.option(
    "--redis-url",
    envvar="NSM_REDIS_URL",
    default="redis://127.0.0.1:6379/0",
    show_default=False,
    help="Redis URL (NSM_REDIS_URL): a server or any node of a Redis Cluster (detected; "
    "?cluster=yes|no to say), rediss:// for TLS.",
)
@click.option(
    "--namespace",
    envvar="NSM_NAMESPACE",
    default="live",
    help="Redis namespace served (NSM_NAMESPACE); keys start with nsm:<namespace>:.",
)
@click.option(
    "--metrics-port",
    envvar="NSM_METRICS_PORT",
    default=6066,
    type=int,
    help="Port of /metrics and /health (NSM_METRICS_PORT).",
)
@click.option(
    "--clock",
    envvar="NSM_CLOCK",
    default="wall",
    type=click.Choice(["wall", "events"]),
    help="Windows slide with the wall clock, or with the newest event time (replays).",
)
@click.option(
    "--max-future-skew",
    envvar="NSM_MAX_FUTURE_SKEW",
    default="5m",
    help="Events further ahead of the wall clock go to the dead-letter topic.",
)
@click.option(
    "--input-format",
    envvar="NSM_INPUT_FORMAT",
    default="nsm",
    type=click.Choice(["nsm", "segment"]),
    help="Messages are NSM's own events, or Segment/RudderStack calls (docs/segment.md).",
)
@click.option(
    "--tick",
    "tick_seconds",
    envvar="NSM_TICK_SECONDS",
    default=1.0,
    type=float,
    help="Seconds between expiry, summaries and export (NSM_TICK_SECONDS).",
)
@click.option(
    "--watch-definitions",
    "watch_definitions",
    is_flag=False,
    flag_value="2s",
    default=None,
    envvar="NSM_WATCH_DEFINITIONS",
    metavar="[INTERVAL]",
    help="Reload the definitions when their files change, checking every INTERVAL (seconds, or "
    "a duration like 2s; 2s when given without one) [env NSM_WATCH_DEFINITIONS]. SIGHUP "
    "reloads them in any case.",
)
@click.option(
    "--log-level", default="info", type=click.Choice(["debug", "info", "warning", "error"])
)
def command(definitions: str, topic: str, bootstrap: str, redis_url: str, namespace: str,
            metrics_port: int, clock: str, max_future_skew: str, input_format: str,
            tick_seconds: float, watch_definitions: str | None,
            log_level: str) -> None:  # fmt: skip
    """Run the streaming worker.

    Consumes the topic in batches in the consumer group nsm-<namespace>, keeps every metric's
    exact rolling windows in Redis (one atomic step per batch, so a restart after kill -9 neither
    loses nor double-counts), and serves nsm_metric_value and health series on /metrics. Start
    several with the same namespace to share the partitions; one of them exports the values.

    A metric that is new, or defined differently than its stored state, is rebuilt from the
    topic in the background (the others go on without a pause) and exported only once it is
    complete: nsm_metric_ready says which are. SIGHUP, or a change of the files with
    --watch-definitions, reloads the definitions without a restart; an invalid set is rejected
    (its problems logged) and the running one kept.

    Started before Kafka or Redis answers, it waits for them (/health answers 503 naming what
    is missing). An invalid message, or one it fails on (unprocessable), goes to <topic>.dlq and
    the rest is applied. Stop it with SIGTERM or Ctrl-C.
    """
    from pydantic import ValidationError

    from processor.definitions import DefinitionsError, load_definitions

    overrides = dict(
        definitions=definitions, topic=topic, kafka_bootstrap=bootstrap, redis_url=redis_url,
        namespace=namespace, metrics_port=metrics_port, clock=clock,
        max_future_skew=max_future_skew, input_format=input_format,
    )  # fmt: skip
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        catalog = load_definitions(settings.definitions)
    except DefinitionsError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)

    import faust

    from processor.worker.app import create_app
    from processor.worker.logs import logging_config

    watch_s = None
    if watch_definitions is not None:
        from processor.durations import parse_duration_ms

        try:
            watch_s = float(watch_definitions)  # seconds, or a duration (2s, 1m)
        except ValueError:
            try:
                watch_s = parse_duration_ms(watch_definitions) / 1000
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--watch-definitions") from None
        if watch_s <= 0:
            raise click.BadParameter("give a positive interval", param_hint="--watch-definitions")
    app = create_app(settings, catalog, tick_seconds, watch_s)
    # faust's worker reads its own options from argv; ours are parsed already.
    sys.argv = [sys.argv[0]]
    faust.Worker(
        app, loglevel=log_level, logging_config=logging_config(log_level), quiet=True
    ).execute_from_commandline()
