"""The dashboards, built with grafana-foundation-sdk: an overview of the north stars, one
drill-down dashboard per north star (its diagnostic and granular metrics, each broken down by its
own segments) and the processor's health.

Every dashboard picks its Prometheus with a datasource variable, shows alert states as
annotations, and every metric panel links up and down the KPI tree and to the metric's runbook
entry. Floors and drop thresholds are drawn as lines; readiness and window coverage
(CONTRACT §4) are shown beside the values.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import dashboard as dm

from processor.definitions import Catalog, Metric
from processor.grafana import panels as p
from processor.grafana.uids import OVERVIEW_UID, PROCESSOR_UID, north_star_uid
from processor.rules import promql
from processor.rules.alerts import AlertSettings, metric_alerts, runbook_link
from processor.rules.runbook import metric_anchor

TIME_RANGE = "${__url_time_range}"
READY, COVERAGE = "nsm_metric_ready", "nsm_metric_window_coverage_ratio"


def title_of(metric: Metric) -> str:
    return metric.title or metric.name.replace("_", " ").capitalize()


def about(metric: Metric) -> str:
    """What a metric is, for panel descriptions."""
    text = metric.description or title_of(metric)
    tier = metric.tier.replace("_", " ")
    return f"{text.strip()} ({metric.name}: {tier}, rolling window {metric.window})."


class _PrometheusAnnotation(dm.AnnotationQuery):
    """An annotation from a Prometheus query, with the fields Grafana's Prometheus datasource
    reads (the SDK's model has the query only)."""

    def to_json(self) -> dict[str, object]:
        return {
            **super().to_json(),
            "step": "1m",
            "titleFormat": "{{alertname}}",
            "textFormat": "{{alertstate}}: {{metric}}",
            "tagKeys": "alertstate,severity,metric",
            "useValueForTime": False,
        }


class _Built(Builder[dm.AnnotationQuery]):
    """An annotation model handed to the SDK's dashboard builder as it is."""

    def __init__(self, model: dm.AnnotationQuery) -> None:
        self.model = model

    def build(self) -> dm.AnnotationQuery:
        return self.model


def alert_annotations(metrics: str) -> list[dm.AnnotationQuery]:
    """Grafana's own alert states (for Grafana-managed rules), and Prometheus's ALERTS of the
    metrics matching `metrics` (a regular expression) while pending or firing."""
    builtin = dm.AnnotationQuery(
        name="Annotations & Alerts",
        datasource=dm.DataSourceRef(type_val="grafana", uid="-- Grafana --"),
        enable=True,
        hide=True,
        icon_color="rgba(0, 211, 255, 1)",
        type_val="dashboard",
        built_in=1,
    )
    alerts = _PrometheusAnnotation(
        name="NSM alerts",
        datasource=p.DATASOURCE,
        enable=True,
        icon_color="red",
        expr=f'ALERTS{{metric=~"{metrics}"}}',
    )
    return [builtin, alerts]


def dashboard(
    uid: str,
    title: str,
    tags: list[str],
    description: str,
    variables: Sequence[Any] = (),
    annotations: Sequence[dm.AnnotationQuery] = (),
    links: Sequence[db.DashboardLink] = (),
) -> db.Dashboard:
    board = (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["nsm", *tags])
        .readonly()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .time("now-7d", "now")
        .timezone("utc")
        .refresh("1m")
        .version(1)
        .with_variable(
            db.DatasourceVariable(p.DATASOURCE_VARIABLE)
            .label("Prometheus")
            .description("The Prometheus that scrapes the NSM workers.")
            .type("prometheus")
        )
    )
    for variable in variables:
        board = board.with_variable(variable)
    board = board.annotations([_Built(a) for a in annotations])
    standard = [
        db.DashboardLink("Overview")
        .type(dm.DashboardLinkType.LINK)
        .url(f"/d/{OVERVIEW_UID}")
        .icon("dashboard")
        .keep_time(True),
        db.DashboardLink("NSM dashboards")
        .type(dm.DashboardLinkType.DASHBOARDS)
        .tags(["nsm"])
        .as_dropdown(True)
        .keep_time(True)
        .icon("external link"),
    ]
    return board.links([*links, *standard])


# ---- one metric ---------------------------------------------------------------------------------


