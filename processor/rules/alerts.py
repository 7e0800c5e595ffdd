"""Every alert NSM defines, as data: one drop and one floor alert per metric with `alert:`, and the
processor-wide alerts. Prometheus rules, Grafana-managed rules, their unit tests and the runbook are
all rendered from these specs, so the four cannot drift apart.

Descriptions hold the placeholders `{value}` and `{last_week}`, and `{metric}` for an alert that
fires per metric label of its series; each renderer fills them in its own template language (or,
for the unit tests, with the text Prometheus is expected to print). `{last_week}` is the value the
alert compares with: one week earlier for most, the seasonal centre for an anomaly.

Metric alerts hold only while the metric is ready and its window fully covered
(`promql.when_complete`): a metric being rebuilt after a definition change, or whose topic no
longer holds its window's start, never pages. NSMMetricNotReady fires when a metric stays not
ready too long: a rebuild that does not finish.

Metric alerts also carry the command that explains the move (`nsm explain METRIC --prometheus`),
and each alert links to its runbook section: absolute links once `runbook_url` is an absolute
URL (`--runbook-url`, NSM_RUNBOOK_URL).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from processor.definitions import Catalog, Metric
from processor.durations import parse_duration_ms
from processor.rules import promql

Severity = Literal["critical", "warning", "info"]
Kind = Literal[
    "drop",
    "floor",
    "anomaly",
    "processor_down",
    "worker_down",
    "stale",
    "lag_growing",
    "invalid_share",
    "not_ready",
]
ValueFormat = Literal["humanize", "humanizePercentage", "humanizeDuration"]

# A north star pages; the metrics below it explain and are looked at in working hours.
SEVERITY_BY_TIER: dict[str, Severity] = {
    "north_star": "critical",
    "diagnostic": "warning",
    "granular": "info",
}
# Processor alerts concern every metric at once.
PROCESSOR_METRIC, PROCESSOR_TIER = "all", "processor"
DEFAULT_RUNBOOK_URL = "docs/runbook.md"


@dataclass(frozen=True)
class AlertSettings:
    """Thresholds of the processor alerts and where the runbook lives."""

    job: str = promql.DEFAULT_JOB
    stale_after: str = "30m"
    lag_threshold: int = 10_000
    lag_growing_for: str = "15m"
    invalid_share: float = 0.05
    not_ready_for: str = "30m"
    runbook_url: str = DEFAULT_RUNBOOK_URL
    # Prometheus as on-call reaches it, for the explain command in the annotations; empty:
    # Prometheus's own external URL ($externalURL, its --web.external-url).
    prometheus_url: str = ""


@dataclass(frozen=True)
class AlertSpec:
    name: str
    kind: Kind
    expr: str  # returns a series exactly while the alert condition holds
    for_: str
    severity: Severity
    summary: str
    description: str  # with the placeholders {value} and {last_week}
    last_week_expr: str  # the same quantity one week earlier, quoted in the description
    # None: the alert fires per `metric` label of its series, which the rule leaves as it is.
    metric: str | None = PROCESSOR_METRIC
    tier: str = PROCESSOR_TIER
    value_format: ValueFormat = "humanize"
    subject: Metric | None = field(default=None, compare=False)

    @property
    def labels(self) -> dict[str, str]:
        labels = {"severity": self.severity, "tier": self.tier}
        if self.metric is not None:
            labels["metric"] = self.metric
        return labels

    @property
    def anchor(self) -> str:
        """The runbook section's anchor: headings are the alert names, lowercased by renderers."""
        return self.name.lower()

    def runbook_link(self, settings: AlertSettings) -> str:
        return runbook_link(settings, self.anchor)


def runbook_link(settings: AlertSettings, anchor: str) -> str:
    return f"{settings.runbook_url}#{anchor}"


def explain_command(metric: str, prometheus_url: str, to: str = "") -> str:
    """The command that explains a metric's last week from Prometheus (the runbook's first step).

    `prometheus_url` and `to` are text as the renderer writes them (a template or a value)."""
    command = f"nsm explain {metric} --prometheus {prometheus_url}"
    return f"{command} --to {to}" if to else command


