"""`nsm grafana`: the dashboards read back through grafana-foundation-sdk's own types: units,
the datasource variable, threshold lines, alert annotations, readiness, segment variables that
match their panels, collapsed granular rows, drill-down and runbook links, stable uids, and the
committed files being up to date."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as prom

from processor.cli import main
from processor.definitions import Catalog, catalog_from_dicts, load_definitions
from processor.grafana.dashboards import all_dashboards
from processor.grafana.provisioning import GrafanaSettings, dashboard_json, grafana_files
from processor.rules.alerts import AlertSettings

ROOT = Path(__file__).resolve().parents[2]
BASE = "https://wiki.example.com/nsm/runbook"
SETTINGS = AlertSettings(runbook_url=BASE)
ENTITIES = {"key": "account_id", "all": [{"event": "report.sent", "count_at_least": 3}]}

register_default_plugins()  # targets decode as the Prometheus plugin's query type


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    def metric(name: str, tier: str, parent: str | None = None, **extra: Any) -> dict[str, Any]:
        found = {"name": name, "title": name.replace("_", " ").title(), "tier": tier}
        found.update(window="7d", aggregate={"event": "report.sent", "count": True}, **extra)
        return found | ({"parent": parent} if parent else {})

    return catalog_from_dicts(
        [
            metric("active_accounts", "north_star", segments=["plan", "region"],
                   alert={"drop_pct": 25, "floor": 3, "anomaly": {}}),
            metric("reports_sent", "north_star", backup_for="active_accounts"),
            metric("active_users", "diagnostic", "active_accounts", segments=["plan", "seat"]),
            metric("reports_per_user", "granular", "active_users", unit="ratio"),
            metric("trials_started", "diagnostic", "active_accounts", unit="currency:EUR"),
            metric("win_rate", "diagnostic", "active_accounts", unit="percent"),
            metric("loonie_revenue", "granular", "trials_started", unit="currency:CAD",
                   segments=["context.channel"]),
            metric("builds", "north_star"),
        ]
    )  # fmt: skip


def typed(board: Any) -> dm.Dashboard:
    """A built dashboard, as Grafana would read its JSON, decoded by the SDK's model."""
    return dm.Dashboard.from_json(json.loads(dashboard_json(board.build())))


@pytest.fixture(scope="module")
def boards(catalog: Catalog) -> dict[str, dm.Dashboard]:
    found = {}
    for builder in all_dashboards(catalog, SETTINGS):
        board = typed(builder)
        assert board.uid is not None
        found[board.uid] = board
    return found


def panels_of(board: dm.Dashboard) -> list[dm.Panel]:
    """Every panel that is not a row, also those inside collapsed rows."""
    found: list[dm.Panel] = []
    for panel in board.panels or []:
        if isinstance(panel, dm.RowPanel):
            found += panel.panels
        else:
            found.append(panel)
    return found


def by_title(board: dm.Dashboard) -> dict[str, dm.Panel]:
    return {panel.title or "": panel for panel in panels_of(board)}


def link_pairs(panel: dm.Panel) -> list[tuple[str, str]]:
    """(title, url) of a panel's links (the SDK's model keeps panel links as plain mappings)."""
    return [
        (link["title"], link["url"]) if isinstance(link, dict) else (link.title, link.url)
        for link in panel.links or []
    ]


def exprs(panel: dm.Panel) -> list[str]:
    return [t.expr for t in panel.targets or [] if isinstance(t, prom.Dataquery)]


def test_one_overview_one_per_north_star_and_processor_health(boards: dict[str, Any]):
    assert set(boards) == {
        "nsm-overview",
        "nsm-processor",
        "nsm-active_accounts",
        "nsm-reports_sent",
        "nsm-builds",
    }