def _metric_steps(metric: Metric) -> list[tuple[float | None, str]]:
    """The floor as a threshold line: red below it."""
    if metric.alert is not None and metric.alert.floor is not None:
        return [(None, "red"), (metric.alert.floor, "green")]
    return []


def now_and_last_week(
    ids: p.Ids, metric: Metric, width: int, links: Sequence[db.DashboardLink] = ()
) -> Any:
    """The value now and one week earlier; the drop alert's level, the anomaly alert's usual
    level and the floor as dashed lines where the definition alerts on them."""
    targets = [
        p.target(promql.metric_total(metric.name), "now", "A"),
        p.target(promql.metric_total(metric.name, promql.WEEK), "one week earlier", "B"),
    ]
    notes = ["The dashed grey line is the same metric one week earlier."]
    overrides = [p.dashed("B")]
    alert = metric.alert
    if alert is not None and alert.drop_pct is not None:
        kept = promql.number((100 - alert.drop_pct) / 100)
        targets.append(
            p.target(
                f"{kept} * {promql.metric_total(metric.name, promql.WEEK)}",
                f"drop alert below ({alert.drop_pct:g}% under last week)",
                "C",
            )
        )
        overrides.append(p.dashed("C", "red"))
        notes.append(f"Red dashed: the drop alert's level, {alert.drop_pct:g}% below last week.")
    if alert is not None and alert.anomaly is not None:
        targets.append(
            p.target(promql.seasonal_centre(metric.name), "usual at this hour (4 weeks)", "D")
        )
        overrides.append(p.dashed("D", "purple"))
        notes.append("Purple dashed: the median of the same hour over the last 4 weeks.")
    if alert is not None and alert.floor is not None:
        notes.append(f"The red threshold line is the floor, {alert.floor:g}.")
    panel = p.timeseries(
        ids,
        title_of(metric),
        f"{about(metric)} {' '.join(notes)}",
        p.grafana_unit(metric.unit),
        targets,
        width=width,
        links=links,
        steps=_metric_steps(metric),
    )
    for matcher, properties in overrides:
        panel = panel.with_override(matcher, properties)
    return panel


def week_over_week(ids: p.Ids, metric: Metric, links: Sequence[db.DashboardLink] = ()) -> Any:
    # Red past the alert's drop threshold (when there is one), orange for a fall, green for growth.
    steps: list[tuple[float | None, str]] = [(None, "orange"), (0, "green")]
    if metric.alert is not None and metric.alert.drop_pct is not None:
        steps = [(None, "red"), (-metric.alert.drop_pct / 100, "orange"), (0, "green")]
    return p.stat(
        ids,
        f"{title_of(metric)}: week over week",
        f"Change of {metric.name} against its value one week earlier (+10% means 10% higher). "
        "Empty during the first week, which has no history.",
        "percentunit",
        [p.target(promql.week_over_week(metric.name), "week over week")],
        steps=steps,
        links=links,
    )


def segment_variable_name(segment: str) -> str:
    """A Grafana variable name for a segment field (dotted paths become underscores)."""
    return "segment_" + re.sub(r"[^A-Za-z0-9_]", "_", segment)


def by_segment(ids: p.Ids, metric: Metric, segment: str, width: int, links: Sequence[Any]) -> Any:
    variable = segment_variable_name(segment)
    return p.timeseries(
        ids,
        f"{title_of(metric)} by {segment}",
        f"{about(metric)} Broken down by {segment}; the values shown are chosen in the "
        f"{segment} variable above.",
        p.grafana_unit(metric.unit),
        [
            p.target(
                promql.metric_by_segment(metric.name, segment, f"${{{variable}}}"),
                "{{segment_value}}",
            )
        ],
        width=width,
        links=links,
    )


@dataclass
class MetricLine:
    """A metric's panels: its change, its value against last week, one breakdown per segment."""

    metric: Metric
    change: Any
    main: Any
    breakdowns: list[Any] = field(default_factory=list)

    @property
    def panels(self) -> list[Any]:
        return [self.change, self.main, *self.breakdowns]

    @property
    def main_id(self) -> int:
        return int(self.main.build().id_val)


