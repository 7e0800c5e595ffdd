"""`nsm rules`: Prometheus alert rules generated from the metric definitions, on standard output."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from processor.cli.options import definitions_option, load_or_exit
from processor.durations import parse_duration_ms
from processor.rules.alerts import DEFAULT_RUNBOOK_URL, AlertSettings
from processor.rules.prometheus import prometheus_rules_text
from processor.rules.promtool_tests import promtool_test_files
from processor.rules.runbook import runbook_text

F = TypeVar("F", bound=Callable[..., Any])


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        parse_duration_ms(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def _runbook_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if value == DEFAULT_RUNBOOK_URL:
        click.echo(
            f"nsm {ctx.info_name}: runbook links are relative ({value}) and open only beside the "
            "repository; give --runbook-url BASE (or NSM_RUNBOOK_URL) where the runbook is served",
            err=True,
        )
        return value
    parsed = urllib.parse.urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.fragment:
        raise click.BadParameter(
            f"{value!r} is not an absolute http(s) URL without #section: write for example "
            "https://wiki.example.com/nsm/runbook"
        )
    return value


def alert_options(function: F) -> F:
    """The thresholds of the processor alerts, shared by `nsm rules` and `nsm grafana`."""
    defaults = AlertSettings()
    options = [
        click.option(
            "--job",
            default=defaults.job,
            show_default=True,
            help="Prometheus job name that scrapes the workers.",
        ),
        click.option(
            "--stale-after",
            default=defaults.stale_after,
            show_default=True,
            callback=_duration,
            help="Alert when no new event is applied for this long.",
        ),
        click.option(
            "--lag-threshold",
            default=defaults.lag_threshold,
            show_default=True,
            type=click.IntRange(min=0),
            help="Alert on a consumer lag above this many messages that keeps growing.",
        ),
        click.option(
            "--invalid-share",
            default=defaults.invalid_share,
            show_default=True,
            type=click.FloatRange(0, 1, min_open=True),
            help="Alert when this share of the events read is invalid (0.05 = 5%).",
        ),
        click.option(
            "--not-ready-for",
            default=defaults.not_ready_for,
            show_default=True,
            callback=_duration,
            help="Alert when a metric stays not ready (being rebuilt) for this long.",
        ),
        click.option(
            "--runbook-url",
            default=DEFAULT_RUNBOOK_URL,
            show_default=True,
            envvar="NSM_RUNBOOK_URL",
            callback=_runbook_url,
            metavar="BASE",
            help="Where the runbook (docs/runbook.md) is served, as an absolute http(s) URL: "
            "every alert's runbook_url and every dashboard's runbook link become BASE#section, "
            "links that work from Alertmanager, Slack or a pager [env NSM_RUNBOOK_URL].",
        ),
        click.option(
            "--explain-prometheus-url",
            "explain_prometheus_url",
            default="",
            envvar="NSM_PROMETHEUS_URL",
            metavar="URL",
            help="Prometheus as on-call reaches it, for the `nsm explain` command in metric "
            "alerts' annotations [env NSM_PROMETHEUS_URL; default: Prometheus's own "
            "--web.external-url].",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def alert_settings(params: dict[str, Any]) -> AlertSettings:
    return AlertSettings(
        job=params["job"],
        stale_after=params["stale_after"],
        lag_threshold=params["lag_threshold"],
        invalid_share=params["invalid_share"],
        not_ready_for=params["not_ready_for"],
        runbook_url=params["runbook_url"],
        prometheus_url=params["explain_prometheus_url"],
    )


@click.command(name="rules")
@definitions_option
@alert_options
@click.option(
    "--unit-tests",
    "unit_tests_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write promtool unit tests of the rules into this folder.",
)
@click.option(
    "--rules-file",
    default="../rules/nsm.yml",
    show_default=True,
    help="The rule file as the unit tests name it (relative to their folder).",
)
@click.option(
    "--runbook",
    "runbook_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the runbook, one section per alert, to this Markdown file.",
)
@click.pass_context
def command(
    ctx: click.Context,
    definitions_path: str,
    unit_tests_dir: Path | None,
    rules_file: str,
    runbook_path: Path | None,
    **params: Any,
) -> None:
    """Print Prometheus alert rules for the metric definitions.

    Per metric with `alert:`, a week-over-week drop (guarded by min_baseline, held for `for`), a
    floor, and with `anomaly:` a comparison with the same hour of the week over the last 4 weeks
    (recording rules of the seasonal median and robust spread), each silent while the metric is
    not ready or its window not fully covered; for the processor, down or absent workers, stale
    data, growing consumer lag, a high share of invalid events and a metric that stays not ready
    (a rebuild that does not finish). Every metric alert carries the `nsm explain` command that
    explains it. Redirect to a rule file, e.g. `nsm rules > prometheus/rules/nsm.yml`, then check
    it with `promtool check rules`.
    """
    catalog = load_or_exit(ctx, definitions_path)
    settings = alert_settings(params)
    text = prometheus_rules_text(catalog, settings)
    if unit_tests_dir is not None:
        unit_tests_dir.mkdir(parents=True, exist_ok=True)
        for name, content in promtool_test_files(catalog, settings, rules_file).items():
            (unit_tests_dir / name).write_text(content, encoding="utf-8")
    if runbook_path is not None:
        runbook_path.write_text(runbook_text(catalog, settings), encoding="utf-8")
    click.echo(text, nl=False)
