"""docs/runbook.md: one section per alert, what it means and the first things to check.

Generated with the rules (`nsm rules --runbook`), so a new metric's alerts get their sections, and
each section names the diagnostics below the metric in the KPI tree and its segments.
"""

from __future__ import annotations

from processor.definitions import Catalog, Metric
from processor.grafana.uids import PROCESSOR_UID, north_star_uid
from processor.rules.alerts import AlertSettings, AlertSpec, all_alerts, explain_command

INTRO = """\
# Runbook

One section per alert that `nsm rules` generates; each alert's `runbook_url` points here. Metric
alerts come from the `alert:` of a definition, processor alerts watch the pipeline itself. The
file is generated from the definitions (`make generate`): edit the generator, not this file.

Before reading a metric alert as a change in the business, rule out the pipeline: the
**NSM · Processor health** dashboard (`/d/{processor}`) shows freshness, lag and invalid, late
and duplicate events, and any processor alert firing at the same time usually explains a metric
alert.

The first step of every metric alert is the command in its `explain` annotation:
`nsm explain METRIC --prometheus URL --to T` reads the series Prometheus holds and ranks every
metric below METRIC in the KPI tree and their segment values by their contribution to the change
over the week before T (the move the drop alert watches), largest either way first, with the mix
and rate effects of ratios (`--format json` for the full decomposition; see docs/explain.md). The
drill-down dashboards show the same breakdowns.
"""

PROCESSOR_SECTIONS: dict[str, tuple[str, list[str]]] = {
    "processor_down": (
        "No NSM worker answers Prometheus: either every worker is down, or none is discovered as a "
        "scrape target. Metric values are no longer updated and the metric alerts cannot fire.",
        [
            "Is the worker running (`docker compose ps worker`, or the process list)? Read its log "
            "for the last error.",
            "`curl http://WORKER:6066/health`: 503 names the dependency (Kafka or Redis) it waits "
            "for.",
            "Prometheus's *Targets* page: is job `{job}` there, and what error does its scrape "
            "show? With no target at all, check the scrape configuration.",
        ],
    ),
    "worker_down": (
        "One worker has not answered Prometheus for 5 minutes. The others take over its "
        "partitions, so the metrics stay exact, but the group has less headroom.",
        [
            "The worker's log and `/health` endpoint, as for NSMProcessorDown.",
            "The *Partitions by worker* panel: did its partitions move to the others?",
            "If it restarts in a loop, look for the same poison message in its log.",
        ],
    ),
    "stale": (
        "No new event has been applied for longer than the limit: the metric values still slide "
        "with the clock, but without new events they fall.",
        [
            "Are events still produced to the topic? Compare with the producers' own monitoring.",
            "*Consumer lag*: lag growing means the workers read nothing (NSMConsumerLagGrowing).",
            "*Dependencies*: a worker waiting for Kafka or Redis applies nothing.",
            "*Invalid events by reason*: a producer change can make every event invalid.",
        ],
    ),
    "lag_growing": (
        "The workers fall behind the topic: the lag is above the limit and larger than it was "
        "before. Metric values lag behind reality by as much.",
        [
            "*Events applied* against the producers' rate: did the input grow, or throughput fall?",
            "*Batch duration*: a slow Redis slows every batch.",
            "*Consumer lag by partition*: one hot partition points at a skewed message key.",
            "Add workers (up to the number of partitions); they share the partitions.",
        ],
    ),
    "not_ready": (
        "A metric has not been exported for longer than the limit: its state is still being "
        "built from the topic (`nsm_metric_ready` 0), so its value is missing on purpose rather "
        "than shown wrong, and its own alerts are silent. A rebuild follows a definition change "
        "(changed or new metric) and a worker's first start; it should end within minutes.",
        [
            "`nsm_rebuild_remaining_messages` by partition: still falling means the rebuild is "
            "under way (a very long topic takes its time); flat means it is stuck.",
            "The worker's log: `rebuild interrupted; retrying` names the error (Kafka or Redis "
            "unreachable), `rebuilding metrics from the topic` shows where each partition's "
            "rebuild started and ends.",
            "Every metric not ready at once: do the workers hold partitions at all "
            "(`nsm_partitions_assigned`)? A topic that does not exist or cannot be read leaves "
            "them with none.",
            "A partition without a worker (more partitions than live workers can take, or a worker "
            "stuck while loading) keeps every metric not ready: each needs all partitions.",
            "Workers of an older version in the group write summaries without readiness: upgrade "
            "them all.",
        ],
    ),
    "invalid_share": (
        "A high share of the events read are invalid and go to the dead-letter topic "
        "`<topic>.dlq`: the metrics undercount what those events would have added.",
        [
            "*Invalid events by reason*: which reason grew (not JSON, no type, bad or future "
            "timestamp)?",
            "Read a few messages of the dead-letter topic: each carries its reason and the "
            "original bytes.",
            "A producer deploy around the start time is the usual cause; a clock skew shows as "
            "future timestamps.",
        ],
    ),
}


def _north_star_of(catalog: Catalog, metric: Metric) -> Metric:
    seen = {metric.name}
    while metric.parent is not None and metric.parent in catalog.metrics:
        metric = catalog[metric.parent]
        if metric.name in seen:
            break
        seen.add(metric.name)
    return metric