def metric_line(ids: p.Ids, metric: Metric) -> MetricLine:
    line = MetricLine(metric, week_over_week(ids, metric), now_and_last_week(ids, metric, 20))
    width = p.GRID_WIDTH // len(metric.segments) if metric.segments else 0
    line.breakdowns = [by_segment(ids, metric, s, width, []) for s in metric.segments]
    return line


def runbook_for(metric: Metric, settings: AlertSettings) -> db.DashboardLink:
    return p.link(f"Runbook: {metric.name}", runbook_link(settings, metric_anchor(metric.name)))


# ---- dashboards ---------------------------------------------------------------------------------


def descendants(catalog: Catalog, metric: Metric) -> list[Metric]:
    """Depth first, in declaration order: each diagnostic followed by its granular metrics."""
    found = []
    for child in catalog.children(metric.name):
        found += [child, *descendants(catalog, child)]
    return found


def segment_variables(tree: list[Metric]) -> list[db.QueryVariable]:
    """One variable per segment field of the tree, offering the values of exactly the metrics
    that are broken down by it: the panels `... by FIELD` filter on it."""
    fields = list(dict.fromkeys(segment for metric in tree for segment in metric.segments))
    variables = []
    for segment in fields:
        names = "|".join(m.name for m in tree if segment in m.segments)
        values = promql.selector(promql.METRIC_VALUE, metric__re=names, segment=segment)
        query = f"label_values({values}, segment_value)"
        variables.append(
            db.QueryVariable(segment_variable_name(segment))
            .label(segment)
            .description(f"Values of {segment} shown by the panels broken down by it.")
            .datasource(p.DATASOURCE)
            .query({"query": query, "refId": "SegmentValues"})
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dm.VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(dm.VariableOption(text=["All"], value=["$__all"], selected=True))
        )
    return variables


def readiness(
    ids: p.Ids, names: list[str], settings: AlertSettings, width: int = 12, height: int = 5
) -> list[Any]:
    """Whether each metric is exported, and how much of its window the topic still covers.

    `max` over the workers: the exporter reports every metric, and a worker that holds no
    partition reports 0 for each (it may be the only one, on a topic it cannot read)."""
    metrics = "|".join(names)
    links = [p.link("Runbook: metrics", runbook_link(settings, "metrics"))]
    ready = p.stat(
        ids,
        "Ready",
        "1 (ready) while a metric's value is exported; 0 (building) while its state is rebuilt "
        "from the topic after it was added or changed: its panels are empty meanwhile "
        f"({READY}).",
        "none",
        [p.target(f'max by (metric) ({READY}{{metric=~"{metrics}"}})', "{{metric}}")],
        steps=[(None, "orange"), (1, "green")],
        width=width,
        height=height,
        mappings=[p.text_mapping({"0": ("building", "orange"), "1": ("ready", "green")})],
        names=True,
        links=links,
    )
    coverage = p.stat(
        ids,
        "Window coverage",
        "The share of each metric's window the applied events cover: below 100% when the "
        f"topic no longer holds the window's start, and alerts stay silent ({COVERAGE}).",
        "percentunit",
        [p.target(f'max by (metric) ({COVERAGE}{{metric=~"{metrics}"}})', "{{metric}}")],
        steps=[(None, "orange"), (1, "green")],
        width=width,
        height=height,
        names=True,
        links=links,
    )
    return [ready, coverage]