def test_every_panel_has_a_description_a_unit_and_the_datasource_variable(boards):
    for board in boards.values():
        variables = {v.name: v for v in board.templating.list_val or []}
        source = variables["datasource"]
        assert source.type_val == dm.VariableType.DATASOURCE and source.query == "prometheus"
        for panel in panels_of(board):
            assert panel.title and panel.description, panel.title
            assert panel.field_config is not None and panel.field_config.defaults.unit
            assert panel.datasource is not None and panel.datasource.uid == "${datasource}"
            assert panel.targets and all(isinstance(t, prom.Dataquery) for t in panel.targets)
            assert all(t.datasource.uid == "${datasource}" for t in panel.targets)  # type: ignore[union-attr]


def test_no_fixed_datasource_uid_and_no_default_in_what_is_provisioned(catalog: Catalog):
    files = grafana_files(catalog, SETTINGS, GrafanaSettings(datasource_uid="theirs"))
    for name, text in files.items():
        if name.startswith("dashboards/"):
            assert "nsm-prometheus" not in text and "theirs" not in text, name
    datasource = yaml.safe_load(files["provisioning/datasources/prometheus.yml"])["datasources"][0]
    assert "isDefault" not in datasource and datasource["uid"] == "theirs"
    alerting = yaml.safe_load(files["provisioning/alerting/nsm.yml"])
    uids = {
        step["datasourceUid"] for g in alerting["groups"] for r in g["rules"] for step in r["data"]
    }
    assert uids == {"theirs", "__expr__"}


def test_units_come_from_each_metric_s_unit(boards: dict[str, dm.Dashboard]):
    panels = by_title(boards["nsm-active_accounts"])

    def unit(title: str) -> str | None:
        return panels[title].field_config.defaults.unit  # type: ignore[union-attr]

    assert unit("Active Accounts") == "short"
    assert unit("Trials Started") == "currencyEUR"
    assert unit("Win Rate") == "percentunit"
    assert unit("Reports Per User") == "short"
    assert unit("Loonie Revenue") == "suffix: CAD"
    assert unit("Loonie Revenue by context.channel") == "suffix: CAD"
    assert unit("Active Accounts: week over week") == "percentunit"


def test_floor_is_a_threshold_line_and_drop_and_usual_level_are_drawn(boards):
    main = by_title(boards["nsm-active_accounts"])["Active Accounts"]
    defaults = main.field_config.defaults  # type: ignore[union-attr]
    assert [s.value for s in defaults.thresholds.steps] == [None, 3]  # type: ignore[union-attr]
    assert defaults.custom.thresholds_style.mode in ("line", "dashed")  # type: ignore[union-attr]
    queries = exprs(main)
    assert queries[2].startswith("0.75 * ") and queries[2].endswith("offset 1w)")
    assert queries[3] == 'nsm:metric_value:seasonal_centre{metric="active_accounts"}'
    plain = by_title(boards["nsm-active_accounts"])["Active Users"]
    assert len(exprs(plain)) == 2 and not plain.field_config.defaults.thresholds  # type: ignore[union-attr]


def test_alert_states_are_annotations_of_the_dashboard_s_metrics(boards: dict[str, Any]):
    board = boards["nsm-active_accounts"]
    annotations = board.annotations.list_val  # type: ignore[union-attr]
    assert any(a.built_in == 1 for a in annotations)  # Grafana-managed alert states
    alerts = next(a for a in annotations if a.expr)
    assert alerts.expr.startswith("ALERTS{metric=~")
    names = set(alerts.expr.split('"')[1].split("|"))
    assert names == {"active_accounts", "active_users", "reports_per_user", "trials_started",
                     "win_rate", "loonie_revenue"}  # fmt: skip
    raw = json.loads(dashboard_json(all_dashboards(catalog_of(), SETTINGS)[1].build()))
    prometheus = next(a for a in raw["annotations"]["list"] if "expr" in a)
    assert prometheus["titleFormat"] == "{{alertname}}" and prometheus["tagKeys"]


def catalog_of() -> Catalog:
    return load_definitions(ROOT / "definitions")