def _metric_list(metrics: list[Metric]) -> str:
    return ", ".join(f"`{m.name}`" + (f" ({m.title})" if m.title else "") for m in metrics)


def metric_section(catalog: Catalog, spec: AlertSpec, settings: AlertSettings) -> str:
    metric = spec.subject
    assert metric is not None and metric.alert is not None
    alert, star = metric.alert, _north_star_of(catalog, metric)
    if spec.kind == "drop":
        meaning = (
            f"`{metric.name}` is more than {alert.drop_pct:g}% below its value one week earlier, "
            f"and has been for {alert.for_}."
        )
        if alert.min_baseline is not None:
            meaning += f" (Silent while last week's value is below {alert.min_baseline:g}.)"
    elif spec.kind == "anomaly":
        assert alert.anomaly is not None
        anomaly = alert.anomaly
        meaning = (
            f"`{metric.name}` is far below its usual level for this hour of the week: more than "
            f"{anomaly.deviations:g} robust spreads and {anomaly.min_drop_pct:g}% below the "
            "median of the same hour over the last 4 weeks, and has been for "
            f"{anomaly.for_}. A one-week dip (a holiday) passes before it fires; a lasting "
            "fall, or a slide too slow for the drop alert, does not. Silent until 4 weeks of "
            "history exist."
        )
    else:
        meaning = f"`{metric.name}` is below its floor of {alert.floor:g} for {alert.for_}."
    prometheus = settings.prometheus_url or "PROMETHEUS_URL"
    checks = [
        f"`{explain_command(metric.name, prometheus, 'T')}` (the exact command is in the alert's "
        "`explain` annotation, with the time it fired): which diagnostic and which segment moved "
        "it most over the week before.",
        "Rule out the pipeline: is any processor alert firing, is the data fresh?",
        f"Dashboard **NSM · {star.title or star.name}** (`/d/{north_star_uid(star.name)}`): "
        f"the panel of `{metric.name}` and its drill-down links.",
    ]
    children = catalog.children(metric.name)
    if children:
        checks.append(f"The metrics below it in the KPI tree: {_metric_list(children)}.")
    if metric.parent is not None and metric.parent in catalog.metrics:
        checks.append(f"Its parent, `{metric.parent}`: did it move too?")
    if metric.segments:
        fields = ", ".join(f"`{s}`" for s in metric.segments)
        checks.append(
            f"Its segments ({fields}): the breakdown panels show the values that fell; a drop "
            "confined to one value is a cohort, not the whole business."
        )
    what = (metric.description or metric.title or metric.name).strip().rstrip(".")
    return _section(spec.name, f"{what}.\n\n{meaning}", checks, spec.severity)


def metric_anchor(name: str) -> str:
    """The anchor of a metric's entry under "Metrics" (headings are the metric names)."""
    return name.lower()


def metric_entry(catalog: Catalog, metric: Metric, settings: AlertSettings) -> str:
    """What a dashboard panel's runbook link opens: the metric, its place and its alerts."""
    star = _north_star_of(catalog, metric)
    what = (metric.description or metric.title or metric.name).strip().rstrip(".")
    lines = [
        f"### {metric.name}\n",
        f"{what} ({metric.tier.replace('_', ' ')}, rolling window {metric.window}, unit "
        f"{metric.unit}). Dashboard **NSM · {star.title or star.name}** "
        f"(`/d/{north_star_uid(star.name)}`).\n",
    ]
    alerts = [s for s in all_alerts(catalog, settings) if s.subject is metric]
    if alerts:
        lines.append("Alerts: " + ", ".join(f"[{s.name}](#{s.anchor})" for s in alerts) + ".\n")
    prometheus = settings.prometheus_url or "PROMETHEUS_URL"
    lines.append(
        f"Why it moved: `{explain_command(metric.name, prometheus)}` (the last week; "
        "`--from`/`--to` for another span).\n"
    )
    return "\n".join(lines)


def _section(name: str, meaning: str, checks: list[str], severity: str) -> str:
    steps = "\n".join(f"{n}. {check}" for n, check in enumerate(checks, start=1))
    return (
        f"### {name}\n\nSeverity: {severity}.\n\n**What it means.** {meaning}\n\n"
        f"**First checks.**\n\n{steps}\n"
    )


def runbook_text(catalog: Catalog, settings: AlertSettings) -> str:
    specs = all_alerts(catalog, settings)
    parts = [INTRO.format(processor=PROCESSOR_UID)]
    metric_specs = [s for s in specs if s.subject is not None]
    if metric_specs:
        parts.append("## Metric alerts\n")
        parts += [metric_section(catalog, s, settings) for s in metric_specs]
    parts.append("## Processor alerts\n")
    for spec in specs:
        if spec.subject is None:
            meaning, checks = PROCESSOR_SECTIONS[spec.kind]
            parts.append(
                _section(
                    spec.name, meaning, [c.format(job=settings.job) for c in checks], spec.severity
                )
            )
    parts.append(
        "## Metrics\n\nEvery metric, as the dashboards' runbook links open it: what it measures, "
        "where to see it, its alerts and how to explain its last move.\n"
    )
    parts += [metric_entry(catalog, m, settings) for m in catalog]
    return "\n".join(parts)
