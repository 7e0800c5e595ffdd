"""The processor-health dashboard: throughput, lag, invalid, late and duplicate events,
freshness, and which metrics are ready (exported) and how much of their window they cover."""

from __future__ import annotations

from processor.durations import parse_duration_ms
from processor.grafana import panels as p
from processor.grafana.dashboards import Dashboard, dashboard
from processor.grafana.uids import PROCESSOR_UID
from processor.rules import promql
from processor.rules.alerts import AlertSettings

RATE = "$__rate_interval"
EVENTS_PER_S = "suffix: events/s"


def quantiles(histogram: str) -> list[dict[str, str]]:
    return [
        p.target(
            f"histogram_quantile({q}, sum by (le) (rate({histogram}_bucket[{RATE}])))",
            f"p{int(q * 100)}",
            ref_id,
        )
        for q, ref_id in ((0.5, "A"), (0.99, "B"))
    ]


def processor_dashboard(settings: AlertSettings) -> Dashboard:
    up = promql.selector("up", job=settings.job)
    stale_s = parse_duration_ms(settings.stale_after) // 1000
    panels = [
        p.row("Throughput and lag"),
        p.timeseries(
            "Events applied",
            "Events applied to the metric windows per second, over every worker.",
            EVENTS_PER_S,
            [p.target(promql.rate_sum("nsm_events_processed_total", RATE), "applied")],
            width=8,
        ),
        p.timeseries(
            "Consumer lag by topic",
            "Messages in Kafka not yet applied (end offset minus next offset), summed over the "
            "partitions. Growing lag means the workers fall behind.",
            "short",
            [p.target(promql.consumer_lag_by_topic(), "{{topic}}")],
            width=8,
        ),
        p.timeseries(
            "Consumer lag by partition",
            "Messages not yet applied per partition: one hot partition points at a skewed key.",
            "short",
            [p.target("max by (topic, partition) (nsm_consumer_lag)", "{{topic}}/{{partition}}")],
            width=8,
        ),
        p.timeseries(
            "Batch duration",
            "Time to apply one batch, from decoding to the atomic Redis step (median and 99th "
            "percentile).",
            "s",
            quantiles("nsm_batch_duration_seconds"),
        ),
        p.timeseries(
            "Events per batch",
            "Events in one batch (median and 99th percentile).",
            "short",
            quantiles("nsm_batch_events"),
        ),
        p.row("Event quality"),
        p.timeseries(
            "Invalid events by reason",
            "Events sent to the dead-letter topic per second, by reason.",
            EVENTS_PER_S,
            [p.target(promql.rate_sum("nsm_events_invalid_total", RATE, "reason"), "{{reason}}")],
            width=6,
        ),
        p.timeseries(
            "Invalid share",
            "Invalid events among every event read. Alerted on above "
            f"{settings.invalid_share:.0%} (NSMInvalidEventsHigh).",
            "percentunit",
            [p.target(promql.invalid_share(RATE), "invalid")],
            width=6,
        ),
        p.timeseries(
            "Late events by metric",
            "Events per second that arrived after their bucket left a metric's window: counted "
            "and not applied to that metric.",
            EVENTS_PER_S,
            [p.target(promql.rate_sum("nsm_events_late_total", RATE, "metric"), "{{metric}}")],
            width=6,
        ),
        p.timeseries(
            "Duplicate events",
            "Events per second ignored as repeats of an already applied event_id.",
            EVENTS_PER_S,
            [p.target(promql.rate_sum("nsm_events_duplicate_total", RATE), "duplicates")],
            width=6,
        ),
        p.row("Freshness and workers"),
        p.timeseries(
            "Freshness",
            "Age of the newest applied event, and of the time the exported values are computed "
            f"as of. Alerted on past {settings.stale_after} (NSMDataStale).",
            "s",
            [
                p.target(promql.newest_event_age(), "newest event", "A"),
                p.target("time() - max(nsm_metric_as_of_timestamp_seconds)", "values as of", "B"),
            ],
            defaults={
                "custom": {"thresholdsStyle": {"mode": "line"}},
                "thresholds": {
                    "mode": "absolute",
                    "steps": [
                        {"value": None, "color": "green"},
                        {"value": stale_s, "color": "red"},
                    ],
                },
            },
            width=12,
        ),
        p.stat(
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
            "Dependencies",
            "1 when Kafka or Redis answered at the last attempt, 0 while the workers retry.",
            "bool_yes_no",
            [p.target("min by (dependency) (nsm_dependency_up)", "{{dependency}}")],
            thresholds=[(None, "red"), (1, "green")],
            width=6,
        ),
        p.timeseries(
            "Partitions by worker",
            "Partitions each worker owns; they move when a worker joins or leaves.",
            "short",
            [p.target("sum by (instance) (nsm_partitions_assigned)", "{{instance}}")],
            width=24,
        ),
        p.row("Readiness"),
        p.timeseries(
            "Metric readiness",
            "1 while a metric's value is exported; 0 while its state is built from the topic "
            "(a new or changed definition, a first start): no value is shown then rather than a "
            "wrong one. Alerted on after "
            f"{settings.not_ready_for} (NSMMetricNotReady).",
            "bool_yes_no",
            [p.target(promql.not_ready(), "{{metric}}", "A")],
            width=8,
        ),
        p.timeseries(
            "Window coverage",
            "Share of each metric's window its state holds every event of: below 1 when the "
            "topic no longer held the window's start (retention shorter than the window); the "
            "metric's alerts stay silent until it is 1.",
            "percentunit",
            [p.target("max by (metric) (nsm_metric_window_coverage_ratio)", "{{metric}}", "A")],
            width=8,
        ),
        p.timeseries(
            "Rebuild remaining",
            "Messages the rebuilds of new or changed metrics still have to read, by partition.",
            "short",
            [p.target("max by (partition) (nsm_rebuild_remaining_messages)", "{{partition}}")],
            width=8,
        ),
    ]
    return dashboard(
        PROCESSOR_UID,
        "NSM · Processor health",
        ["processor"],
        panels,
        description="Whether the numbers on the other dashboards can be trusted right now.",
    )
