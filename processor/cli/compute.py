"""`nsm compute`: every metric from a JSON Lines file of events, with the engine the worker uses."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import click
import orjson

from processor.cli.options import (
    TIME,
    JsonLinesFile,
    definitions_option,
    events_option,
    input_format_option,
    load_or_exit,
)
from processor.cli.output import TableData, print_tables, progress_status
from processor.definitions import (
    Catalog,
)
from processor.definitions.model import TIERS
from processor.durations import parse_duration_ms
from processor.engine import ComputeResult, compute_metrics
from processor.engine.segments import Value
from processor.events import format_time


def _parse_skew(ctx: click.Context, param: click.Parameter, value: str) -> int:
    try:
        return parse_duration_ms(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command(name="compute")
@events_option
@definitions_option
@click.option(
    "--at",
    "at_ms",
    default=None,
    type=TIME,
    help="Compute as of this TIME (RFC 3339, a date, epoch ms, 7d ago or now). "
    "Default: the largest event time among the applied events.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["json", "table"]),
    default="json",
    show_default=True,
)
@click.option(
    "--max-future-skew",
    "max_future_skew_ms",
    default="5m",
    envvar="NSM_MAX_FUTURE_SKEW",
    show_default=True,
    callback=_parse_skew,
    help="Events further than this ahead of the wall clock are invalid (future_timestamp).",
)
@input_format_option
@click.pass_context
def command(
    ctx: click.Context,
    events_path: str,
    definitions_path: str,
    at_ms: int | None,
    output_format: str,
    max_future_skew_ms: int,
    input_format: Literal["nsm", "segment"],
) -> None:
    """Compute every metric from a file of events, exactly as the streaming worker would.

    Events are applied in file order (which decides duplicates and ties of event time). Prints
    one JSON document (or a table) to standard output; to standard error, each invalid line as
    FILE:LINE: REASON: DETAIL, then a summary of invalid and duplicate events. An event the
    engine fails on is invalid (reason unprocessable) and the rest is computed without it.
    """
    catalog = load_or_exit(ctx, definitions_path)
    with (
        progress_status(f"computing every metric from {events_path}"),
        JsonLinesFile(events_path) as events,
    ):
        try:
            result = compute_metrics(
                events,
                catalog,
                at_ms=at_ms,
                max_future_skew_ms=max_future_skew_ms,
                input_format=input_format,
            )
        except OSError as error:
            raise click.FileError(events.name, str(error)) from None
    if output_format == "json":
        out = click.get_binary_stream("stdout")
        out.write(orjson.dumps(result.to_json()) + b"\n")
        out.flush()
    else:
        _print_table(result, catalog)
    for rejected in result.rejected:
        line = events.line_number(rejected.position)
        click.echo(f"{events.name}:{line}: {rejected.reason}: {rejected.detail}", err=True)
    click.echo(summary(result), err=True)


def summary(result: ComputeResult) -> str:
    invalid_total = sum(result.invalid.values())
    text = f"nsm compute: {result.applied} events applied, {invalid_total} invalid"
    if invalid_total:
        reasons = ", ".join(f"{r}: {n}" for r, n in sorted(result.invalid.items()))
        text += f" ({reasons})"
    text += f", {result.duplicates} duplicates; as of {format_time(result.as_of_ms)}"
    if not result.applied:
        text += (
            "\nnsm compute: no valid event, so every metric is empty: give a JSON Lines file of "
            "events (nsm generate --out events.jsonl makes one)"
        )
    return text


def format_value(value: Value) -> str:
    if value is None:
        return "no value"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{float(value):,.4f}".rstrip("0").rstrip(".")


def _in_tier_order(catalog: Catalog) -> Iterable[str]:
    rank = {tier: i for i, tier in enumerate(TIERS)}
    return sorted(catalog.metrics, key=lambda name: rank[catalog[name].tier])


def _print_table(result: ComputeResult, catalog: Catalog) -> None:
    metrics = TableData(
        f"Metrics as of {format_time(result.as_of_ms)}",
        ["metric", "tier", "value"],
        ["left", "left", "right"],
    )
    breakdowns = TableData(
        "Breakdowns",
        ["metric", "segment", "segment value", "value"],
        ["left", "left", "left", "right"],
    )
    for name in _in_tier_order(catalog):
        value = result.values[name]
        metrics.add_row(name, catalog[name].tier, format_value(value.value))
        for segment, values in value.segments.items():
            for label, amount in values.items():
                breakdowns.add_row(name, segment, label, format_value(amount))
    print_tables(metrics, breakdowns)
