"""`nsm grafana`: the dashboards' structure, drill-down links and segment variable, stable uids,
the metric names they use, and the committed files being up to date."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from processor.cli import main
from processor.definitions import Catalog, catalog_from_dicts, load_definitions
from processor.grafana.dashboards import all_dashboards
from processor.grafana.provisioning import GrafanaSettings, grafana_files
from processor.rules.alerts import AlertSettings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = AlertSettings()
ENTITIES = {"key": "account_id", "all": [{"event": "report.sent", "count_at_least": 3}]}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    def metric(name: str, tier: str, parent: str | None = None, **extra: Any) -> dict[str, Any]:
        found = {"name": name, "title": name.replace("_", " ").title(), "tier": tier}
        found.update(window="7d", aggregate={"event": "report.sent", "count": True}, **extra)
        return found | ({"parent": parent} if parent else {})

    return catalog_from_dicts(
        [
            metric(
                "active_accounts", "north_star", segments=["plan", "region"], alert={"drop_pct": 25}
            ),
            metric("reports_sent", "north_star", backup_for="active_accounts"),
            metric("active_users", "diagnostic", "active_accounts", segments=["plan", "seat"]),
            metric("reports_per_user", "granular", "active_users"),
            metric("trials_started", "diagnostic", "active_accounts"),
            metric("builds", "north_star"),
        ]
    )


@pytest.fixture(scope="module")
def boards(catalog: Catalog) -> dict[str, dict[str, Any]]:
    return {board["uid"]: board for board in all_dashboards(catalog, SETTINGS)}


def content_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in board["panels"] if panel["type"] != "row"]


def test_one_overview_one_per_north_star_and_processor_health(boards: dict[str, Any]):
    assert set(boards) == {
        "nsm-overview",
        "nsm-processor",
        "nsm-active_accounts",
        "nsm-reports_sent",
        "nsm-builds",
    }


def test_every_panel_has_title_description_unit_and_the_nsm_datasource(boards: dict[str, Any]):
    for board in boards.values():
        for panel in content_panels(board):
            assert panel["title"] and panel["description"], panel
            assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]
            assert panel["datasource"]["uid"] == "nsm-prometheus"
            assert panel["targets"] and all(
                t["datasource"]["uid"] == "nsm-prometheus" and t["expr"] for t in panel["targets"]
            )


def test_panels_fit_the_grid_without_overlapping(boards: dict[str, Any]):
    for board in boards.values():
        taken: set[tuple[int, int]] = set()
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids))
        for panel in board["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24
            cells = {
                (x, y)
                for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])
            }
            assert not cells & taken, (board["uid"], panel["title"])
            taken |= cells


def test_uids_are_stable_unique_and_short(catalog: Catalog):
    first = [b["uid"] for b in all_dashboards(catalog, SETTINGS)]
    again = [b["uid"] for b in all_dashboards(catalog, SETTINGS)]
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
    uids = [b["uid"] for b in all_dashboards(long_name, SETTINGS)]
    assert all(len(uid) <= 40 and re.fullmatch(r"[a-zA-Z0-9_-]+", uid) for uid in uids)
    assert uids == [b["uid"] for b in all_dashboards(long_name, SETTINGS)]


def test_overview_has_week_over_week_last_week_overlay_and_backup_beside(boards: dict[str, Any]):
    panels = content_panels(boards["nsm-overview"])
    by_title = {p["title"]: p for p in panels}
    stat = by_title["Active Accounts: week over week"]
    assert stat["type"] == "stat" and stat["fieldConfig"]["defaults"]["unit"] == "percentunit"
    assert "offset 1w" in stat["targets"][0]["expr"]
    series = by_title["Active Accounts"]
    assert [t["expr"].count("offset 1w") for t in series["targets"]] == [0, 1]
    backup = by_title["Reports Sent"]
    assert backup["gridPos"]["y"] == series["gridPos"]["y"]
    assert backup["gridPos"]["x"] > series["gridPos"]["x"]
    assert any("/d/nsm-active_accounts?" in link["url"] for link in series["links"])


def test_north_star_dashboard_drills_down_through_its_children(boards: dict[str, Any]):
    board = boards["nsm-active_accounts"]
    panels = {panel["id"]: panel for panel in board["panels"]}
    titles = {p["title"] for p in panels.values()}
    assert {"Active Users", "Reports Per User", "Trials Started"} <= titles
    assert "Builds" not in titles and "Reports Sent" not in titles

    def targets_of(title: str) -> set[str]:
        main = next(p for p in panels.values() if p["title"] == title)
        found = set()
        for link in main["links"]:
            match = re.search(r"viewPanel=(\d+)", link["url"])
            if match:
                found.add(panels[int(match.group(1))]["title"])
        return found

    assert {"Active Users", "Trials Started"} <= targets_of("Active Accounts")
    assert targets_of("Active Users") == {"Active Accounts", "Reports Per User"}
    assert targets_of("Reports Per User") == {"Active Users"}
    assert any(link["url"].startswith("/d/nsm-reports_sent") for link in board["links"])


def test_north_star_dashboard_has_a_segment_variable(boards: dict[str, Any]):
    board = boards["nsm-active_accounts"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["segment"]["query"] == "plan,region,seat"
    assert 'segment="$segment"' in variables["segment_value"]["definition"]
    breakdowns = [p for p in content_panels(board) if "$segment" in p["title"]]
    assert {p["title"] for p in breakdowns} == {
        "Active Accounts by $segment",
        "Active Users by $segment",
    }
    for panel in breakdowns:
        assert 'segment="$segment", segment_value=~"$segment_value"' in panel["targets"][0]["expr"]


def test_processor_health_shows_throughput_lag_quality_and_freshness(boards: dict[str, Any]):
    exprs = " ".join(
        t["expr"] for p in content_panels(boards["nsm-processor"]) for t in p["targets"]
    )
    for name in (
        "nsm_events_processed_total",
        "nsm_consumer_lag",
        "nsm_events_invalid_total",
        "nsm_events_late_total",
        "nsm_events_duplicate_total",
        "nsm_last_event_timestamp_seconds",
    ):
        assert name in exprs


def documented_metrics() -> set[str]:
    text = (ROOT / "docs" / "metrics.md").read_text()
    return set(re.findall(r"^\| `(nsm_[a-z_]+)", text, flags=re.MULTILINE))


def test_queries_use_only_the_documented_metric_names(catalog: Catalog):
    documented = documented_metrics()
    assert "nsm_metric_value" in documented
    files = grafana_files(catalog, SETTINGS, GrafanaSettings())
    used = set(re.findall(r"\bnsm_[a-z_]+", " ".join(files.values())))
    suffixes = ("_bucket",)
    used = {next((u[: -len(s)] for s in suffixes if u.endswith(s)), u) for u in used}
    assert used <= documented | {"nsm_prometheus"}, used - documented


def test_provisioning_files_point_at_the_dashboards_and_the_fixed_datasource(catalog: Catalog):
    files = grafana_files(catalog, SETTINGS, GrafanaSettings())
    datasource = yaml.safe_load(files["provisioning/datasources/prometheus.yml"])
    assert datasource["apiVersion"] == 1
    assert datasource["datasources"][0]["uid"] == "nsm-prometheus"
    provider = yaml.safe_load(files["provisioning/dashboards/nsm.yml"])
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    alerting = yaml.safe_load(files["provisioning/alerting/nsm.yml"])
    assert alerting["apiVersion"] == 1 and alerting["groups"]


def test_committed_grafana_files_are_up_to_date():
    catalog = load_definitions(ROOT / "definitions")
    files = grafana_files(catalog, SETTINGS, GrafanaSettings())
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
    overview = json.loads((tmp_path / "dashboards" / "nsm-overview.json").read_text())
    assert overview["uid"] == "nsm-overview"
    assert (tmp_path / "provisioning" / "alerting" / "nsm.yml").exists()
