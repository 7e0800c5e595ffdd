"""`nsm replay`: rebuild every metric from a topic into a namespace of its own."""

from __future__ import annotations

import asyncio
import sys

import click
import orjson
from pydantic import SecretStr

from processor.cli.options import TIME, definitions_option, load_or_exit
from processor.config import Settings
from processor.durations import parse_duration_ms
from processor.events import format_time
from processor.replay.cli_support import live_option, redis_option, run_with_redis
from processor.replay.processes import ShardFailed
from processor.replay.run import ReplayReport, ReplayRequest, replay
from processor.replay.source import SourceError
from processor.replay.wait import ServicesUnavailable, wait_for_services
from processor.store.client import RedisClient


@click.command(name="replay")
@click.option("--namespace", required=True, help="Write only under nsm:NAME: (a new namespace).")
@click.option(
    "--topic",
    envvar="NSM_TOPIC",
    default="product-events",
    show_default=True,
    help="Topic to replay [env NSM_TOPIC].",
)
@click.option(
    "--bootstrap",
    envvar="NSM_KAFKA_BOOTSTRAP",
    default="127.0.0.1:9092",
    show_default=True,
    help="Kafka bootstrap servers [env NSM_KAFKA_BOOTSTRAP].",
)
@redis_option
@definitions_option
@click.option(
    "--from",
    "from_spec",
    default="earliest",
    show_default=True,
    help="earliest or a TIME (RFC 3339, a date, epoch ms, 7d ago, now): per partition, the "
    "first message produced at or after it.",
)
@click.option("--to", "to_ms", type=TIME, help="Stop after the messages produced up to TIME.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["json", "table"]),
    default="json",
    show_default=True,
)
@click.option(
    "--history/--no-history",
    default=True,
    show_default=True,
    help="Record every metric at every bucket boundary (for `nsm history export`).",
)
@click.option(
    "--history-from",
    "history_from_ms",
    type=TIME,
    help="First time of the history [default: the first replayed event].",
)
@click.option("--resume", is_flag=True, help="Continue an interrupted replay into NAME.")
@click.option("--discard", is_flag=True, help="Delete NAME first (e.g. an interrupted replay).")
@live_option
@click.option(
    "--batch",
    "max_records",
    type=click.IntRange(min=1),
    default=50_000,
    show_default=True,
    help="Records fetched at most per poll.",
)
@click.option(
    "--max-future-skew",
    envvar="NSM_MAX_FUTURE_SKEW",
    default="5m",
    show_default=True,
    help="Events further ahead of the wall clock are invalid.",
)
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    help="Processes reading partitions side by side [default: one per CPU it may use, at most "
    "one per partition; one for fewer than 200,000 messages].",
)
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr [auto].")
@click.option(
    "--wait",
    "wait",
    default="1m",
    show_default=True,
    metavar="DURATION",
    help="How long to wait for Kafka and Redis to answer before giving up (0: do not wait); "
    "one line per attempt on stderr, the attempts further apart each time.",
)
def command(
    namespace: str,
    topic: str,
    bootstrap: str,
    redis_url: str | None,
    definitions_path: str,
    from_spec: str,
    to_ms: int | None,
    output_format: str,
    history: bool,
    history_from_ms: int | None,
    resume: bool,
    discard: bool,
    live: str,
    max_records: int,
    max_future_skew: str,
    processes: int | None,
    progress: bool | None,
    wait: str,
) -> None:
    """Replay every partition of a topic into namespace NAME, on the event clock, and print
    every metric as of the newest event (the JSON of `nsm compute`, or a table).

    Never writes the live namespace; safe beside a running worker (no consumer group). An
    interrupted replay is resumed with --resume or started again with --discard. Then compare
    with `nsm namespace diff`, serve it with `nsm namespace swap`, and import its history into
    Prometheus with `nsm history export`.
    """
    if resume and discard:
        raise click.UsageError("--resume and --discard exclude each other")
    catalog = load_or_exit(click.get_current_context(), definitions_path)
    try:
        skew_ms = parse_duration_ms(max_future_skew)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--max-future-skew") from None
    try:
        wait_s = 0.0 if wait.strip() == "0" else parse_duration_ms(wait) / 1000
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--wait") from None
    request = ReplayRequest(
        namespace=namespace, topic=topic, bootstrap=bootstrap, catalog=catalog,
        from_spec=from_spec, to_ms=to_ms, history=history, history_from_ms=history_from_ms,
        resume=resume, discard=discard, live=live, max_records=max_records,
        max_future_skew_ms=skew_ms,
        progress=sys.stderr.isatty() if progress is None else progress, processes=processes,
    )  # fmt: skip
    settings = Settings()
    if redis_url:  # the replay's own processes connect to the same Redis
        settings = settings.model_copy(update={"redis_url": SecretStr(redis_url)})

    async def run_replay(client: RedisClient) -> ReplayReport:
        return await replay(client, settings, request)

    try:
        # Before connecting: making the client already needs Redis to answer.
        asyncio.run(wait_for_services(settings.redis_url.get_secret_value(), bootstrap, settings,
                                      wait_s, lambda line: click.echo(line, err=True)))  # fmt: skip
        report = run_with_redis(redis_url, run_replay)
    except (SourceError, ShardFailed, ServicesUnavailable) as error:
        raise click.ClickException(str(error)) from None
    except KeyboardInterrupt:
        click.echo(
            f"nsm replay: interrupted; `nsm replay --namespace {namespace} --resume` continues, "
            "--discard starts again",
            err=True,
        )
        sys.exit(130)
    if output_format == "json":
        out = click.get_binary_stream("stdout")
        out.write(orjson.dumps(report.result.to_json()) + b"\n")
        out.flush()
    else:
        from processor.cli.compute import _print_table

        _print_table(report.result, catalog)
    click.echo(describe(report, namespace), err=True)


def describe(report: ReplayReport, namespace: str) -> str:
    result = report.result
    rate = report.events / report.seconds if report.seconds > 0 else 0.0
    invalid = sum(result.invalid.values())
    text = (
        f"nsm replay: {report.events:,} messages from {report.partitions} partitions "
        f"({report.processes} {'process' if report.processes == 1 else 'processes'}) in "
        f"{report.seconds:.1f}s ({rate:,.0f} events/s)"
        f"{' after resuming' if report.resumed else ''}; "
        f"{result.applied:,} applied, {invalid:,} invalid"
    )
    if invalid:
        text += f" ({', '.join(f'{r}: {n:,}' for r, n in sorted(result.invalid.items()) if n)})"
    text += f", {result.duplicates:,} duplicates in all"
    if report.history_points:
        text += f"; {report.history_points:,} history points ({report.history_seconds:.1f}s)"
    return text + f"; namespace {namespace} complete, as of {format_time(result.as_of_ms)}"