def alert_name(metric: str, suffix: str) -> str:
    camel = "".join(part[:1].upper() + part[1:] for part in metric.split("_"))
    return f"NSM{camel}{suffix}"


def _title(metric: Metric) -> str:
    return metric.title or metric.name.replace("_", " ").capitalize()


def _pct(value: float) -> str:
    return f"{promql.number(value)}%"


def metric_alerts(metric: Metric) -> list[AlertSpec]:
    """The drop and floor alerts a definition's `alert:` asks for (none without `alert:`)."""
    if metric.alert is None:
        return []
    alert, title = metric.alert, _title(metric)
    now, last_week = promql.metric_total(metric.name), promql.metric_total(metric.name, promql.WEEK)

    def spec(suffix: str, kind: Kind, expr: str, summary: str, description: str) -> AlertSpec:
        return AlertSpec(
            name=alert_name(metric.name, suffix),
            kind=kind,
            expr=expr,
            for_=alert.for_,
            severity=SEVERITY_BY_TIER[metric.tier],
            summary=summary,
            description=description,
            last_week_expr=last_week,
            metric=metric.name,
            tier=metric.tier,
            subject=metric,
        )

    specs = []
    if alert.drop_pct is not None:
        kept = promql.number((100 - alert.drop_pct) / 100)
        expr = f"{now}\n  < {kept} * {last_week}"
        guard = ""
        if alert.min_baseline is not None:
            # Small numbers swing by chance: no alert while last week's value is below the baseline.
            expr += f"\nand\n  {last_week} >= {promql.number(alert.min_baseline)}"
            guard = f" Alerts only while last week's value is at least {alert.min_baseline:g}."
        expr = promql.when_complete(expr, metric.name)
        specs.append(
            spec(
                "Drop",
                "drop",
                expr,
                f"{title} dropped more than {_pct(alert.drop_pct)} week over week",
                f"{title} ({metric.name}) is {{value}}, against {{last_week}} one week earlier: "
                f"more than {_pct(alert.drop_pct)} lower, for at least {alert.for_}.{guard}",
            )
        )
    if alert.anomaly is not None:
        anomaly = alert.anomaly
        centre, spread = promql.seasonal_centre(metric.name), promql.seasonal_spread(metric.name)
        least = f"{promql.number(anomaly.min_drop_pct / 100)} * {centre}"
        allowed = f"{promql.number(anomaly.deviations)} * {spread}"
        expr = (
            f"{now}\n  < {centre}\n    - (({allowed} > {least}) or {least})\n"
            f"and\n  {promql.seasonal_weeks(metric.name)} == {promql.SEASONAL_WEEKS}"
        )
        expr = promql.when_complete(expr, metric.name)
        specs.append(
            replace(
                spec(
                    "Anomaly",
                    "anomaly",
                    expr,
                    f"{title} is far below its usual level for this hour of the week",
                    f"{title} ({metric.name}) is {{value}}, against {{last_week}} at this hour of "
                    f"the week (the median of the last {promql.SEASONAL_WEEKS} weeks): more "
                    f"than {anomaly.deviations:g} robust spreads and {_pct(anomaly.min_drop_pct)} "
                    f"below it, for at least {anomaly.for_}.",
                ),
                for_=anomaly.for_,
                last_week_expr=centre,
            )
        )
    if alert.floor is not None:
        specs.append(
            spec(
                "BelowFloor",
                "floor",
                promql.when_complete(f"{now} < {promql.number(alert.floor)}", metric.name),
                f"{title} is below its floor of {alert.floor:g}",
                f"{title} ({metric.name}) is {{value}}, below its floor of {alert.floor:g}, "
                f"for at least {alert.for_}; one week earlier it was {{last_week}}.",
            )
        )
    return specs


