"""Recording rules: the seasonal baseline anomaly alerts compare with.

For the metrics with `alert: {anomaly: ...}`, each evaluation records their total at this hour of
the week 1, 2, 3 and 4 weeks ago (`weeks_ago` label), then the robust centre (the median of the
four), the robust spread (1.4826 times their median absolute deviation: a standard deviation for
normal data, unmoved by one odd week) and how many of the four weeks exist. Alerts and dashboards
read the recorded series, so the long expression is written once.
"""

from __future__ import annotations

from dataclasses import dataclass

from processor.definitions import Catalog
from processor.rules import promql

SEASONAL_GROUP = "nsm-seasonal-baselines"


@dataclass(frozen=True)
class RecordingSpec:
    record: str
    expr: str


def anomaly_metrics(catalog: Catalog) -> list[str]:
    return [m.name for m in catalog if m.alert is not None and m.alert.anomaly is not None]


def seasonal_recordings(catalog: Catalog) -> list[RecordingSpec]:
    names = anomaly_metrics(catalog)
    if not names:
        return []
    metrics = "|".join(names)
    weeks = promql.selector(promql.WEEKS_AGO, metric__re=metrics)
    centre = promql.selector(promql.SEASONAL_CENTRE, metric__re=metrics)
    deviations = f"abs({weeks} - ignoring (weeks_ago) group_left {centre})"
    return [
        RecordingSpec(promql.WEEKS_AGO, promql.same_hour_weeks_ago(metrics)),
        RecordingSpec(promql.SEASONAL_CENTRE, f"quantile without (weeks_ago) (0.5, {weeks})"),
        RecordingSpec(
            promql.SEASONAL_SPREAD,
            f"{promql.number(promql.MAD_TO_SIGMA)}\n  * quantile without (weeks_ago) "
            f"(0.5, {deviations})",
        ),
        RecordingSpec(promql.SEASONAL_COUNT, f"count without (weeks_ago) ({weeks})"),
    ]
