"""`nsm explain`: which diagnostics and segment values moved a metric between two times."""

from __future__ import annotations

from typing import Literal

import click
import orjson

from processor.analysis.explain.render import to_json, to_text
from processor.analysis.explain.tree import explain_change
from processor.analysis.source import EventsSource, HistorySource, ValueSource, read_event_log
from processor.cli.options import (
    TIME,
    definitions_option,
    input_format_option,
    json_lines,
    load_or_exit,
)
from processor.events import format_time
from processor.replay.cli_support import redis_option, run_with_redis
from processor.replay.export import load_history


@click.command(name="explain")
@click.argument("metric")
@click.option(
    "--from",
    "from_ms",
    required=True,
    type=TIME,
    help="The earlier time: RFC 3339 with a zone, or epoch milliseconds.",
)
@click.option("--to", "to_ms", required=True, type=TIME, help="The later time, same forms.")
@click.option(
    "--events",
    "events_path",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=str),
    help="JSON Lines file of events; - for standard input.",
)
@click.option(
    "--namespace",
    help="Instead of --events: the history of a replayed namespace (nsm replay).",
)
@redis_option
@definitions_option
@click.option(
    "--depth",
    type=click.IntRange(min=0),
    default=None,
    help="Levels of the KPI tree below METRIC to show [default: all].",
)
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Segment values shown per segment field in the tree.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
)
@input_format_option
@click.pass_context
def command(
    ctx: click.Context,
    metric: str,
    from_ms: int,
    to_ms: int,
    events_path: str | None,
    namespace: str | None,
    redis_url: str | None,
    definitions_path: str,
    depth: int | None,
    top: int,
    input_format: Literal["nsm", "segment"],
    output_format: str,
) -> None:
    """Explain the change of METRIC between --from and --to.

    Walks the KPI tree under METRIC (its diagnostics, their granular metrics) and ranks, for each
    metric, the segment values that contributed most: for counts and sums each value's share of
    the change against its share of the starting value; for ratios (a / b) the split into rate,
    mix and interaction effects. Diagnostics that moved with METRIC come first.

    \b
    Example:
      nsm explain weekly_active_accounts_3plus_reports --events events.jsonl \\
          --from 2026-11-09T00:00:00Z --to 2026-11-16T00:00:00Z
      nsm explain weekly_active_accounts_3plus_reports --namespace rebuild \\
          --from 2026-11-09T00:00:00Z --to 2026-11-16T00:00:00Z
    """
    catalog = load_or_exit(ctx, definitions_path)
    if metric not in catalog.metrics:
        raise click.BadParameter(f"no metric {metric!r} in {definitions_path}", param_hint="METRIC")
    if to_ms < from_ms:
        raise click.BadParameter("--to is before --from", param_hint="--to")
    if (events_path is None) == (namespace is None):
        raise click.UsageError("give exactly one of --events FILE and --namespace NAME")
    source: ValueSource
    if namespace is not None:
        history = run_with_redis(redis_url, lambda client: load_history(client, namespace))
        if history is None:
            raise click.ClickException(f"namespace {namespace!r} has no history: run nsm replay")
        source = HistorySource(history.points, history.end_ms)
    else:
        assert events_path is not None
        with click.open_file(events_path, "rb") as stream:
            source = EventsSource(
                read_event_log(json_lines(stream), catalog, input_format=input_format), catalog
            )
    try:
        values = source.values_at([from_ms, to_ms])
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    node = explain_change(catalog, metric, values[from_ms], values[to_ms], depth)
    if output_format == "json":
        document = {"from": format_time(from_ms), "to": format_time(to_ms), **to_json(node)}
        out = click.get_binary_stream("stdout")
        out.write(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
        out.flush()
    else:
        click.echo(to_text(node, format_time(from_ms), format_time(to_ms), top))
