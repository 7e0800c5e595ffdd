"""The processor-health dashboard: throughput, lag, invalid, late and duplicate events,
freshness, and which metrics are ready (exported) and how much of their window they cover."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import dashboard as db

from processor.definitions import Catalog
from processor.durations import parse_duration_ms
from processor.grafana import panels as p
from processor.grafana.dashboards import alert_annotations, dashboard, readiness
from processor.grafana.uids import PROCESSOR_UID
from processor.rules import promql
from processor.rules.alerts import AlertSettings, runbook_link

RATE = "$__rate_interval"
EVENTS_PER_S = "suffix: events/s"


# The alert each panel explains, for its runbook link (the others link to all processor alerts).
RUNBOOK_SECTIONS = {
    "Events applied": "NSMConsumerLagGrowing",
    "Consumer lag by topic": "NSMConsumerLagGrowing",
    "Consumer lag by partition": "NSMConsumerLagGrowing",
    "Batch duration": "NSMConsumerLagGrowing",
    "Invalid events by reason": "NSMInvalidEventsHigh",
    "Invalid share": "NSMInvalidEventsHigh",
    "Freshness": "NSMDataStale",
    "Workers up": "NSMProcessorDown",
    "Dependencies": "NSMDataStale",
    "Partitions by worker": "NSMWorkerDown",
    "Rebuild remaining": "NSMMetricNotReady",
}


def quantiles(histogram: str) -> list[Any]:
    return [
        p.target(
            f"histogram_quantile({q}, sum by (le) (rate({histogram}_bucket[{RATE}])))",
            f"p{int(q * 100)}",
            ref_id,
        )
        for q, ref_id in ((0.5, "A"), (0.99, "B"))
    ]


def processor_dashboard(catalog: Catalog, settings: AlertSettings) -> db.Dashboard:
    up = promql.selector("up", job=settings.job)
    stale_s = parse_duration_ms(settings.stale_after) // 1000
    ids = p.Ids()

    panels: list[Any] = [
        p.row(ids, "Throughput and lag", collapsed=False),
        p.timeseries(
            ids,
            "Events applied",
            "Events applied to the metric windows per second, over every worker.",
            EVENTS_PER_S,
            [p.target(promql.rate_sum("nsm_events_processed_total", RATE), "applied")],
            width=8,
        ),
        p.timeseries(
            ids,
            "Consumer lag by topic",
            "Messages in Kafka not yet applied (end offset minus next offset), summed over the "
            "partitions. Growing lag means the workers fall behind.",
            "short",
            [p.target(promql.consumer_lag_by_topic(), "{{topic}}")],
            width=8,
        ),
        p.timeseries(
            ids,
            "Consumer lag by partition",
            "Messages not yet applied per partition: one hot partition points at a skewed key.",
            "short",
            [p.target("max by (topic, partition) (nsm_consumer_lag)", "{{topic}}/{{partition}}")],
            width=8,
        ),
        p.timeseries(
            ids,
            "Batch duration",
            "Time to apply one batch, from decoding to the atomic Redis step (median and 99th "
            "percentile).",
            "s",
            quantiles("nsm_batch_duration_seconds"),
        ),
        p.timeseries(
            ids,
            "Events per batch",
            "Events in one batch (median and 99th percentile).",
            "short",
            quantiles("nsm_batch_events"),
        ),
        p.row(ids, "Event quality", collapsed=False),
        p.timeseries(
            ids,
            "Invalid events by reason",
            "Events sent to the dead-letter topic per second, by reason.",
            EVENTS_PER_S,
            [p.target(promql.rate_sum("nsm_events_invalid_total", RATE, "reason"), "{{reason}}")],
            width=6,
        ),
        p.timeseries(
            ids,
            "Invalid share",
            "Invalid events among every event read. Alerted on above "
            f"{settings.invalid_share:.0%} (NSMInvalidEventsHigh).",
            "percentunit",
            [p.target(promql.invalid_share(RATE), "invalid")],
            width=6,
        ),
        p.timeseries(
            ids,
            "Late events by metric",
            "Events per second that arrived after their bucket left a metric's window: counted "
            "and not applied to that metric.",
            EVENTS_PER_S,
            [p.target(promql.rate_sum("nsm_events_late_total", RATE, "metric"), "{{metric}}")],
            width=6,
        ),
        p.timeseries(
            ids,
            "Duplicate events",
            "Events per second ignored as repeats of an already applied event_id.",
            EVENTS_PER_S,
            [p.target(promql.rate_sum("nsm_events_duplicate_total", RATE), "duplicates")],
            width=6,
        ),
        p.row(ids, "Freshness and workers", collapsed=False),
        p.timeseries(
            ids,
            "Freshness",
            "Age of the newest applied event, and of the time the exported values are computed "
            f"as of. Alerted on past {settings.stale_after} (NSMDataStale).",
            "s",
            [
                p.target(promql.newest_event_age(), "newest event", "A"),
                p.target("time() - max(nsm_metric_as_of_timestamp_seconds)", "values as of", "B"),
            ],
            steps=[(None, "green"), (stale_s, "red")],
            width=12,
        ),
        p.stat(
            ids,
            "Workers up",
            f"Workers of job {settings.job} that answer Prometheus, and how many export the "
            "metric values (exactly one should).",
            "short",
            [
                p.target(f"sum({up})", "up", "A"),
                p.target("sum(nsm_exporter)", "exporting", "B"),
            ],
            width=6,
        ),
        p.stat(
            ids,
            "Dependencies",
            "1 when Kafka or Redis answered at the last attempt, 0 while the workers retry.",
            "bool_yes_no",
            [p.target("min by (dependency) (nsm_dependency_up)", "{{dependency}}")],
            steps=[(None, "red"), (1, "green")],
            width=6,
        ),
        p.timeseries(
            ids,
            "Partitions by worker",
            "Partitions each worker owns; they move when a worker joins or leaves.",
            "short",
            [p.target("sum by (instance) (nsm_partitions_assigned)", "{{instance}}")],
            width=24,
        ),
        p.timeseries(
            ids,
            "Rebuild remaining",
            "Messages the rebuilds of new or changed metrics still have to read, by partition; "
            "the metrics they rebuild are not exported until they reach 0.",
            "short",
            [p.target("max by (partition) (nsm_rebuild_remaining_messages)", "{{partition}}")],
            width=24,
        ),
    ]
    board = dashboard(
        PROCESSOR_UID,
        "NSM · Processor health",
        ["processor"],
        "Whether the numbers on the other dashboards can be trusted right now.",
        annotations=alert_annotations("all"),
    )
    for item in panels:
        if isinstance(item, db.Row):
            board = board.with_row(item)
            continue
        alert = RUNBOOK_SECTIONS.get(item.build().title)
        anchor = alert.lower() if alert else "processor-alerts"
        item.links(
            [p.link(f"Runbook: {alert or 'processor alerts'}", runbook_link(settings, anchor))]
        )
        board = board.with_panel(item)
    board = board.with_row(p.row(ids, "Metrics: readiness and window coverage", collapsed=False))
    for item in readiness(ids, [m.name for m in catalog], settings, height=8):
        board = board.with_panel(item)
    return board
