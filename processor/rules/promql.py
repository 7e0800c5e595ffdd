"""PromQL shared by the alert rules and the dashboards, built from the names in docs/metrics.md.

Metric values are taken with `max by (...)` rather than as raw series: the worker that exports
`nsm_metric_value` can change after a rebalance, and its `instance` label with it; aggregating the
scrape labels away keeps "now" and "one week earlier" comparable and never doubles a value while two
workers briefly overlap.
"""

from __future__ import annotations

WEEK = "1w"
METRIC_VALUE = "nsm_metric_value"
DEFAULT_JOB = "nsm"


def selector(name: str, **labels: str) -> str:
    """`name{a="x", b=~"y"}`; a key ending in `__re` matches as a regular expression."""
    if not labels:
        return name
    matchers = []
    for key, value in labels.items():
        if key.endswith("__re"):
            matchers.append(f'{key.removesuffix("__re")}=~"{value}"')
        else:
            matchers.append(f'{key}="{value}"')
    return f"{name}{{{', '.join(matchers)}}}"


def metric_total(metric: str, offset: str | None = None) -> str:
    """The unsegmented value of one metric, labelled `metric` and `tier`."""
    inner = selector(METRIC_VALUE, metric=metric, segment="")
    if offset:
        inner = f"{inner} offset {offset}"
    return f"max by (metric, tier) ({inner})"


def metric_by_segment(metric: str, segment: str, segment_values: str, offset: str = "") -> str:
    """One metric broken down by a segment field; both arguments may be template variables."""
    inner = selector(METRIC_VALUE, metric=metric, segment=segment, segment_value__re=segment_values)
    if offset:
        inner = f"{inner} offset {offset}"
    return f"max by (segment_value) ({inner})"


def week_over_week(metric: str) -> str:
    """Relative change against one week earlier (0.1 = +10 %); no sample in the first week."""
    return f"{metric_total(metric)} / {metric_total(metric, WEEK)} - 1"


def when_complete(expr: str, metric: str) -> str:
    """`expr`, a condition on one metric's value, only while the metric is ready and its state
    covers its whole window (CONTRACT §4): no alert on a value being rebuilt, or on a window the
    topic no longer holds the start of."""
    ready = selector("nsm_metric_ready", metric=metric)
    covered = selector("nsm_metric_window_coverage_ratio", metric=metric)
    return (
        f"(\n  {expr}\n)\n"
        f"and on (metric) max by (metric) ({ready}) == 1\n"
        f"and on (metric) max by (metric) ({covered}) >= 1"
    )


def not_ready(offset: str = "") -> str:
    """The metrics that are not ready (by `metric`); a worker without partitions reports 0 for
    every metric, the exporter 1 for those it exports: `max` keeps the exporter's answer."""
    inner = "nsm_metric_ready" + (f" offset {offset}" if offset else "")
    return f"max by (metric) ({inner})"


def number(value: float) -> str:
    """A threshold as PromQL reads it, without float noise (0.7, not 0.7000000000000001)."""
    text = f"{round(value, 9):.9f}".rstrip("0").rstrip(".")
    return text or "0"


def rate_sum(counter: str, window: str, by: str = "") -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({counter}[{window}]))"


def workers_up(job: str) -> str:
    return f"count({selector('up', job=job)} == 1)"


def newest_event_age() -> str:
    return "time() - max(nsm_last_event_timestamp_seconds)"


def consumer_lag_by_topic(offset: str = "") -> str:
    # A partition's lag is reported by the worker that owns it; `max` by partition keeps one value
    # while ownership moves between workers.
    inner = "nsm_consumer_lag" + (f" offset {offset}" if offset else "")
    return f"sum by (topic) (max by (topic, partition) ({inner}))"


def invalid_share(window: str, offset: str = "") -> str:
    """Invalid events among every event read (applied, invalid or repeated).

    Without any invalid event there is no sample (the counter has a `reason` label and appears
    with the first one); the other two count as 0 while they are missing.
    """
    shift = f" offset {offset}" if offset else ""
    invalid = f"sum(rate(nsm_events_invalid_total[{window}]{shift}))"
    read = (
        f"(sum(rate(nsm_events_processed_total[{window}]{shift})) or vector(0))"
        f" + {invalid}"
        f" + (sum(rate(nsm_events_duplicate_total[{window}]{shift})) or vector(0))"
    )
    return f"{invalid} / ({read})"


# ---- the seasonal baseline of anomaly alerts (recording rules, see rules/recording.py) ---------

SEASONAL_WEEKS = 4
WEEKS_AGO = "nsm:metric_value:same_hour_weeks_ago"
SEASONAL_CENTRE = "nsm:metric_value:seasonal_centre"
SEASONAL_SPREAD = "nsm:metric_value:seasonal_spread"
SEASONAL_COUNT = "nsm:metric_value:seasonal_weeks"
# The median absolute deviation times this estimates a standard deviation for normal data.
MAD_TO_SIGMA = 1.4826


def same_hour_weeks_ago(metrics: str) -> str:
    """Each metric's total 1..4 weeks ago at this hour of the week, labelled `weeks_ago`."""
    parts = [
        f'label_replace({metric_total_matching(metrics, f"{n}w")}, "weeks_ago", "{n}", "", "")'
        for n in range(1, SEASONAL_WEEKS + 1)
    ]
    return "\n  or ".join(parts)


def metric_total_matching(metrics: str, offset: str = "") -> str:
    """The unsegmented value of the metrics whose name matches the regular expression."""
    inner = selector(METRIC_VALUE, metric__re=metrics, segment="")
    if offset:
        inner = f"{inner} offset {offset}"
    return f"max by (metric, tier) ({inner})"


def seasonal_centre(metric: str) -> str:
    return selector(SEASONAL_CENTRE, metric=metric)


def seasonal_spread(metric: str) -> str:
    return selector(SEASONAL_SPREAD, metric=metric)


def seasonal_weeks(metric: str) -> str:
    return selector(SEASONAL_COUNT, metric=metric)
