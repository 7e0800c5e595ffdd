"""Small functions that return grafana-foundation-sdk panel builders, all made by one default
factory so that every panel has an id, a title, a description, a unit and the Prometheus chosen
in the dashboard's datasource variable (never a fixed uid: the dashboards fit any Grafana)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus
from grafana_foundation_sdk.builders import stat as stat_builders
from grafana_foundation_sdk.builders import timeseries as timeseries_builders
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm

DATASOURCE_VARIABLE = "datasource"
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid=f"${{{DATASOURCE_VARIABLE}}}")
GRID_WIDTH = 24
PANEL_HEIGHT = 8

# Grafana's unit ids for the units of CONTRACT §2; a currency Grafana has no id for gets its code.
_CURRENCIES = {
    code: f"currency{code}"
    for code in [
        "USD",
        "GBP",
        "EUR",
        "JPY",
        "RUB",
        "UAH",
        "BRL",
        "DKK",
        "ISK",
        "NOK",
        "SEK",
        "CZK",
        "CHF",
        "PLN",
        "ZAR",
        "INR",
        "KRW",
        "IDR",
        "PHP",
        "VND",
    ]
}
_UNITS = {"count": "short", "percent": "percentunit", "ratio": "short", "seconds": "s"}


def grafana_unit(unit: str) -> str:
    """Grafana's unit for a metric's `unit`: `percent` values are ratios Grafana shows x100."""
    if unit.startswith("currency:"):
        code = unit.removeprefix("currency:")
        return _CURRENCIES.get(code, f"suffix: {code}")
    return _UNITS[unit]


class Ids:
    """Panel ids in creation order: drill-down links (`viewPanel=ID`) name them."""

    def __init__(self) -> None:
        self._next: Iterator[int] = itertools.count(1)

    def __call__(self) -> int:
        return next(self._next)


def target(expr: str, legend: str = "", ref_id: str = "A") -> prometheus.Dataquery:
    return (
        prometheus.Dataquery()
        .expr(expr)
        .legend_format(legend or "__auto")
        .ref_id(ref_id)
        .range()
        .datasource(DATASOURCE)
    )


def link(title: str, url: str) -> db.DashboardLink:
    return db.DashboardLink(title).type(dm.DashboardLinkType.LINK).url(url)


def thresholds(steps: Sequence[tuple[float | None, str]]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=value, color=color) for value, color in steps])
    )


P = TypeVar("P", timeseries_builders.Panel, stat_builders.Panel)


def _made(
    panel: P,
    ids: Ids,
    title: str,
    description: str,
    unit: str,
    targets: Sequence[prometheus.Dataquery],
    width: int,
    height: int,
    links: Sequence[db.DashboardLink],
) -> P:
    """The default factory: what every panel has, whatever its kind."""
    if not (title and description and unit):
        raise ValueError("a panel needs a title, a description and a unit")
    return (
        panel.id(ids())
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .targets(list(targets))
        .span(width)
        .height(height)
        .links(list(links))
    )


def timeseries(
    ids: Ids,
    title: str,
    description: str,
    unit: str,
    targets: Sequence[prometheus.Dataquery],
    *,
    width: int = 12,
    height: int = PANEL_HEIGHT,
    links: Sequence[db.DashboardLink] = (),
    steps: Sequence[tuple[float | None, str]] = (),
) -> timeseries_builders.Panel:
    """A time series; `steps` past the first are drawn as dashed threshold lines."""
    panel = (
        _made(
            timeseries_builders.Panel(),
            ids,
            title,
            description,
            unit,
            targets,
            width,
            height,
            links,
        )
        .line_width(2)
        .fill_opacity(10)
        .span_nulls(False)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull"])
        )
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )
    if steps:
        panel = panel.thresholds(thresholds(steps)).thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(
                common.GraphThresholdsStyleMode.DASHED
            )
        )
    return panel


def dashed(
    ref_id: str, color: str = "text"
) -> tuple[dm.MatcherConfig, list[dm.DynamicConfigValue]]:
    """Override drawing one query as a dashed line without fill (last week's, a threshold)."""
    return (
        dm.MatcherConfig(id_val="byFrameRefID", options=ref_id),
        [
            dm.DynamicConfigValue(
                id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}
            ),
            dm.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": color}),
            dm.DynamicConfigValue(id_val="custom.fillOpacity", value=0),
        ],
    )


def stat(
    ids: Ids,
    title: str,
    description: str,
    unit: str,
    targets: Sequence[prometheus.Dataquery],
    *,
    steps: Sequence[tuple[float | None, str]] = ((None, "blue"),),
    width: int = 4,
    height: int = PANEL_HEIGHT,
    links: Sequence[db.DashboardLink] = (),
    mappings: Sequence[dm.ValueMap] = (),
    names: bool = False,
) -> stat_builders.Panel:
    panel = (
        _made(stat_builders.Panel(), ids, title, description, unit, targets, width, height, links)
        .reduce_options(
            common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False).fields("")
        )
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE if names else common.BigValueGraphMode.AREA)
        .text_mode(
            common.BigValueTextMode.VALUE_AND_NAME if names else common.BigValueTextMode.AUTO
        )
        .justify_mode(common.BigValueJustifyMode.AUTO)
        .orientation(common.VizOrientation.AUTO)
        .thresholds(thresholds(steps))
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
    )
    if mappings:
        panel = panel.mappings(list(mappings))
    return panel


def text_mapping(texts: dict[str, tuple[str, str]]) -> dm.ValueMap:
    """Values shown as words: {"1": ("ready", "green")}."""
    return dm.ValueMap(
        options={
            value: dm.ValueMappingResult(text=text, color=color, index=index)
            for index, (value, (text, color)) in enumerate(texts.items())
        }
    )


def row(ids: Ids, title: str, collapsed: bool, panels: Sequence[Any] = ()) -> db.Row:
    """A row; a collapsed row holds its panels (Grafana hides them until it is opened)."""
    built = db.Row(title).id(ids())
    for panel in panels:
        built = built.with_panel(panel)
    return built.collapsed(collapsed)
