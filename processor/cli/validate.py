"""`nsm validate`: check metric definitions and print every problem as `file:line: message`."""

from __future__ import annotations

from collections import Counter
from typing import BinaryIO

import click
from rich.console import Console
from rich.text import Text
from rich.tree import Tree

from processor.definitions import (
    Catalog,
    DefinitionsNotFound,
    DefinitionsReport,
    Metric,
    inspect_definitions,
)
from processor.definitions.events import SampleProfile, profile_sample

EXIT_OK, EXIT_INVALID, EXIT_NOT_FOUND = 0, 1, 2


@click.command(name="validate")
@click.argument(
    "directory",
    required=False,
    default="definitions/",
    envvar="NSM_DEFINITIONS",
    type=click.Path(path_type=str),
)
@click.option(
    "--tree", is_flag=True, help="Also print the KPI hierarchy as a tree (when there is no error)."
)
@click.option(
    "--events",
    "events_file",
    type=click.File("rb"),
    help="Also check the definitions against real events: a JSON Lines sample (- for standard "
    "input).",
)
@click.pass_context
def command(ctx: click.Context, directory: str, tree: bool, events_file: BinaryIO | None) -> None:
    """Check the metric definitions in DIRECTORY (or one YAML file).

    DIRECTORY defaults to $NSM_DEFINITIONS, else definitions/. Every *.yaml and *.yml file in it is
    read (not its subdirectories). Each problem is printed as file:line: message, then a summary.
    Warnings (a KPI hierarchy that is off) are printed but do not fail.

    Where the files declare event types (a top-level events: list), a metric that names an
    undeclared type, or a field that none of its types declares, is an error. With --events
    FILE, every type and field a metric reads is also looked for in a sample of real events:
    those no event of the sample carries are errors, with the counts; declared types and fields
    the sample never shows, and types it shows undeclared, are warnings.

    Exit status: 0 when there is no error, 1 when there is at least one error, 2 when DIRECTORY
    does not exist or holds no definition files.
    """
    sample = None
    if events_file is not None:
        name = str(getattr(events_file, "name", "<stdin>"))
        sample = profile_sample(name, events_file)
    try:
        report = inspect_definitions(directory, sample)
    except DefinitionsNotFound as exc:
        click.echo(f"nsm validate: {exc}", err=True)
        ctx.exit(EXIT_NOT_FOUND)
    if tree and report.catalog is not None:
        Console(highlight=False, soft_wrap=True).print(hierarchy_tree(report.catalog))
    for problem in report.problems:
        click.echo(str(problem))
    click.echo(summary(report, sample))
    ctx.exit(EXIT_INVALID if report.errors else EXIT_OK)


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"


def summary(report: DefinitionsReport, sample: SampleProfile | None = None) -> str:
    """`12 metrics in 3 files: 2 north stars, 6 diagnostics, 4 granular; 0 errors, 1 warning`,
    with the event types declared and the sample read when there are."""
    tiers = Counter(m.tier for m in report.metrics)
    parts = [
        _count(tiers["north_star"], "north star"),
        _count(tiers["diagnostic"], "diagnostic"),
        f"{tiers['granular']} granular",
    ]
    unreadable = report.entries - len(report.metrics)
    if unreadable:
        parts.append(f"{unreadable} not understood")
    checked = ""
    if report.event_types:
        checked += f"; {_count(report.event_types, 'event type')} declared"
    if sample is not None:
        kinds = _count(len(sample.types), "type")
        checked += f"; {sample.name}: {sample.events:,} events of {kinds}"
        if sample.invalid:
            checked += f" ({_count(sample.invalid, 'line')} not an event)"
    return (
        f"{_count(report.entries, 'metric')} in {_count(len(report.files), 'file')}: "
        f"{', '.join(parts)}{checked}; {_count(len(report.errors), 'error')}, "
        f"{_count(len(report.warnings), 'warning')}"
    )


def _label(metric: Metric, note: str = "") -> Text:
    text = Text(metric.name, style="bold" if metric.tier == "north_star" else "")
    details = [metric.tier.replace("_", " "), metric.window]
    if note:
        details.append(note)
    text.append(f"  ({', '.join(details)})", style="dim")
    if metric.title:
        text.append(f"  {metric.title}")
    return text


def hierarchy_tree(catalog: Catalog) -> Tree:
    """North stars, each followed by its backups; diagnostics under them, granular metrics below."""
    root = Tree(Text("KPI hierarchy", style="bold"))

    def add_children(branch: Tree, parent: Metric) -> None:
        for child in catalog.children(parent.name):
            add_children(branch.add(_label(child)), child)

    for north_star in catalog.north_stars():
        if north_star.backup_for is not None and north_star.backup_for in catalog.metrics:
            continue  # shown beside the north star it stands in for
        add_children(root.add(_label(north_star)), north_star)
        for backup in catalog.north_stars():
            if backup.backup_for == north_star.name:
                add_children(root.add(_label(backup, f"backup for {north_star.name}")), backup)
    outside = [m for m in catalog if m.tier != "north_star" and m.parent is None]
    if outside:
        branch = root.add(Text("outside the hierarchy (no parent)", style="italic"))
        for metric in outside:
            add_children(branch.add(_label(metric)), metric)
    return root