def processor_alerts(settings: AlertSettings) -> list[AlertSpec]:
    job = settings.job
    stale_s = parse_duration_ms(settings.stale_after) // 1000
    week_s = parse_duration_ms(promql.WEEK) // 1000
    up = promql.selector("up", job=job)
    return [
        AlertSpec(
            name="NSMProcessorDown",
            kind="processor_down",
            # `or vector(0)` makes "no worker discovered at all" fire too, not only "all down".
            expr=f"({promql.workers_up(job)} or vector(0)) < 1",
            for_="2m",
            severity="critical",
            summary="No NSM worker is up: metric values are not updated",
            description=(
                f"{{value}} workers of job {job} answer Prometheus (down, or none discovered); "
                "one week earlier {last_week} were up."
            ),
            last_week_expr=f"count({up} offset {promql.WEEK} == 1)",
        ),
        AlertSpec(
            name="NSMWorkerDown",
            kind="worker_down",
            expr=f"{up} == 0",
            for_="5m",
            severity="warning",
            summary="An NSM worker does not answer Prometheus",
            description=(
                f"A worker of job {job} has not answered for 5m (up is {{value}}); the others "
                "take over its partitions. One week earlier {last_week} workers were up."
            ),
            last_week_expr=f"count({up} offset {promql.WEEK} == 1)",
        ),
        AlertSpec(
            name="NSMDataStale",
            kind="stale",
            expr=f"{promql.newest_event_age()} > {stale_s}",
            for_="5m",
            severity="critical",
            summary=f"No new event applied for more than {settings.stale_after}",
            description=(
                "The newest applied event is {value} old, over the limit of "
                f"{settings.stale_after}; one week earlier it was {{last_week}} old."
            ),
            last_week_expr=(
                f"time() - {week_s} - max(nsm_last_event_timestamp_seconds offset {promql.WEEK})"
            ),
            value_format="humanizeDuration",
        ),
        AlertSpec(
            name="NSMConsumerLagGrowing",
            kind="lag_growing",
            expr=(
                f"{promql.consumer_lag_by_topic()} > {settings.lag_threshold}\n"
                f"and\n  {promql.consumer_lag_by_topic()}"
                f" > {promql.consumer_lag_by_topic(settings.lag_growing_for)}"
            ),
            for_=settings.lag_growing_for,
            severity="warning",
            summary="NSM falls behind its Kafka topic",
            description=(
                "The consumer lag is {value} messages, over "
                f"{settings.lag_threshold} and still growing for {settings.lag_growing_for}; "
                "one week earlier it was {last_week}."
            ),
            last_week_expr=promql.consumer_lag_by_topic(promql.WEEK),
        ),
        AlertSpec(
            name="NSMInvalidEventsHigh",
            kind="invalid_share",
            expr=f"{promql.invalid_share('10m')} > {promql.number(settings.invalid_share)}",
            for_="10m",
            severity="warning",
            summary="A high share of events is invalid and goes to the dead-letter topic",
            description=(
                "{value} of the events read in the last 10m were invalid (limit "
                f"{settings.invalid_share:.0%}); one week earlier the share was {{last_week}}."
            ),
            last_week_expr=promql.invalid_share("10m", promql.WEEK),
            value_format="humanizePercentage",
        ),
        AlertSpec(
            name="NSMMetricNotReady",
            kind="not_ready",
            expr=f"{promql.not_ready()} == 0",
            for_=settings.not_ready_for,
            severity="warning",
            summary="A metric has not been exported for long: its rebuild does not finish",
            description=(
                "{metric} has been not ready (nsm_metric_ready {value}, no value exported) for "
                f"{settings.not_ready_for}: its state is still being built from the topic, "
                "after a definition change or a first start, or the workers cannot read the "
                "topic."
            ),
            last_week_expr=promql.not_ready(promql.WEEK),
            metric=None,
        ),
    ]


def all_alerts(catalog: Catalog, settings: AlertSettings) -> list[AlertSpec]:
    specs = [spec for metric in catalog for spec in metric_alerts(metric)]
    return specs + processor_alerts(settings)
