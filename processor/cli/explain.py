"""`nsm explain`: which diagnostics and segment values moved a metric between two times."""

from __future__ import annotations

from typing import Literal

import click
import orjson

from processor.analysis.explain.render import to_json, to_text
from processor.analysis.explain.tree import explain_change
from processor.analysis.prometheus import PrometheusSource, PrometheusUnavailable
from processor.analysis.source import EventsSource, HistorySource, ValueSource, read_event_log
from processor.cli.options import (
    TIME,
    definitions_option,
    input_format_option,
    json_lines,
    load_or_exit,
)
from processor.cli.output import progress_status
from processor.durations import UNIT_MS
from processor.events import format_time
from processor.replay.cli_support import redis_option, run_with_redis
from processor.replay.export import load_history
from processor.times import now_ms

WEEK_MS = UNIT_MS["w"]


@click.command(name="explain")
@click.argument("metric")
@click.option(
    "--from",
    "from_ms",
    type=TIME,
    help="The earlier TIME: RFC 3339, a date, epoch ms, a duration ago (7d) or now "
    "[default: one week before --to, the move the drop alert watches].",
)
@click.option(
    "--to",
    "to_ms",
    type=TIME,
    help="The later TIME, same forms [default: now with --prometheus, the newest event with "
    "--events, the end of the history with --namespace].",
)
@click.option(
    "--prometheus",
    "prometheus_url",
    metavar="URL",
    envvar="NSM_PROMETHEUS_URL",
    help="Read the values from this Prometheus (the series the worker exports) "
    "[env NSM_PROMETHEUS_URL].",
)
@click.option(
    "--events",
    "events_path",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=str),
    help="Or: compute the values from this JSON Lines file of events; - for standard input.",
)
@click.option(
    "--namespace",
    help="Or: read the history of a replayed namespace (nsm replay).",
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
    help="Segment values shown per segment field, largest contribution first; the largest "
    "decliner and the largest riser are always shown too.",
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
    from_ms: int | None,
    to_ms: int | None,
    prometheus_url: str | None,
    events_path: str | None,
    namespace: str | None,
    redis_url: str | None,
    definitions_path: str,
    depth: int | None,
    top: int,
    input_format: Literal["nsm", "segment"],
    output_format: str,
) -> None:
    """Explain the change of METRIC between --from and --to (by default the last week's).

    Walks the KPI tree under METRIC (its diagnostics, their granular metrics) and ranks, for each
    metric, the segment values by their contribution to the change, largest either way first:
    for counts and sums each value's share of the change against its share of the starting
    value; for ratios (a / b) the split into rate, mix and interaction effects. Diagnostics that
    moved with METRIC come first.

    The values come from exactly one of: Prometheus (--prometheus, what the worker exports, as
    the drop alert's annotation says), a file of events (--events) or a replay (--namespace).

    \b
    Examples:
      nsm explain weekly_active_accounts_3plus_reports --prometheus http://127.0.0.1:9090
      nsm explain weekly_active_accounts_3plus_reports --events events.jsonl \\
          --from 2026-11-09 --to 2026-11-16
      nsm explain weekly_active_accounts_3plus_reports --namespace rebuild --from 14d --to 7d
    """
    catalog = load_or_exit(ctx, definitions_path)
    if metric not in catalog.metrics:
        raise click.BadParameter(f"no metric {metric!r} in {definitions_path}", param_hint="METRIC")
    given = [x for x in (prometheus_url, events_path, namespace) if x is not None]
    if len(given) != 1:
        raise click.UsageError(
            "give exactly one of --prometheus URL, --events FILE and --namespace NAME"
        )
    source: ValueSource
    newest: int | None
    with progress_status("reading the values and explaining"):
        if prometheus_url is not None:
            source, newest = PrometheusSource(prometheus_url), now_ms()
        elif namespace is not None:
            history = run_with_redis(redis_url, lambda client: load_history(client, namespace))
            if history is None:
                raise click.ClickException(
                    f"namespace {namespace!r} has no history: run nsm replay --namespace "
                    f"{namespace} (with history, the default) first"
                )
            source, newest = HistorySource(history.points, history.end_ms), history.end_ms
        else:
            assert events_path is not None
            with click.open_file(events_path, "rb") as stream:
                log = read_event_log(json_lines(stream), catalog, input_format=input_format)
            if not log.events:
                raise click.ClickException(
                    f"{events_path} holds no valid event: explain needs events of at least the "
                    "two times compared"
                )
            source, newest = EventsSource(log, catalog), log.last_ms
        to_ms = newest if to_ms is None else to_ms
        assert to_ms is not None
        from_ms = to_ms - WEEK_MS if from_ms is None else from_ms
        if to_ms < from_ms:
            raise click.BadParameter("--to is before --from", param_hint="--to")
        try:
            values = source.values_at([from_ms, to_ms])
        except (ValueError, PrometheusUnavailable) as exc:
            raise click.ClickException(str(exc)) from None
    for at in (from_ms, to_ms):
        if values[at].get(metric) is None or values[at][metric].value is None:
            raise click.ClickException(
                f"{metric} has no value at {format_time(at)}: explain needs its value at both "
                "times (a metric not yet exported, or a ratio without denominator, has none)"
            )
    node = explain_change(catalog, metric, values[from_ms], values[to_ms], depth)
    if output_format == "json":
        document = {"from": format_time(from_ms), "to": format_time(to_ms), **to_json(node)}
        out = click.get_binary_stream("stdout")
        out.write(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
        out.flush()
    else:
        click.echo(to_text(node, format_time(from_ms), format_time(to_ms), top))
