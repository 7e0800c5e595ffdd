"""What on-call gets from the generated rules: the seasonal anomaly alert and its baselines, the
explain command in every metric alert, and absolute runbook links everywhere."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from processor.cli import main
from processor.definitions import Catalog, catalog_from_dicts, load_definitions
from processor.rules.alerts import AlertSettings, all_alerts
from processor.rules.grafana_alerts import grafana_alerting
from processor.rules.prometheus import rule_groups
from processor.rules.promtool_tests import EXTERNAL_URL, promtool_test_files
from processor.rules.runbook import runbook_text

ROOT = Path(__file__).resolve().parents[2]
BASE = "https://wiki.example.com/nsm/runbook"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return catalog_from_dicts(
        [
            {
                "name": "active_accounts",
                "tier": "north_star",
                "window": "7d",
                "aggregate": {"event": "report.sent", "distinct": "account_id"},
                "alert": {"drop_pct": 30, "anomaly": {"deviations": 2, "for": "3d"}},
            },
            {
                "name": "reports_sent",
                "tier": "diagnostic",
                "parent": "active_accounts",
                "window": "7d",
                "aggregate": {"event": "report.sent", "count": True},
                "alert": {"anomaly": {}},
            },
        ]
    )


def _rules(catalog: Catalog, settings: AlertSettings) -> dict[str, dict[str, Any]]:
    found = {}
    for group in rule_groups(catalog, settings)["groups"]:
        for rule in group["rules"]:
            found[rule.get("alert") or rule["record"]] = rule
    return found


def test_the_seasonal_baseline_is_recorded_for_the_anomaly_metrics(catalog: Catalog):
    groups = rule_groups(catalog, AlertSettings())["groups"]
    assert groups[0]["name"] == "nsm-seasonal-baselines"
    records = {r["record"]: r["expr"] for r in groups[0]["rules"]}
    weeks = records["nsm:metric_value:same_hour_weeks_ago"]
    assert [f"offset {n}w" in weeks for n in (1, 2, 3, 4)] == [True] * 4
    assert 'metric=~"active_accounts|reports_sent"' in weeks
    assert "quantile without (weeks_ago) (0.5," in records["nsm:metric_value:seasonal_centre"]
    assert records["nsm:metric_value:seasonal_spread"].startswith("1.4826\n")
    assert "count without (weeks_ago)" in records["nsm:metric_value:seasonal_weeks"]


def test_the_anomaly_alert_uses_its_own_thresholds_and_for(catalog: Catalog):
    rules = _rules(catalog, AlertSettings())
    mine, default = rules["NSMActiveAccountsAnomaly"], rules["NSMReportsSentAnomaly"]
    assert mine["for"] == "3d" and default["for"] == "8d"
    assert "2 * nsm:metric_value:seasonal_spread" in mine["expr"]
    assert "0.1 * nsm:metric_value:seasonal_centre" in mine["expr"]
    assert 'nsm:metric_value:seasonal_weeks{metric="active_accounts"} == 4' in mine["expr"]
    assert "3 * nsm:metric_value:seasonal_spread" in default["expr"]


def test_every_metric_alert_carries_the_explain_command(catalog: Catalog):
    for name, rule in _rules(catalog, AlertSettings()).items():
        if "alert" not in rule or rule["labels"]["tier"] == "processor":
            continue
        metric = rule["labels"]["metric"]
        assert rule["annotations"]["explain"].startswith(
            f"nsm explain {metric} --prometheus {{{{ $externalURL }}}} --to "
        ), name
    given = _rules(catalog, AlertSettings(prometheus_url="http://prom.internal:9090"))
    command = given["NSMActiveAccountsDrop"]["annotations"]["explain"]
    assert command.startswith("nsm explain active_accounts --prometheus http://prom.internal:9090")


def test_promtool_renders_the_exact_command_with_the_time_it_fired(tmp_path: Path):
    catalog = load_definitions(ROOT / "definitions")
    tests = yaml.safe_load(promtool_test_files(catalog, AlertSettings())["nsm_metrics_test.yml"])
    fired = [
        (check["eval_time"], alert["exp_annotations"]["explain"])
        for test in tests["tests"]
        for check in test["alert_rule_test"]
        for alert in check["exp_alerts"]
        if check["alertname"].endswith("Drop")
    ]
    assert fired
    for eval_time, command in fired:
        minutes = int(eval_time.removesuffix("m"))
        assert command.endswith(f"--prometheus {EXTERNAL_URL} --to {minutes * 60_000}")


def _links(text: str) -> list[str]:
    return re.findall(r"runbook_url: (\S+)", text)


def test_runbook_url_makes_every_link_absolute(catalog: Catalog, tmp_path: Path):
    result = CliRunner().invoke(
        main,
        ["rules", "--definitions", str(ROOT / "definitions"), "--runbook-url", BASE,
         "--unit-tests", str(tmp_path / "tests"), "--runbook", str(tmp_path / "runbook.md")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    links = _links(result.stdout)
    assert links and all(link.startswith(f"{BASE}#nsm") for link in links)
    anchors = {f"#{h.lower()}" for h in re.findall(r"^### (\S+)", runbook_text(
        load_definitions(ROOT / "definitions"), AlertSettings()), flags=re.MULTILINE)}  # fmt: skip
    assert {link.removeprefix(BASE) for link in links} <= anchors
    grafana = CliRunner().invoke(
        main,
        ["grafana", "--definitions", str(ROOT / "definitions"), "--out", str(tmp_path / "g"),
         "--runbook-url", BASE],
    )  # fmt: skip
    assert grafana.exit_code == 0, grafana.output
    alerting = (tmp_path / "g" / "provisioning" / "alerting" / "nsm.yml").read_text()
    assert _links(alerting) and all(link.startswith(f"{BASE}#") for link in _links(alerting))
    boards = [json.loads(p.read_text()) for p in (tmp_path / "g" / "dashboards").glob("*.json")]
    urls = [
        link["url"]
        for board in boards
        for panel in _panels(board)
        for link in panel.get("links", [])
        if "runbook" in link["title"].lower()
    ]
    assert urls and all(url.startswith(f"{BASE}#") for url in urls)
    # The promtool tests expect the same absolute links, and pass against the rules.
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "nsm.yml").write_text(result.stdout)
    run = subprocess.run(
        ["promtool", "test", "rules", str(tmp_path / "tests" / "nsm_metrics_test.yml")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]


def _panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in board["panels"]:
        found.append(panel)
        found += panel.get("panels", [])
    return found


@pytest.mark.parametrize("base", ["docs/runbook.md#x", "wiki/runbook", "ftp://host/runbook"])
def test_a_runbook_url_that_is_not_absolute_http_is_refused(base: str):
    result = CliRunner().invoke(main, ["rules", "--runbook-url", base])
    assert result.exit_code == 2
    assert "not an absolute http(s) URL" in result.output


def test_without_runbook_url_the_command_says_links_are_relative():
    result = CliRunner().invoke(main, ["rules", "--definitions", str(ROOT / "definitions")])
    assert result.exit_code == 0
    assert "runbook links are relative" in result.stderr
    assert "NSM_RUNBOOK_URL" in result.stderr


def test_grafana_alerts_carry_the_command_and_the_anomaly(catalog: Catalog):
    settings = AlertSettings(runbook_url=BASE)
    rules = {
        r["title"]: r
        for g in grafana_alerting(catalog, settings, "my-prometheus")["groups"]
        for r in g["rules"]
    }
    assert {s.name for s in all_alerts(catalog, settings)} == set(rules)
    anomaly = rules["NSMActiveAccountsAnomaly"]
    assert anomaly["for"] == "3d"
    assert anomaly["annotations"]["explain"] == (
        "nsm explain active_accounts --prometheus $NSM_PROMETHEUS_URL"
    )
    assert {step.get("datasourceUid") for step in anomaly["data"]} >= {"my-prometheus"}
