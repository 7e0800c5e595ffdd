"""`nsm evaluate`: the four-part north-star test on history, a scorecard and an HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import click
import orjson

from processor.analysis.evaluate.export import history_needs, scorecard_json
from processor.analysis.evaluate.panel import Panel, build_panel
from processor.analysis.evaluate.scorecard import Scorecard, Settings, evaluate_candidates
from processor.analysis.source import read_event_log
from processor.cli.options import (
    definitions_option,
    events_option,
    input_format_option,
    json_lines,
    load_or_exit,
)
from processor.cli.output import Align, TableData, print_tables, progress_status
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
    candidates: tuple[str, ...],
    months: int,
    retention_weeks: int,
    active_events: str | None,
    min_active_weeks: int,
    resamples: int,
    seed: int,
    input_format: Literal["nsm", "segment"],
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
    with progress_status(f"reading {events_path}"), click.open_file(events_path, "rb") as stream:
        log = read_event_log(json_lines(stream), catalog, input_format=input_format)
    if not log.events:
        raise click.ClickException(
            f"{events_path} holds no valid event: the test needs weeks of history, months for "
            "the leading indicator"
        )
    try:
        with progress_status(f"computing {len(names)} candidates week by week"):
            panel = build_panel(log, catalog, names, types, min_active_weeks)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    with progress_status(f"testing {len(names)} candidates ({resamples} bootstrap resamples)"):
        card = evaluate_candidates(panel, catalog, names, settings)
    if output_format == "json":
        out = click.get_binary_stream("stdout")
        out.write(orjson.dumps(scorecard_json(card, panel, settings), option=orjson.OPT_INDENT_2))
        out.write(b"\n")
        out.flush()
    else:
        _print_table(card, panel, settings)
    if html_path is not None:
        from processor.analysis.report import render_report

        with progress_status(f"writing {html_path}"):
            html_path.write_text(render_report(card, panel, settings), encoding="utf-8")
        click.echo(f"nsm evaluate: report written to {html_path}", err=True)


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value * 100:+.0f} pt" if signed else f"{value * 100:.0f}%"


def _effect(estimate: float | None, low: float | None, high: float | None) -> str:
    if estimate is None:
        return "not measurable"
    return f"{_pct(estimate, True)} [{_pct(low, True)}, {_pct(high, True)}]"


def _print_table(card: Scorecard, panel: Panel, settings: Settings) -> None:
    columns = [
        "#",
        "candidate",
        "score",
        f"leading (m{settings.months} retention)",
        f"core value ({settings.retention_weeks} wk)",
        "frequency",
        "movability",
        "flags",
    ]
    align: list[Align] = ["right", "left", "right", "left", "left", "left", "left", "left"]
    table = TableData("North-star scorecard", columns, align)
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
            _effect(lead.estimate, lead.low, lead.high),
            _effect(core.estimate, core.low, core.high),
            f"moved {r.frequency.weeks_moved}/{r.frequency.weeks_compared} wk, "
            f"reach {_pct(r.frequency.weekly_reach)}",
            _pct(r.movability.move),
            ", ".join(flags),
        )
    print_tables(table)
    lines = [
        f"North star: {card.north_star or 'none'}   backup: {card.backup or 'none'}",
        f"Declared in the definitions: north star {card.declared_north_star or 'none'}, "
        f"backup {card.declared_backup or 'none'}",
        *(f"  - {reason}" for reason in card.reasons),
        *(
            f"  - {part.replace('_', ' ').capitalize()} not measurable: {need}."
            for part, need in history_needs(panel, settings).items()
        ),
    ]
    click.echo("\n".join(lines))
