"""`nsm rules`: the Prometheus rules, their promtool unit tests, the Grafana-managed equivalent and
the runbook, from a catalogue built here and from the committed example definitions."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from processor.cli import main
from processor.definitions import Catalog, catalog_from_dicts, load_definitions
from processor.rules.alerts import AlertSettings, all_alerts
from processor.rules.grafana_alerts import grafana_alerting
from processor.rules.prometheus import prometheus_rules_text, rule_groups
from processor.rules.promtool_tests import humanize, humanize_duration, promtool_test_files
from processor.rules.runbook import runbook_text

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = AlertSettings()
ENTITIES = {"key": "account_id", "all": [{"event": "report.sent", "count_at_least": 3}]}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return catalog_from_dicts(
        [
            {
                "name": "active_accounts",
                "title": "Active accounts",
                "tier": "north_star",
                "window": "7d",
                "segments": ["plan"],
                "entities": ENTITIES,
                "alert": {"drop_pct": 30, "for": "15m", "min_baseline": 40, "floor": 5},
            },
            {
                "name": "reports_sent",
                "tier": "north_star",
                "backup_for": "active_accounts",
                "window": "7d",
                "aggregate": {"event": "report.sent", "count": True},
                "alert": {"drop_pct": 50, "for": "30m"},
            },
            {
                "name": "active_users",
                "tier": "diagnostic",
                "parent": "active_accounts",
                "window": "7d",
                "segments": ["plan", "region"],
                "aggregate": {"event": "*", "distinct": "user_id"},
                "alert": {"floor": 2500, "for": "10m"},
            },
            {
                "name": "reports_per_user",
                "tier": "granular",
                "parent": "active_users",
                "window": "7d",
                "formula": "reports_sent / active_users",
            },
        ]
    )


def rules_by_name(catalog: Catalog) -> dict[str, dict]:
    groups = rule_groups(catalog, SETTINGS)["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def test_each_alert_setting_gives_its_alerts_and_nothing_else(catalog: Catalog):
    names = set(rules_by_name(catalog))
    assert names == {
        "NSMActiveAccountsDrop",
        "NSMActiveAccountsBelowFloor",
        "NSMReportsSentDrop",
        "NSMActiveUsersBelowFloor",
        "NSMProcessorDown",
        "NSMWorkerDown",
        "NSMDataStale",
        "NSMConsumerLagGrowing",
        "NSMInvalidEventsHigh",
        "NSMMetricNotReady",
    }


def test_drop_compares_with_last_week_and_is_guarded_by_min_baseline(catalog: Catalog):
    rules = rules_by_name(catalog)
    guarded, unguarded = rules["NSMActiveAccountsDrop"], rules["NSMReportsSentDrop"]
    assert "< 0.7 * max by (metric, tier)" in guarded["expr"]
    assert 'segment=""} offset 1w) >= 40' in guarded["expr"]
    assert guarded["for"] == "15m"
    assert "< 0.5 * " in unguarded["expr"] and "offset 1w) >=" not in unguarded["expr"]
    assert ") < 2500\n)" in rules["NSMActiveUsersBelowFloor"]["expr"]


def test_metric_alerts_hold_only_while_the_metric_is_ready_and_fully_covered(catalog: Catalog):
    for name, rule in rules_by_name(catalog).items():
        if rule["labels"]["tier"] != "processor":
            metric = rule["labels"]["metric"]
            expr = rule["expr"]
            assert f'nsm_metric_ready{{metric="{metric}"}}) == 1' in expr, name
            assert f'nsm_metric_window_coverage_ratio{{metric="{metric}"}}) >= 1' in expr, name
    stuck = rules_by_name(catalog)["NSMMetricNotReady"]
    assert stuck["expr"] == "max by (metric) (nsm_metric_ready) == 0"
    assert stuck["for"] == "30m"
    # The metric it fires for is the series' own label, named in the description.
    assert "metric" not in stuck["labels"]
    assert "{{ $labels.metric }}" in stuck["annotations"]["description"]


def test_every_alert_has_summary_description_severity_labels_and_runbook(catalog: Catalog):
    runbook = runbook_text(catalog, SETTINGS)
    headings = {line[4:].lower() for line in runbook.splitlines() if line.startswith("### ")}
    for name, rule in rules_by_name(catalog).items():
        labels, notes = rule["labels"], rule["annotations"]
        assert labels["severity"] in {"critical", "warning", "info"}
        assert labels["tier"], name
        assert notes["summary"]
        anchor = notes["runbook_url"].split("#", 1)[1]
        assert anchor == name.lower() and anchor in headings, name
        if name == "NSMMetricNotReady":
            continue  # per metric label of its series (test above)
        assert labels["metric"], name
        # The description states the value now and asks Prometheus for last week's.
        assert "$value" in notes["description"], name
        assert "query `" in notes["description"] and "offset 1w" in notes["description"], name
    assert rules_by_name(catalog)["NSMActiveAccountsDrop"]["labels"] == {
        "severity": "critical",
        "metric": "active_accounts",
        "tier": "north_star",
    }


def test_runbook_sections_name_the_diagnostics_below_and_the_segments(catalog: Catalog):
    runbook = runbook_text(catalog, SETTINGS)
    section = runbook.split("### NSMActiveAccountsDrop", 1)[1].split("\n### ", 1)[0]
    assert "`active_users`" in section and "`plan`" in section
    first = section.split("**First checks.**", 1)[1].strip().splitlines()[0]
    assert first.startswith("1. `nsm explain active_accounts --prometheus PROMETHEUS_URL --to T`")
    assert "processor" in section.lower()


@pytest.mark.parametrize(
    ("value", "printed"),
    [(0, "0"), (40, "40"), (1500, "1.5k"), (2_500_000, "2.5M"), (0.25, "250m"), (12345, "12.35k")],
)
def test_humanize_prints_as_prometheus_does(value: float, printed: str):
    assert humanize(value) == printed


def test_humanize_duration_prints_as_prometheus_does():
    assert humanize_duration(2400) == "40m 0s"
    assert humanize_duration(3661) == "1h 1m 1s"
    assert humanize_duration(90061) == "1d 1h 1m 1s"


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, check=False)


def write_rules_and_tests(catalog: Catalog, folder: Path, rules_text: str | None = None) -> None:
    (folder / "rules").mkdir()
    (folder / "tests").mkdir()
    text = rules_text if rules_text is not None else prometheus_rules_text(catalog, SETTINGS)
    (folder / "rules" / "nsm.yml").write_text(text)
    for name, content in promtool_test_files(catalog, SETTINGS).items():
        (folder / "tests" / name).write_text(content)


def test_promtool_accepts_the_rules_and_their_unit_tests_pass(catalog: Catalog, tmp_path: Path):
    write_rules_and_tests(catalog, tmp_path)
    check = _promtool("check", "rules", "rules/nsm.yml", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 10 rules found" in check.stdout
    run = _promtool(
        "test",
        "rules",
        *sorted(p.name for p in (tmp_path / "tests").iterdir()),
        cwd=tmp_path / "tests",
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_unit_tests_cover_firing_and_silence(catalog: Catalog):
    files = promtool_test_files(catalog, SETTINGS)
    tests = [t for text in files.values() for t in yaml.safe_load(text)["tests"]]
    names = " / ".join(t["name"] for t in tests)
    for needle in (
        "NSMActiveAccountsDrop: a drop past 30% fires",
        "NSMActiveAccountsDrop: below min_baseline 40 last week, a drop stays silent",
        "NSMActiveAccountsDrop: the first week, without history, stays silent",
        "NSMActiveAccountsDrop: a steady week stays silent",
        "NSMActiveUsersBelowFloor: below the floor of 2500 fires",
        "no worker discovered at all",
        "events stop: NSMDataStale",
        "NSMActiveAccountsDrop: the drop while not ready (being rebuilt) stays silent",
        "NSMActiveAccountsBelowFloor: below the floor while a window the topic no longer fully "
        "holds stays silent",
        "a rebuild stuck for 30m: NSMMetricNotReady",
        "a worker without partitions beside the exporter: silent",
    ):
        assert needle in names
    checks = [c for t in tests for c in t["alert_rule_test"]]
    assert any(c["exp_alerts"] for c in checks) and any(not c["exp_alerts"] for c in checks)


@pytest.mark.parametrize(
    ("broken", "replacement", "tests"),
    [
        ("< 0.7 * ", "< 0.9 * ", "nsm_metrics_test.yml"),  # a weaker drop threshold
        (") >= 40", ") >= 0", "nsm_metrics_test.yml"),  # the min_baseline guard lost
        (") < 2500", ") <= 2500", "nsm_metrics_test.yml"),  # the floor compared the wrong way
        ("or vector(0)) < 1", ") < 1", "nsm_processor_test.yml"),  # absent processor is silent
        ("> 1800", "> 3600", "nsm_processor_test.yml"),  # stale data noticed too late
        ('"}) == 1\n', '"}) >= 0\n', "nsm_metrics_test.yml"),  # readiness guard lost
        ('"}) >= 1\n', '"}) >= 0\n', "nsm_metrics_test.yml"),  # coverage guard lost
        # a worker without partitions (0 for every metric) taken for the exporter's answer
        (
            "max by (metric) (nsm_metric_ready) == 0",
            "min by (metric) (nsm_metric_ready) == 0",
            "nsm_processor_test.yml",
        ),
    ],
)
def test_the_unit_tests_fail_on_a_wrong_rule(
    catalog: Catalog, tmp_path: Path, broken: str, replacement: str, tests: str
):
    text = prometheus_rules_text(catalog, SETTINGS)
    assert broken in text
    write_rules_and_tests(catalog, tmp_path, text.replace(broken, replacement))
    run = _promtool("test", "rules", tests, cwd=tmp_path / "tests")
    assert run.returncode != 0 and "FAILED" in run.stdout + run.stderr


# ---- Grafana-managed alerts ---------------------------------------------------------------

UID = re.compile(r"^[a-zA-Z0-9_-]{1,40}$")


def test_grafana_alert_provisioning_has_the_fields_grafana_requires(catalog: Catalog):
    document = grafana_alerting(catalog, SETTINGS)
    assert document["apiVersion"] == 1
    uids = []
    for group in document["groups"]:
        assert set(group) >= {"orgId", "name", "folder", "interval", "rules"}
        assert re.fullmatch(r"\d+[smh]", group["interval"])
        for rule in group["rules"]:
            assert set(rule) >= {
                "uid",
                "title",
                "condition",
                "data",
                "for",
                "annotations",
                "labels",
                "noDataState",
                "execErrState",
            }
            assert UID.match(rule["uid"]), rule["uid"]
            uids.append(rule["uid"])
            assert rule["noDataState"] in {"NoData", "Alerting", "OK"}
            assert rule["execErrState"] in {"Error", "Alerting", "OK"}
            ref_ids = [step["refId"] for step in rule["data"]]
            assert rule["condition"] in ref_ids and len(set(ref_ids)) == len(ref_ids)
            for step in rule["data"]:
                assert set(step) >= {"refId", "relativeTimeRange", "datasourceUid", "model"}
                assert set(step["relativeTimeRange"]) == {"from", "to"}
                assert step["model"]["refId"] == step["refId"]
                if step["datasourceUid"] == "__expr__":
                    source = step["model"]["expression"]
                    assert source in ref_ids and ref_ids.index(source) < ref_ids.index(
                        step["refId"]
                    )
                else:
                    assert step["datasourceUid"] == "nsm-prometheus" and step["model"]["expr"]
    assert len(uids) == len(set(uids))


def test_grafana_alerts_are_the_prometheus_rules(catalog: Catalog):
    prometheus = rules_by_name(catalog)
    grafana = {
        rule["title"]: rule
        for group in grafana_alerting(catalog, SETTINGS)["groups"]
        for rule in group["rules"]
    }
    assert set(grafana) == set(prometheus)
    for name, rule in grafana.items():
        query = next(step for step in rule["data"] if step["refId"] == "QUERY")
        assert query["model"]["expr"] == prometheus[name]["expr"].rstrip("\n")
        assert rule["for"] == prometheus[name]["for"]
        assert rule["labels"] == prometheus[name]["labels"]
        notes = rule["annotations"]
        assert notes["runbook_url"] == prometheus[name]["annotations"]["runbook_url"]
        assert "$values.VALUE" in notes["description"]
        if name != "NSMMetricNotReady":  # fires per metric: no single value one week earlier
            assert "$values.LAST_WEEK_VALUE" in notes["description"]


# ---- the committed files and the command --------------------------------------------------


def test_committed_rules_tests_and_runbook_are_up_to_date():
    catalog = load_definitions(ROOT / "definitions")
    stale = "out of date: run `make generate`"
    rules = (ROOT / "prometheus" / "rules" / "nsm.yml").read_text()
    assert rules == prometheus_rules_text(catalog, SETTINGS), f"prometheus/rules/nsm.yml {stale}"
    for name, content in promtool_test_files(catalog, SETTINGS).items():
        path = ROOT / "prometheus" / "tests" / name
        assert path.exists() and path.read_text() == content, f"prometheus/tests/{name} {stale}"
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    assert runbook == runbook_text(catalog, SETTINGS), f"docs/runbook.md {stale}"


def test_example_definitions_alert_on_every_north_star_with_an_alert():
    catalog = load_definitions(ROOT / "definitions")
    names = {spec.metric for spec in all_alerts(catalog, SETTINGS)}
    assert {m.name for m in catalog.north_stars() if m.alert is not None} <= names


def test_command_prints_the_rules_and_writes_tests_and_runbook(catalog: Catalog, tmp_path: Path):
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "rules",
            "--definitions",
            str(ROOT / "definitions"),
            "--unit-tests",
            str(tmp_path / "tests"),
            "--runbook",
            str(tmp_path / "runbook.md"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["groups"]
    assert sorted(p.name for p in (tmp_path / "tests").iterdir()) == [
        "nsm_anomaly_test.yml",
        "nsm_metrics_test.yml",
        "nsm_processor_test.yml",
    ]
    assert (tmp_path / "runbook.md").read_text().startswith("# Runbook")


def test_command_fails_without_definitions(tmp_path: Path):
    result = CliRunner().invoke(main, ["rules", "--definitions", str(tmp_path / "missing")])
    assert result.exit_code == 2
    assert "missing" in result.output