def north_star_dashboard(
    catalog: Catalog, north_star: Metric, settings: AlertSettings
) -> db.Dashboard:
    uid = north_star_uid(north_star.name)
    tree = [north_star, *descendants(catalog, north_star)]
    ids = p.Ids()
    status_row = p.row(ids, "Readiness and window coverage", collapsed=False)
    status = readiness(ids, [m.name for m in tree], settings)
    rows = {m.name: p.row(ids, _row_title(m, north_star), collapsed=m.tier == "granular")
            for m in tree}  # fmt: skip
    lines = {m.name: metric_line(ids, m) for m in tree}

    def view(metric: Metric) -> str:
        return f"/d/{uid}?viewPanel={lines[metric.name].main_id}&{TIME_RANGE}"

    for metric in tree:
        links = []
        if metric is north_star:
            links.append(p.link("Up: overview", f"/d/{OVERVIEW_UID}?{TIME_RANGE}"))
        elif metric.parent in lines:
            parent = catalog[metric.parent]
            links.append(p.link(f"Up: {title_of(parent)}", view(parent)))
        links += [
            p.link(f"Drill down: {title_of(c)}", view(c)) for c in catalog.children(metric.name)
        ]
        links.append(runbook_for(metric, settings))
        for panel in lines[metric.name].panels:
            panel.links(links)
    backups = [
        p.link(
            f"{'Backup' if m.backup_for == north_star.name else 'Backs up'}: {title_of(m)}",
            f"/d/{north_star_uid(m.name)}",
        )
        .icon("dashboard")
        .keep_time(True)
        for m in catalog.north_stars()
        if m.backup_for == north_star.name or north_star.backup_for == m.name
    ]
    board = dashboard(
        uid,
        f"NSM · {title_of(north_star)}",
        ["north-star"],
        f"{about(north_star)} With the diagnostic and granular metrics below it.",
        variables=segment_variables(tree),
        annotations=alert_annotations("|".join(m.name for m in tree)),
        links=backups,
    )
    board = board.with_row(status_row)
    for panel in status:
        board = board.with_panel(panel)
    for metric in tree:
        row, line = rows[metric.name], lines[metric.name]
        if metric.tier == "granular":  # collapsed: the row holds its panels
            for panel in line.panels:
                row = row.with_panel(panel)
            board = board.with_row(row)
        else:
            board = board.with_row(row)
            for panel in line.panels:
                board = board.with_panel(panel)
    return board


def _row_title(metric: Metric, north_star: Metric) -> str:
    label = {"north_star": "North star", "diagnostic": "Diagnostic", "granular": "Granular"}
    return f"{'North star' if metric is north_star else label[metric.tier]}: {title_of(metric)}"


def overview_dashboard(catalog: Catalog, settings: AlertSettings) -> db.Dashboard:
    """Each north star with its week-over-week change and last week overlaid, its backup beside."""
    ids = p.Ids()
    stars = catalog.north_stars()
    primaries = [m for m in stars if m.backup_for is None or m.backup_for not in catalog.metrics]
    age = p.stat(
        ids,
        "Newest event age",
        "Time since the event time of the newest applied event: the metrics are this stale. "
        "Opens the processor health dashboard.",
        "s",
        [p.target(promql.newest_event_age(), "age")],
        steps=[(None, "green"), (15 * 60, "orange"), (30 * 60, "red")],
        width=12,
        height=5,
        links=[
            p.link("Processor health", f"/d/{PROCESSOR_UID}?{TIME_RANGE}"),
            p.link("Runbook: NSMDataStale", runbook_link(settings, "nsmdatastale")),
        ],
    )
    ready, _ = readiness(ids, [m.name for m in stars], settings, height=5)
    board = dashboard(
        OVERVIEW_UID,
        "NSM · Overview",
        ["overview"],
        "The north star metrics, each beside its backup; click a panel to drill down.",
        annotations=alert_annotations("|".join(m.name for m in stars)),
    )
    board = board.with_panel(age).with_panel(ready)
    for star in primaries:
        backups = [m for m in stars if m.backup_for == star.name]
        board = board.with_row(p.row(ids, f"North star: {title_of(star)}", collapsed=False))
        for metric in [star, *backups]:
            drill = [
                p.link(
                    f"Drill down: {title_of(metric)}",
                    f"/d/{north_star_uid(metric.name)}?{TIME_RANGE}",
                ),
                runbook_for(metric, settings),
            ]
            change = week_over_week(ids, metric, drill)
            if metric is not star:
                change = change.title(f"Backup · {title_of(metric)}: week over week")
            width = 8 if backups else 20
            board = board.with_panel(change).with_panel(
                now_and_last_week(ids, metric, width, drill)
            )
    return board


def all_dashboards(catalog: Catalog, settings: AlertSettings) -> list[db.Dashboard]:
    from processor.grafana.health import processor_dashboard

    stars = [north_star_dashboard(catalog, m, settings) for m in catalog.north_stars()]
    return [overview_dashboard(catalog, settings), *stars, processor_dashboard(catalog, settings)]


def metric_alert_names(metric: Metric) -> list[str]:
    return [spec.name for spec in metric_alerts(metric)]
