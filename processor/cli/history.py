"""`nsm history export`: a replay's history as OpenMetrics, for promtool to import."""

from __future__ import annotations

import sys

import click

from processor.cli.options import TIME
from processor.cli.output import progress_status
from processor.durations import parse_duration_ms
from processor.replay.cli_support import redis_option, run_with_redis
from processor.replay.export import History, load_history, openmetrics
from processor.store.client import RedisClient
from processor.store.namespaces import NamespaceError, check_name


@click.group(name="history")
def command() -> None:
    """The history a replay recorded: every metric at every bucket boundary."""


@command.command(name="export")
@click.option("--namespace", required=True, help="The replayed namespace.")
@click.option("--out", default="-", show_default=True, help="File to write; - is stdout.")
@click.option(
    "--lookback",
    "--step",
    "lookback",
    default="5m",
    show_default=True,
    help="The --query.lookback-delta of the Prometheus that imports it: a sample where a value "
    "changes, then one per this long while it holds (larger leaves gaps in queries and graphs).",
)
@click.option("--from", "from_ms", type=TIME, help="First sample time [default: history start].")
@click.option("--to", "to_ms", type=TIME, help="Last sample time [default: the newest event].")
@click.option(
    "--label",
    "labels",
    multiple=True,
    metavar="NAME=VALUE",
    help="Add a label to every series, e.g. job=nsm.",
)
@redis_option
def export_command(
    namespace: str,
    out: str,
    lookback: str,
    from_ms: int | None,
    to_ms: int | None,
    labels: tuple[str, ...],
    redis_url: str | None,
) -> None:
    """Write the history of NAMESPACE as OpenMetrics text (series `nsm_metric_value`).

    \b
    Only the samples Prometheus needs: one where a value changes (at a bucket boundary), then
    one per --lookback while it holds, so every query over the span is exact and gap-free.

    \b
    Import it into Prometheus (see docs/backfill.md); large blocks import in one pass:
      nsm history export --namespace rebuild --out history.om
      promtool tsdb create-blocks-from openmetrics --max-block-duration=240h history.om ./blocks
      mv ./blocks/* <prometheus data dir>/
    """
    try:
        lookback_ms = parse_duration_ms(lookback)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--lookback") from None
    extra = {}
    for item in labels:
        name, sep, value = item.partition("=")
        if not sep or not name.isidentifier():
            raise click.BadParameter(f"{item!r}: write NAME=VALUE", param_hint="--label")
        extra[name] = value

    async def work(client: RedisClient) -> History:
        check_name(namespace)
        history = await load_history(client, namespace)
        if history is None:
            raise NamespaceError(
                f"{namespace!r} has no history: replay with history on (the default)"
            )
        return history

    history = run_with_redis(redis_url, work)
    lines = openmetrics(history, lookback_ms, from_ms, to_ms, extra)
    samples = 0
    with (
        progress_status(f"writing the history of {namespace}"),
        click.open_file(out, "w") as stream,
    ):
        for line in lines:
            stream.write(line)
            samples += not line.startswith("#")
    where = "standard output" if out == "-" else out
    click.echo(f"nsm history export: {samples:,} samples of {namespace} to {where}", err=True)
    if out == "-":
        sys.stdout.flush()
