"""The dashboards: an overview of the north stars, one drill-down dashboard per north star (its
diagnostic and granular metrics, with a segment variable) and the processor's health."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from processor.definitions import Catalog, Metric
from processor.grafana import panels as p
from processor.grafana.uids import OVERVIEW_UID, PROCESSOR_UID, north_star_uid
from processor.rules import promql
from processor.rules.alerts import AlertSettings

Dashboard = dict[str, Any]
TIME_RANGE = "${__url_time_range}"
SEGMENT_VARS = "${segment:queryparam}&${segment_value:queryparam}"
SCHEMA_VERSION = 39


def title_of(metric: Metric) -> str:
    return metric.title or metric.name.replace("_", " ").capitalize()


def about(metric: Metric) -> str:
    """What a metric is, for panel descriptions."""
    text = metric.description or title_of(metric)
    tier = metric.tier.replace("_", " ")
    return f"{text.strip()} ({metric.name}: {tier}, rolling window {metric.window})."


def dashboard(
    uid: str, title: str, tags: list[str], panels: list[p.Panel], **extra: Any
) -> Dashboard:
    links = [
        {
            "title": "Overview",
            "type": "link",
            "url": f"/d/{OVERVIEW_UID}",
            "icon": "dashboard",
            "keepTime": True,
            "includeVars": False,
            "asDropdown": False,
            "tags": [],
            "targetBlank": False,
        },
        {
            "title": "NSM dashboards",
            "type": "dashboards",
            "tags": ["nsm"],
            "asDropdown": True,
            "keepTime": True,
            "includeVars": False,
            "icon": "external link",
            "targetBlank": False,
        },
    ]
    return {
        "uid": uid,
        "title": title,
        "description": extra.pop("description", ""),
        "tags": ["nsm", *tags],
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": "now-7d", "to": "now"},
        "timezone": "utc",
        "refresh": "1m",
        "annotations": {"list": []},
        "templating": {"list": extra.pop("variables", [])},
        "links": extra.pop("links", []) + links,
        "panels": p.laid_out(panels),
    }


# ---- one metric ---------------------------------------------------------------------------------


def now_and_last_week(metric: Metric, width: int, links: Sequence[dict[str, Any]] = ()) -> p.Panel:
    return p.timeseries(
        title_of(metric),
        f"{about(metric)} The dashed line is the same metric one week earlier.",
        "short",
        [
            p.target(promql.metric_total(metric.name), "now", "A"),
            p.target(promql.metric_total(metric.name, promql.WEEK), "one week earlier", "B"),
        ],
        width=width,
        overrides=[p.last_week_dashed("B")],
        links=links,
    )


def week_over_week(metric: Metric, links: Sequence[dict[str, Any]] = ()) -> p.Panel:
    # Red past the alert's drop threshold (when there is one), orange for a fall, green for growth.
    steps: list[tuple[float | None, str]] = [(None, "orange"), (0, "green")]
    if metric.alert is not None and metric.alert.drop_pct is not None:
        steps = [(None, "red"), (-metric.alert.drop_pct / 100, "orange"), (0, "green")]
    return p.stat(
        f"{title_of(metric)}: week over week",
        f"Change of {metric.name} against its value one week earlier (+10% means 10% higher). "
        "Empty during the first week, which has no history.",
        "percentunit",
        [p.target(promql.week_over_week(metric.name), "week over week")],
        thresholds=steps,
        links=links,
    )


def by_segment(metric: Metric) -> p.Panel:
    return p.timeseries(
        f"{title_of(metric)} by $segment",
        f"{about(metric)} Broken down by the segment chosen above; empty when this metric is not "
        f"broken down by it (its segments: {', '.join(metric.segments)}).",
        "short",
        [
            p.target(
                promql.metric_by_segment(metric.name, "$segment", "$segment_value"),
                "{{segment_value}}",
            )
        ],
        width=10,
    )


def metric_line(metric: Metric, segmented: bool) -> list[p.Panel]:
    """A stat, the value against last week, and its breakdown when the dashboard has segments."""
    line = [week_over_week(metric)]
    show_segments = segmented and bool(metric.segments)
    line.append(now_and_last_week(metric, 10 if show_segments else 20))
    if show_segments:
        line.append(by_segment(metric))
    return line


# ---- dashboards ---------------------------------------------------------------------------------


def descendants(catalog: Catalog, metric: Metric) -> list[Metric]:
    """Depth first, in declaration order: each diagnostic followed by its granular metrics."""
    found = []
    for child in catalog.children(metric.name):
        found += [child, *descendants(catalog, child)]
    return found


def segment_variables(tree: list[Metric]) -> list[dict[str, Any]]:
    fields = list(dict.fromkeys(field for metric in tree for field in metric.segments))
    if not fields:
        return []
    names = "|".join(m.name for m in tree)
    values_query = (
        f'label_values(nsm_metric_value{{metric=~"{names}", segment="$segment"}}, segment_value)'
    )
    options = [{"text": f, "value": f, "selected": i == 0} for i, f in enumerate(fields)]
    return [
        {
            "type": "custom",
            "name": "segment",
            "label": "Segment",
            "description": "The field the breakdown panels split the metrics by.",
            "query": ",".join(fields),
            "options": options,
            "current": {"text": fields[0], "value": fields[0]},
            "multi": False,
            "includeAll": False,
            "hide": 0,
        },
        {
            "type": "query",
            "name": "segment_value",
            "label": "Value",
            "description": "Values of the chosen segment to show (all by default).",
            "datasource": p.DATASOURCE,
            "query": {"query": values_query, "refId": "SegmentValues"},
            "definition": values_query,
            "refresh": 2,
            "sort": 1,
            "regex": "",
            "multi": True,
            "includeAll": True,
            "allValue": ".*",
            "current": {"text": ["All"], "value": ["$__all"]},
            "options": [],
            "hide": 0,
        },
    ]


def north_star_dashboard(catalog: Catalog, north_star: Metric) -> Dashboard:
    uid = north_star_uid(north_star.name)
    tree = [north_star, *descendants(catalog, north_star)]
    variables = segment_variables(tree)
    segmented = bool(variables)
    query = f"{TIME_RANGE}&{SEGMENT_VARS}" if segmented else TIME_RANGE
    panel_list: list[p.Panel] = []
    lines: dict[str, list[p.Panel]] = {}
    for metric in tree:
        if metric.tier != "granular":
            label = "North star" if metric is north_star else "Diagnostic"
            panel_list.append(p.row(f"{label}: {title_of(metric)}"))
        lines[metric.name] = metric_line(metric, segmented)
        panel_list += lines[metric.name]
    # Ids follow list positions (panels.laid_out); the main time series is second on each line.
    main_id = {name: panel_list.index(line[1]) + 1 for name, line in lines.items()}

    def view(metric: Metric) -> str:
        return f"/d/{uid}?viewPanel={main_id[metric.name]}&{query}"

    for metric in tree:
        links = []
        if metric is north_star:
            links.append(p.link("Up: overview", f"/d/{OVERVIEW_UID}?{TIME_RANGE}"))
        elif metric.parent in main_id:
            links.append(
                p.link(f"Up: {title_of(catalog[metric.parent])}", view(catalog[metric.parent]))
            )
        links += [
            p.link(f"Drill down: {title_of(c)}", view(c)) for c in catalog.children(metric.name)
        ]
        for item in lines[metric.name]:
            item["links"] = links
    links = [
        {
            "title": f"Backup: {title_of(m)}"
            if m.backup_for == north_star.name
            else f"Backs up: {title_of(m)}",
            "type": "link",
            "url": f"/d/{north_star_uid(m.name)}",
            "keepTime": True,
            "includeVars": False,
            "asDropdown": False,
            "icon": "dashboard",
            "tags": [],
            "targetBlank": False,
        }
        for m in catalog.north_stars()
        if m.backup_for == north_star.name or north_star.backup_for == m.name
    ]
    return dashboard(
        uid,
        f"NSM · {title_of(north_star)}",
        ["north-star"],
        panel_list,
        description=f"{about(north_star)} With the diagnostic and granular metrics below it.",
        variables=variables,
        links=links,
    )


def overview_dashboard(catalog: Catalog) -> Dashboard:
    """Each north star with its week-over-week change and last week overlaid, its backup beside."""
    stars = catalog.north_stars()
    primaries = [m for m in stars if m.backup_for is None or m.backup_for not in catalog.metrics]
    panel_list: list[p.Panel] = [
        p.stat(
            "Newest event age",
            "Time since the event time of the newest applied event: the metrics are this stale. "
            "Opens the processor health dashboard.",
            "s",
            [p.target(promql.newest_event_age(), "age")],
            thresholds=[(None, "green"), (15 * 60, "orange"), (30 * 60, "red")],
            width=24,
            height=4,
            links=[p.link("Processor health", f"/d/{PROCESSOR_UID}?{TIME_RANGE}")],
        )
    ]
    for star in primaries:
        backups = [m for m in stars if m.backup_for == star.name]
        panel_list.append(p.row(f"North star: {title_of(star)}"))
        for metric in [star, *backups]:
            drill = [
                p.link(
                    f"Drill down: {title_of(metric)}",
                    f"/d/{north_star_uid(metric.name)}?{TIME_RANGE}",
                )
            ]
            stat_panel = week_over_week(metric, drill)
            if metric is not star:
                stat_panel["title"] = f"Backup · {stat_panel['title']}"
            width = 8 if backups else 20
            panel_list += [stat_panel, now_and_last_week(metric, width, drill)]
    return dashboard(
        OVERVIEW_UID,
        "NSM · Overview",
        ["overview"],
        panel_list,
        description="The north star metrics, each beside its backup; click a panel to drill down.",
    )


def all_dashboards(catalog: Catalog, settings: AlertSettings) -> list[Dashboard]:
    from processor.grafana.health import processor_dashboard

    stars = [north_star_dashboard(catalog, m) for m in catalog.north_stars()]
    return [overview_dashboard(catalog), *stars, processor_dashboard(settings)]