def test_readiness_and_coverage_use_the_contract_series(boards: dict[str, Any]):
    for uid in ("nsm-active_accounts", "nsm-overview", "nsm-processor"):
        panels = by_title(boards[uid])
        ready = exprs(panels["Ready"])[0]
        assert ready.startswith("max by (metric) (nsm_metric_ready{metric=~")
        assert panels["Ready"].field_config.defaults.mappings  # type: ignore[union-attr]
        if uid != "nsm-overview":
            assert "nsm_metric_window_coverage_ratio" in exprs(panels["Window coverage"])[0]
    everything = exprs(by_title(boards["nsm-processor"])["Ready"])[0]
    assert "builds" in everything and "loonie_revenue" in everything


def test_segment_variables_match_their_panels(boards: dict[str, dm.Dashboard]):
    for board in boards.values():
        variables = {
            v.name: v
            for v in board.templating.list_val or []  # type: ignore[union-attr]
            if v.type_val == dm.VariableType.QUERY
        }
        used: dict[str, set[str]] = {}
        for panel in panels_of(board):
            match = re.fullmatch(r"(.*) by (\S+)", panel.title or "")
            if not match or "segment_value" not in exprs(panel)[0]:
                continue
            field = match.group(2)
            variable = "segment_" + re.sub(r"\W", "_", field)
            assert variable in variables, (board.uid, panel.title)
            (expr,) = exprs(panel)
            assert f'segment="{field}"' in expr and f'segment_value=~"${{{variable}}}"' in expr
            metric = re.search(r'metric="([a-z0-9_]+)"', expr).group(1)  # type: ignore[union-attr]
            used.setdefault(variable, set()).add(metric)
        assert set(variables) == set(used), board.uid
        for name, variable in variables.items():
            query = variable.query["query"]  # type: ignore[index]
            offered = set(re.search(r'metric=~"([^"]+)"', query).group(1).split("|"))  # type: ignore[union-attr]
            assert offered == used[name], (board.uid, name)
    assert {v.name for v in boards["nsm-active_accounts"].templating.list_val} >= {  # type: ignore[union-attr]
        "segment_plan", "segment_region", "segment_seat", "segment_context_channel"
    }  # fmt: skip


def test_granular_rows_are_collapsed_and_hold_their_panels(boards: dict[str, dm.Dashboard]):
    rows = [p for p in boards["nsm-active_accounts"].panels if isinstance(p, dm.RowPanel)]  # type: ignore[union-attr]
    states = {r.title: (r.collapsed, len(r.panels)) for r in rows}
    assert states["Granular: Reports Per User"] == (True, 2)
    assert states["Granular: Loonie Revenue"] == (True, 3)
    assert states["North star: Active Accounts"] == (False, 0)
    assert states["Diagnostic: Active Users"] == (False, 0)


def test_panels_link_to_their_drill_down_and_runbook(boards: dict[str, dm.Dashboard]):
    board = boards["nsm-active_accounts"]
    panels = {p.id_val: p for p in panels_of(board)}

    def links(title: str) -> dict[str, str]:
        panel = next(p for p in panels.values() if p.title == title)
        return dict(link_pairs(panel))

    def views(title: str) -> set[str]:
        found = set()
        for url in links(title).values():
            match = re.search(r"viewPanel=(\d+)", url)
            if match:
                found.add(panels[int(match.group(1))].title or "")
        return found

    assert views("Active Accounts") == {"Active Users", "Trials Started", "Win Rate"}
    assert views("Active Users") == {"Active Accounts", "Reports Per User"}
    assert views("Reports Per User") == {"Active Users"}  # inside its collapsed row
    assert views("Active Users by seat") == {"Active Accounts", "Reports Per User"}
    for panel in panels.values():
        runbooks = [url for title, url in link_pairs(panel) if title.startswith("Runbook")]
        assert runbooks and all(url.startswith(f"{BASE}#") for url in runbooks), panel.title
    assert links("Reports Per User")["Runbook: reports_per_user"] == f"{BASE}#reports_per_user"
    overview = by_title(boards["nsm-overview"])["Active Accounts"]
    assert any("/d/nsm-active_accounts?" in url for _, url in link_pairs(overview))
    processor = by_title(boards["nsm-processor"])["Consumer lag by topic"]
    assert [url for _, url in link_pairs(processor)] == [f"{BASE}#nsmconsumerlaggrowing"]


