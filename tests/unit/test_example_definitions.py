"""The example definitions: valid, shaped as the KPI hierarchy they document, and fitted to the
events `nsm generate` produces."""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.definitions import check_definitions, load_definitions
from processor.definitions.model import Catalog
from processor.generate import iter_events, plan_history
from processor.times import parse_time as parse_time_ms

DEFINITIONS = Path(__file__).resolve().parents[2] / "definitions"
NORTH_STAR = "weekly_active_accounts_3plus_reports"
BACKUP = "weekly_accounts_3plus_report_users"
CANDIDATES = {
    "weekly_collaborative_workspaces",
    "monthly_active_integrations",
    "weekly_projects_successful_build",
    "weekly_accounts_7_seats_key_workflows",
    "weekly_accounts_5plus_reports_viewed_by_non_admins",
}
GTM = {
    "opportunities_created_30d",
    "deals_won_30d",
    "win_rate_30d",
    "pipeline_30d",
    "ad_spend_30d",
    "new_business_arr_30d",
    "roas_30d",
    "magic_number_90d",
}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_definitions(DEFINITIONS)


def test_the_examples_validate_without_errors_or_warnings() -> None:
    _, problems = check_definitions(DEFINITIONS)
    assert [str(p) for p in problems] == []


def test_one_north_star_and_its_backup(catalog: Catalog) -> None:
    north_stars = {m.name: m for m in catalog.north_stars()}
    assert set(north_stars) == {NORTH_STAR, BACKUP}
    assert north_stars[NORTH_STAR].backup_for is None
    assert north_stars[BACKUP].backup_for == NORTH_STAR
    for metric in north_stars.values():
        assert metric.segments == ["plan", "segment", "region"]
        assert metric.alert is not None
    alert = north_stars[NORTH_STAR].alert
    assert alert is not None
    assert (alert.drop_pct, alert.for_) == (20, "1h")
    assert alert.min_baseline is not None and alert.floor is not None


def test_every_candidate_and_gtm_metric_hangs_under_a_north_star(catalog: Catalog) -> None:
    for name in CANDIDATES | GTM:
        assert catalog[name].tier == "diagnostic"
    for metric in catalog:
        if metric.tier == "diagnostic":
            assert metric.parent is not None
            assert catalog[metric.parent].tier == "north_star"
        elif metric.tier == "granular":
            assert metric.parent is not None
            assert catalog[metric.parent].tier in ("diagnostic", "north_star")


def test_the_gtm_formulas(catalog: Catalog) -> None:
    assert catalog["win_rate_30d"].formula == "deals_won_30d / opportunities_created_30d"
    assert catalog["win_rate_30d"].segments == ["rep", "segment", "channel"]
    assert catalog["roas_30d"].formula == "new_business_arr_30d / ad_spend_30d"
    assert catalog["roas_30d"].segments == ["channel", "campaign"]
    assert catalog["magic_number_90d"].window == "90d"


def test_the_examples_measure_something_on_a_generated_stream(catalog: Catalog) -> None:
    engine = pytest.importorskip("processor.engine")
    end_ms = parse_time_ms("2026-11-20T00:00:00Z")
    config = plan_history(seed=3, accounts=80, days=35, end_ms=end_ms)
    result = engine.compute_metrics(iter_events(config), catalog, now_ms=end_ms).to_json()
    values = {name: metric["value"] for name, metric in result["metrics"].items()}
    assert set(values) == set(catalog.metrics)
    for name in (NORTH_STAR, BACKUP, *CANDIDATES):
        assert values[name] > 0, name
        assert sum(result["metrics"][name]["segments"]["plan"].values()) == values[name]
    for name in ("opportunities_created_30d", "deals_won_30d", "ad_spend_30d", "pipeline_30d"):
        assert values[name] > 0, name
    assert 0 < values["win_rate_30d"] < 1
    assert values["roas_30d"] > 0
    assert values["magic_number_90d"] > 0
