"""`nsm generate`: a realistic synthetic B2B SaaS event stream, to a file, stdout or Kafka."""

from __future__ import annotations

import sys
from typing import IO

import click

from processor.cli.options import TIME
from processor.config import Settings
from processor.generate import Drop, RecordStream, plan_history
from processor.generate.sinks import LinesSink, Sink, run
from processor.generate.to_kafka import DeliveryFailed, KafkaSink, KafkaUnavailable

# `--follow` without `--rate`: a pace a person can watch on a dashboard.
DEFAULT_FOLLOW_RATE = 20.0


PERCENT = click.FloatRange(0, 100)


def _progress_wanted(choice: bool | None, to_stdout: bool) -> bool:
    if choice is not None:
        return choice
    # On by default only where a person watches: stderr is a terminal, and the events themselves
    # are not being printed to that same terminal.
    return sys.stderr.isatty() and not (to_stdout and sys.stdout.isatty())


@click.command(name="generate")
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same stream.")
@click.option("--accounts", type=click.IntRange(min=1), default=100, show_default=True)
@click.option(
    "--days",
    type=click.FloatRange(min=0),
    help="Length of the history (default 28, or sized to --events when only that is given).",
)
@click.option("--events", type=click.IntRange(min=0), help="Stop after this many events.")
@click.option(
    "--start", type=TIME, help="Start of the history (RFC 3339, a date, epoch ms, 7d ago, now)."
)
@click.option("--end", type=TIME, help="End of the history [default: now].")
@click.option("--drop", "drop_pct", type=click.FloatRange(0, 100, min_open=True), help=(
    "Remove this percentage of product usage from --drop-from on."))  # fmt: skip
@click.option("--drop-from", type=TIME, help="When the drop starts.")
@click.option(
    "--drop-segment",
    metavar="FIELD=VALUE",
    help="Restrict the drop to accounts with this attribute, e.g. plan=pro or region=emea.",
)
@click.option(
    "--churn-low-usage",
    is_flag=True,
    help="Accounts sending few reports in their first month churn some weeks later.",
)
@click.option("--duplicates", type=PERCENT, default=0.0, help="Percent of events sent twice.")
@click.option("--invalid", type=PERCENT, default=0.0, help="Percent of extra invalid messages.")
@click.option(
    "--disorder",
    type=click.FloatRange(min=0),
    default=0.0,
    metavar="SECONDS",
    help="Shuffle events locally, each by up to this many seconds.",
)
@click.option(
    "--format",
    "event_format",
    type=click.Choice(["nsm", "segment"]),
    default="nsm",
    show_default=True,
    help="NSM's own events, or Segment/RudderStack calls (track, page and group calls; read "
    "with NSM_INPUT_FORMAT=segment and definitions/segment/).",
)
@click.option("--out", default="-", show_default=True, help="JSON Lines file; - is stdout.")
@click.option("--topic", help="Produce to this Kafka topic [env NSM_TOPIC, product-events].")
@click.option(
    "--bootstrap",
    metavar="HOST:PORT",
    help="Kafka bootstrap servers [env NSM_KAFKA_BOOTSTRAP, 127.0.0.1:9092].",
)
@click.option("--kafka", "to_kafka", is_flag=True, help="Produce to Kafka with the defaults.")
@click.option(
    "--rate",
    type=click.FloatRange(min=0),
    default=0.0,
    metavar="EVENTS_PER_SECOND",
    help="Pace of sending; 0 is as fast as possible.",
)
@click.option(
    "--follow",
    is_flag=True,
    help=f"After the history, keep sending live events (now-stamped) at --rate "
    f"(default {DEFAULT_FOLLOW_RATE:g}/s) until Ctrl-C.",
)
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr [auto].")
def command(
    seed: int,
    accounts: int,
    days: float | None,
    events: int | None,
    start: int | None,
    end: int | None,
    drop_pct: float | None,
    drop_from: int | None,
    drop_segment: str | None,
    churn_low_usage: bool,
    duplicates: float,
    invalid: float,
    disorder: float,
    event_format: str,
    out: str,
    topic: str | None,
    bootstrap: str | None,
    to_kafka: bool,
    rate: float,
    follow: bool,
    progress: bool | None,
) -> None:
    """Generate a seeded, realistic B2B SaaS event stream (product usage and go-to-market events)
    as JSON Lines in time order, to a file, standard output or a Kafka topic (key: account_id).

    \b
    Examples:
      nsm generate --seed 7 --days 90 --out events.jsonl
      nsm generate --events 1000000 --out big.jsonl
      nsm generate --days 60 --drop 30 --drop-from 2026-11-10 --drop-segment region=emea
      nsm generate --kafka --days 14 --follow --rate 50
      nsm generate --format segment --days 30 --out calls.jsonl
    """
    try:
        drop = _drop(drop_pct, drop_from, drop_segment)
        config = plan_history(
            seed=seed,
            accounts=accounts,
            start_ms=start,
            end_ms=end,
            days=days,
            max_events=events,
            drop=drop,
            churn_low_usage=churn_low_usage,
            duplicates_pct=duplicates,
            invalid_pct=invalid,
            disorder_ms=int(disorder * 1000),
            event_format=event_format,
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from None

    kafka = to_kafka or topic is not None or bootstrap is not None
    if kafka and out != "-":
        raise click.UsageError("--out and Kafka options exclude each other: choose one destination")
    sink: Sink
    if kafka:
        settings = Settings()
        bootstrap = bootstrap or settings.kafka_bootstrap
        topic = topic or settings.topic
        destination = f"topic {topic} at {bootstrap}"
        try:
            sink = KafkaSink(bootstrap, topic)
        except KafkaUnavailable as error:
            raise click.ClickException(str(error)) from None
    else:
        handle: IO[bytes] = sys.stdout.buffer if out == "-" else open(out, "wb")  # noqa: SIM115
        sink = LinesSink(handle, close_handle=out != "-")
        destination = "standard output" if out == "-" else out

    show_progress = _progress_wanted(progress, to_stdout=not kafka and out == "-")
    console = None
    if show_progress:
        from rich.console import Console

        console = Console(stderr=True)
    stream = RecordStream(config, follow=follow)
    live_rate = rate or DEFAULT_FOLLOW_RATE
    try:
        summary = run(stream, sink, rate=rate, live_rate=live_rate, progress_console=console)
    except DeliveryFailed as error:
        raise click.ClickException(str(error)) from None
    click.echo(summary.describe(destination), err=True)
    if summary.interrupted and not follow:
        sys.exit(130)  # interrupted before the end: say so to scripts, as a shell would


def _drop(pct: float | None, from_ms: int | None, segment: str | None) -> Drop | None:
    if pct is None:
        if from_ms is not None or segment is not None:
            raise ValueError("--drop-from and --drop-segment go with --drop PCT")
        return None
    if from_ms is None:
        raise ValueError("--drop needs --drop-from TIME: when the drop starts")
    field, value = Drop.parse_segment(segment) if segment else (None, None)
    return Drop(pct=pct, from_ms=from_ms, field=field, value=value)