def test_panels_fit_the_grid_without_overlapping(boards: dict[str, dm.Dashboard]):
    for board in boards.values():
        ids = [p.id_val for p in panels_of(board)] + [
            p.id_val for p in board.panels or [] if isinstance(p, dm.RowPanel)
        ]
        assert len(ids) == len(set(ids)), board.uid
        taken: set[tuple[int, int]] = set()
        for panel in board.panels or []:
            grid = panel.grid_pos
            assert grid is not None and grid.x + grid.w <= 24
            cells = {
                (x, y)
                for x in range(grid.x, grid.x + grid.w)
                for y in range(grid.y, grid.y + grid.h)
            }
            assert not cells & taken, (board.uid, panel.title)
            taken |= cells


def test_uids_are_stable_unique_and_short(catalog: Catalog):
    first = [b.build().uid for b in all_dashboards(catalog, SETTINGS)]
    again = [b.build().uid for b in all_dashboards(catalog, SETTINGS)]
    assert first == again and len(set(first)) == len(first)
    long_name = catalog_from_dicts(
        [
            {
                "name": "accounts_with_seven_seats_each_completing_three_workflows",
                "tier": "north_star",
                "window": "7d",
                "entities": ENTITIES,
            }
        ]
    )
    uids = [b.build().uid or "" for b in all_dashboards(long_name, SETTINGS)]
    assert all(len(uid) <= 40 and re.fullmatch(r"[a-zA-Z0-9_-]+", uid) for uid in uids)


def documented_metrics() -> set[str]:
    text = (ROOT / "docs" / "metrics.md").read_text()
    return set(re.findall(r"^\| `(nsm_[a-z_]+)", text, flags=re.MULTILINE))


# CONTRACT §4's readiness series, exported by the worker's telemetry.
CONTRACT_SERIES = {"nsm_metric_ready", "nsm_metric_window_coverage_ratio"}


def test_queries_use_only_documented_names_and_recorded_baselines(catalog: Catalog):
    files = grafana_files(catalog, SETTINGS, GrafanaSettings())
    text = " ".join(files.values())
    used = set(re.findall(r"\bnsm_[a-z_]+", text))
    used = {u.removesuffix("_bucket") for u in used}
    assert used <= documented_metrics() | CONTRACT_SERIES | {"nsm_prometheus"}, used
    recorded = set(re.findall(r"\bnsm:[a-z_:]+", text))
    baselines = {f"nsm:metric_value:{n}" for n in ("seasonal_centre", "seasonal_spread")}
    assert "nsm:metric_value:seasonal_centre" in recorded
    assert recorded <= baselines | {"nsm:metric_value:seasonal_weeks"}


def test_committed_grafana_files_are_up_to_date():
    files = grafana_files(catalog_of(), AlertSettings(), GrafanaSettings())
    for relative, content in files.items():
        path = ROOT / "grafana" / relative
        assert path.exists(), f"grafana/{relative} is missing: run `make generate`"
        assert path.read_text() == content, f"grafana/{relative} is out of date: `make generate`"
    committed = {p.name for p in (ROOT / "grafana" / "dashboards").glob("*.json")}
    assert committed == {Path(r).name for r in files if r.startswith("dashboards/")}


def test_command_writes_the_files_and_removes_dashboards_of_removed_north_stars(tmp_path: Path):
    old = tmp_path / "dashboards" / "nsm-removed_metric.json"
    old.parent.mkdir(parents=True)
    old.write_text("{}")
    result = CliRunner().invoke(
        main, ["grafana", "--definitions", str(ROOT / "definitions"), "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert not old.exists()
    overview = dm.Dashboard.from_json(
        json.loads((tmp_path / "dashboards" / "nsm-overview.json").read_text())
    )
    assert overview.uid == "nsm-overview"
    assert (tmp_path / "provisioning" / "alerting" / "nsm.yml").exists()
