"""`nsm evaluate`: the four-part north-star test on history, a scorecard and an HTML report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

import click
import orjson

from processor.analysis.evaluate.export import scorecard_json
from processor.analysis.evaluate.panel import build_panel
from processor.analysis.evaluate.scorecard import Scorecard, Settings, evaluate_candidates
from processor.analysis.source import read_event_log
from processor.cli.options import (
    definitions_option,
    events_option,
    input_format_option,
    json_lines,
    load_or_exit,
)
from processor.definitions import Catalog


def default_candidates(catalog: Catalog) -> list[str]:
    """Every north star, and every diagnostic that counts entities (the other candidates)."""
    return [
        m.name
        for m in catalog
        if m.tier == "north_star" or (m.tier == "diagnostic" and m.kind == "entities")
    ]


@click.command(name="evaluate")
@events_option
@definitions_option
@click.option(
    "--candidate",
    "candidates",
    multiple=True,
    metavar="METRIC",
    help="Test this metric too (repeatable); default: the north stars and the "
    "diagnostics that count entities.",
)
@click.option(
    "--months",
    type=click.IntRange(min=1),
    default=6,
    show_default=True,
    help="Leading indicator: retention and expansion this many months (30 days) after "
    "the first month.",
)
@click.option(
    "--retention-weeks",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Core value: retained this many weeks after a week of reaching the metric.",
)
@click.option(
    "--active-events",
    metavar="TYPE,...",
    default=None,
    help="Event types that show an account is active [default: any type].",
)
@click.option(
    "--min-active-weeks",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Leave out accounts active in fewer weeks (prospects, one-off visits).",
)
@click.option(
    "--bootstrap",
    "resamples",
    type=click.IntRange(min=100),
    default=1000,
    show_default=True,
    help="Bootstrap resamples for confidence intervals.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the bootstrap: same events and seed, same intervals.",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the HTML report (self-contained, with charts) to this file.",
)
@input_format_option
@click.pass_context
def command(
    ctx: click.Context,
    events_path: str,
    definitions_path: str,
    input_format: Literal["nsm", "segment"],
    candidates: tuple[str, ...],
    months: int,
    retention_weeks: int,
    active_events: str | None,
    min_active_weeks: int,
    resamples: int,
    seed: int,
    output_format: str,
    html_path: Path | None,
) -> None:
    """Test every north star and candidate on history, and recommend one north star and a backup.

    \b
    1. Core value: retention of the accounts that reach the metric, against those that do not.
    2. Frequency: in how many weeks it moves; share of active accounts reaching it weekly.
    3. Leading indicator: by signup cohort, month-1 attainment against retention (and revenue)
       --months later, as an effect size with a bootstrap confidence interval.
    4. Movability: its largest move within any quarter.
    Flags: concentration (one account dominates) and vanity (counts of sign-ups, logins, page
    views, or a series that only goes up). See docs/evaluate.md for how to read the scorecard.

    \b
    Example:
      nsm evaluate --events history.jsonl --html north-star.html
    """
    catalog = load_or_exit(ctx, definitions_path)
    unknown = [name for name in candidates if name not in catalog.metrics]
    if unknown:
        raise click.BadParameter(
            f"no metric {', '.join(unknown)} in {definitions_path}", param_hint="--candidate"
        )
    north_stars = [m.name for m in catalog.north_stars()]
    names = (
        list(dict.fromkeys([*north_stars, *candidates]))
        if candidates
        else (default_candidates(catalog))
    )
    types = (
        None
        if active_events is None
        else {t.strip() for t in active_events.split(",") if t.strip()}
    )
    settings = Settings(
        months=months, retention_weeks=retention_weeks, resamples=resamples, seed=seed
    )
    with click.open_file(events_path, "rb") as stream:
        log = read_event_log(json_lines(stream), catalog, input_format=input_format)
    try:
        panel = build_panel(log, catalog, names, types, min_active_weeks)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    card = evaluate_candidates(panel, catalog, names, settings)
    if output_format == "json":
        out = click.get_binary_stream("stdout")
        out.write(orjson.dumps(scorecard_json(card, panel, settings), option=orjson.OPT_INDENT_2))
        out.write(b"\n")
        out.flush()
    else:
        _print_table(card, settings)
    if html_path is not None:
        from processor.analysis.report import render_report

        html_path.write_text(render_report(card, panel, settings), encoding="utf-8")
        click.echo(f"nsm evaluate: report written to {html_path}", err=True)


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value * 100:+.0f} pt" if signed else f"{value * 100:.0f}%"


def _print_table(card: Scorecard, settings: Settings) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=sys.stdout, highlight=False, soft_wrap=True)
    table = Table(title="North-star scorecard")
    for column in (
        "#",
        "candidate",
        "score",
        f"leading (m{settings.months} retention)",
        f"core value ({settings.retention_weeks} wk)",
        "frequency",
        "movability",
        "flags",
    ):
        table.add_column(column)
    for rank, r in enumerate(card.candidates, start=1):
        lead, core = r.leading.retention, r.core_value
        flags = [
            *(["vanity"] if r.flags.vanity else []),
            *(["concentration"] if r.flags.concentrated else []),
        ]
        table.add_row(
            str(rank),
            r.name,
            f"{r.overall:.2f}",
            f"{_pct(lead.estimate, True)} [{_pct(lead.low, True)}, {_pct(lead.high, True)}]",
            f"{_pct(core.estimate, True)} [{_pct(core.low, True)}, {_pct(core.high, True)}]",
            f"moved {r.frequency.weeks_moved}/{r.frequency.weeks_compared} wk, "
            f"reach {_pct(r.frequency.weekly_reach)}",
            _pct(r.movability.move),
            ", ".join(flags),
        )
    console.print(table)
    console.print(
        f"North star: [bold]{card.north_star or 'none'}[/bold]   "
        f"backup: [bold]{card.backup or 'none'}[/bold]"
    )
    for reason in card.reasons:
        console.print(f"  - {reason}")
