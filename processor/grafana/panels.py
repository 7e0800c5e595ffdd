"""Small functions that return Grafana panels as plain dicts, all made by one default factory so
that every panel has a title, a description, a unit and the NSM Prometheus datasource."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from processor.grafana.uids import DATASOURCE_UID

Panel = dict[str, Any]
DATASOURCE = {"type": "prometheus", "uid": DATASOURCE_UID}
GRID_WIDTH = 24
PANEL_HEIGHT = 8


def target(expr: str, legend: str = "", ref_id: str = "A") -> dict[str, Any]:
    return {
        "refId": ref_id,
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": True,
    }


def link(title: str, url: str) -> dict[str, Any]:
    return {"title": title, "url": url, "targetBlank": False}


def panel(
    kind: str,
    title: str,
    description: str,
    unit: str,
    targets: Sequence[dict[str, Any]],
    *,
    width: int = 12,
    height: int = PANEL_HEIGHT,
    options: dict[str, Any] | None = None,
    defaults: dict[str, Any] | None = None,
    overrides: Sequence[dict[str, Any]] = (),
    links: Sequence[dict[str, Any]] = (),
) -> Panel:
    """The default panel factory; the others only say what differs."""
    if not (title and description and unit):
        raise ValueError("a panel needs a title, a description and a unit")
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"h": height, "w": width, "x": 0, "y": 0},
        "fieldConfig": {
            "defaults": {"unit": unit, **(defaults or {})},
            "overrides": list(overrides),
        },
        "options": options or {},
        "targets": list(targets),
        "links": list(links),
    }


def timeseries(
    title: str, description: str, unit: str, targets: Sequence[dict[str, Any]], **kwargs: Any
) -> Panel:
    options = {
        "legend": {"displayMode": "list", "placement": "bottom", "calcs": ["lastNotNull"]},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    extra = dict(kwargs.pop("defaults", {}))
    custom = {"lineWidth": 2, "fillOpacity": 10, "spanNulls": False, **extra.pop("custom", {})}
    defaults = {"custom": custom, **extra}
    return panel(
        "timeseries",
        title,
        description,
        unit,
        targets,
        options=options,
        defaults=defaults,
        **kwargs,
    )


def stat(
    title: str,
    description: str,
    unit: str,
    targets: Sequence[dict[str, Any]],
    thresholds: Sequence[tuple[float | None, str]] = ((None, "blue"),),
    **kwargs: Any,
) -> Panel:
    options = {
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        "colorMode": "background",
        "graphMode": "area",
        "textMode": "auto",
        "justifyMode": "auto",
        "orientation": "auto",
    }
    steps = [{"value": value, "color": color} for value, color in thresholds]
    defaults = {"thresholds": {"mode": "absolute", "steps": steps}, "color": {"mode": "thresholds"}}
    kwargs.setdefault("width", 4)
    return panel(
        "stat", title, description, unit, targets, options=options, defaults=defaults, **kwargs
    )


def last_week_dashed(ref_id: str) -> dict[str, Any]:
    """Override drawing one query (last week's) as a grey dashed line behind the current one."""
    return {
        "matcher": {"id": "byFrameRefID", "options": ref_id},
        "properties": [
            {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
            {"id": "color", "value": {"mode": "fixed", "fixedColor": "text"}},
            {"id": "custom.fillOpacity", "value": 0},
        ],
    }


def row(title: str) -> Panel:
    return {
        "type": "row",
        "title": title,
        "collapsed": False,
        "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": 0},
        "panels": [],
    }


def laid_out(panels: Sequence[Panel]) -> list[Panel]:
    """Ids in order and positions flowing left to right, a row panel starting a new line."""
    placed, x, y, line_height = [], 0, 0, 0
    for number, original in enumerate(panels, start=1):
        item = {**original, "id": number, "gridPos": dict(original["gridPos"])}
        width, height = item["gridPos"]["w"], item["gridPos"]["h"]
        if item["type"] == "row" or x + width > GRID_WIDTH:
            x, y, line_height = 0, y + line_height, 0
        item["gridPos"].update(x=x, y=y)
        x, line_height = x + width, max(line_height, height)
        if item["type"] == "row":
            x, y, line_height = 0, y + height, 0
        placed.append(item)
    return placed
