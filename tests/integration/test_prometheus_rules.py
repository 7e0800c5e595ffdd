"""The generated dashboards and rules against a real Prometheus.

1. Every PromQL expression in every committed panel, template variable and rule (Prometheus and
   Grafana-managed) evaluates without error on the local Prometheus of `make up`.
2. A week and more of history, written as OpenMetrics and imported with
   `promtool tsdb create-blocks-from openmetrics` into a fresh Prometheus started here with the
   committed rules: an injected drop of a north star makes its drop alert pending or firing, a
   steady week keeps it silent, and the north-star panels return data.

`generated_expressions()` lists every expression with where it comes from, so that the same checks
run against a Prometheus that scrapes a real worker.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from processor.definitions import Catalog, Metric, load_definitions
from processor.durations import parse_duration_ms
from processor.rules.alerts import metric_alerts
from tests.integration.private_prometheus import start_prometheus as start_private
from tests.integration.private_prometheus import stop

ROOT = Path(__file__).resolve().parents[2]
RULES_FILE = ROOT / "prometheus" / "rules" / "nsm.yml"
# ---- what the generated files ask Prometheus ---------------------------------------------------


def concrete(expr: str) -> str:
    """Plain PromQL: Grafana's rate interval as 1m, every segment variable as "all values"."""
    expr = expr.replace("$__rate_interval", "1m")
    expr = re.sub(r"\$\{segment_[A-Za-z0-9_]+\}", ".*", expr)
    label_values = re.fullmatch(r"label_values\((.*), *[a-z_]+\)", expr.strip(), re.DOTALL)
    return label_values.group(1) if label_values else expr


def all_panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, also those inside collapsed rows."""
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_expressions(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in all_panels(board):
        for target in panel.get("targets", []):
            yield f"{board['uid']} / {panel['title']} / {target['refId']}", concrete(target["expr"])
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            yield f"{board['uid']} / ${variable['name']}", concrete(variable["query"]["query"])
    for annotation in board["annotations"]["list"]:
        if "expr" in annotation:
            yield f"{board['uid']} / annotation {annotation['name']}", annotation["expr"]


def generated_expressions() -> list[tuple[str, str]]:
    """(where, PromQL) for every expression in the committed dashboards and rules."""
    found: list[tuple[str, str]] = []
    for path in sorted((ROOT / "grafana" / "dashboards").glob("*.json")):
        found += dashboard_expressions(json.loads(path.read_text()))
    for group in yaml.safe_load(RULES_FILE.read_text())["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                found.append((f"rule {rule['record']}", rule["expr"]))
                continue
            found.append((f"rule {rule['alert']}", rule["expr"]))
            templates = re.findall(r"query `([^`]*)`", rule["annotations"]["description"])
            templates += re.findall(r'query "([^"]*)"', rule["annotations"].get("explain", ""))
            found += [(f"rule {rule['alert']} / annotations", t) for t in templates]
    alerting = yaml.safe_load((ROOT / "grafana/provisioning/alerting/nsm.yml").read_text())
    for group in alerting["groups"]:
        for rule in group["rules"]:
            for step in rule["data"]:
                if "expr" in step["model"]:
                    found.append(
                        (f"grafana {rule['title']} / {step['refId']}", step["model"]["expr"])
                    )
    return found


def query(base_url: str, expr: str) -> dict[str, Any]:
    url = f"{base_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:  # 400 carries the parse error in its body
        return json.loads(error.read())


def get(base_url: str, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base_url}{path}", timeout=10) as response:
        return json.loads(response.read())


EXPRESSIONS = generated_expressions()


def test_the_generated_files_hold_expressions():
    sources = {where.split(" ")[0] for where, _ in EXPRESSIONS}
    assert {"nsm-overview", "nsm-processor", "rule", "grafana"} <= sources
    assert len(EXPRESSIONS) > 50


@pytest.mark.parametrize(("where", "expr"), EXPRESSIONS, ids=[w for w, _ in EXPRESSIONS])
def test_every_expression_evaluates_without_error(prometheus_url: str, where: str, expr: str):
    answer = query(prometheus_url, expr)
    assert answer["status"] == "success", f"{where}: {answer.get('error')}\n{expr}"


def test_local_prometheus_loads_the_generated_rules(prometheus_url: str):
    # The local Prometheus reads prometheus/rules/*.yml; a reload picks up a regenerated file.
    request = urllib.request.Request(f"{prometheus_url}/-/reload", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass
    groups = get(prometheus_url, "/api/v1/rules")["data"]["groups"]
    loaded = {rule["name"] for g in groups if g["file"].endswith("nsm.yml") for rule in g["rules"]}
    committed = {
        rule.get("alert") or rule["record"]
        for group in yaml.safe_load(RULES_FILE.read_text())["groups"]
        for rule in group["rules"]
    }
    assert loaded == committed


# ---- a fresh Prometheus with a week of imported history -----------------------------------------

STEP_S = 300
HISTORY_S = 8 * 24 * 3600
BASELINE = 200.0


def openmetrics_history(catalog: Catalog, now: float, dropped: Metric | None) -> str:
    """Every metric steady at BASELINE for eight days up to a few seconds ago; `dropped` falls to
    a third for the last `for` + 20 minutes, so "now" lies inside the drop. Every metric is ready
    and covers its window all along."""
    lines = ["# TYPE nsm_metric_value gauge"]
    last = int(now) - 20
    times = range(last - HISTORY_S, last + 1, STEP_S)
    drop_from = float("inf")
    if dropped is not None and dropped.alert is not None:
        drop_from = last - parse_duration_ms(dropped.alert.for_) // 1000 - 20 * 60
    for metric in catalog:
        series = [("", "")] + [(s, v) for s in metric.segments for v in ("alpha", "beta")]
        for segment, value in series:
            labels = (
                f'metric="{metric.name}",tier="{metric.tier}",segment="{segment}",'
                f'segment_value="{value}",job="nsm",instance="worker:6066"'
            )
            level = BASELINE if not segment else BASELINE / 2
            for t in times:
                v = level / 3 if metric is dropped and t >= drop_from else level
                lines.append(f"nsm_metric_value{{{labels}}} {v} {t}")
    for name in ("nsm_metric_ready", "nsm_metric_window_coverage_ratio"):
        lines.append(f"# TYPE {name} gauge")
        for metric in catalog:
            labels = f'metric="{metric.name}",job="nsm",instance="worker:6066"'
            lines += [f"{name}{{{labels}}} 1 {t}" for t in times]
    return "\n".join(lines) + "\n# EOF\n"


def start_prometheus(folder: Path, history: str) -> tuple[str, subprocess.Popen[bytes]]:
    """A Prometheus of its own on a free port, over the imported history, with the committed rules
    evaluated every second."""
    data, source = folder / "data", folder / "history.om"
    source.write_text(history)
    imported = subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert imported.returncode == 0, imported.stdout + imported.stderr
    config = {
        "global": {"evaluation_interval": "1s", "scrape_interval": "15s"},
        "rule_files": [str(RULES_FILE)],
    }
    return start_private(folder, config, retention="30d")


def alert_states(url: str) -> dict[str, str]:
    """Alert name -> state (inactive, pending, firing) of every loaded alerting rule."""
    groups = get(url, "/api/v1/rules?type=alert")["data"]["groups"]
    return {rule["name"]: rule["state"] for group in groups for rule in group["rules"]}


def wait_for_state(url: str, alert: str, states: set[str], timeout_s: float = 60) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    while True:
        found = alert_states(url)
        if found.get(alert) in states or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_definitions(ROOT / "definitions")


@pytest.fixture(scope="module")
def dropped_north_star(catalog: Catalog) -> Metric:
    for metric in catalog.north_stars():
        if metric.alert is not None and metric.alert.drop_pct is not None:
            return metric
    pytest.fail("no north star in definitions/ has an alert with drop_pct")


@pytest.fixture(scope="module")
def dropped_prometheus(
    tmp_path_factory: pytest.TempPathFactory, catalog: Catalog, dropped_north_star: Metric
) -> Iterator[str]:
    history = openmetrics_history(catalog, time.time(), dropped_north_star)
    url, process = start_prometheus(tmp_path_factory.mktemp("dropped"), history)
    yield url
    stop(process)


@pytest.fixture(scope="module")
def steady_prometheus(tmp_path_factory: pytest.TempPathFactory, catalog: Catalog) -> Iterator[str]:
    history = openmetrics_history(catalog, time.time(), None)
    url, process = start_prometheus(tmp_path_factory.mktemp("steady"), history)
    yield url
    stop(process)


def metric_alert_names(catalog: Catalog) -> set[str]:
    return {spec.name for metric in catalog for spec in metric_alerts(metric)}


def test_an_injected_drop_makes_the_north_star_alert_pending_or_firing(
    dropped_prometheus: str, catalog: Catalog, dropped_north_star: Metric
):
    drop_alert = next(s for s in metric_alerts(dropped_north_star) if s.kind == "drop").name
    states = wait_for_state(dropped_prometheus, drop_alert, {"pending", "firing"})
    assert states.get(drop_alert) in {"pending", "firing"}, states
    # Only that alert: the others held steady, and a third of the baseline is above any floor.
    others = {n: states[n] for n in metric_alert_names(catalog) - {drop_alert}}
    assert set(others.values()) == {"inactive"}, others
    active = get(dropped_prometheus, "/api/v1/alerts")["data"]["alerts"]
    mine = [a for a in active if a["labels"]["alertname"] == drop_alert]
    assert mine and mine[0]["labels"]["metric"] == dropped_north_star.name
    assert mine[0]["labels"]["tier"] == "north_star" and mine[0]["labels"]["severity"]
    assert float(mine[0]["value"]) == pytest.approx(BASELINE / 3)


def test_a_steady_week_keeps_every_metric_alert_silent(steady_prometheus: str, catalog: Catalog):
    # No worker is scraped here, so NSMProcessorDown going pending shows that the rules run.
    states = wait_for_state(steady_prometheus, "NSMProcessorDown", {"pending", "firing"})
    assert states.get("NSMProcessorDown") in {"pending", "firing"}, states
    time.sleep(3)  # a few more evaluations
    states = alert_states(steady_prometheus)
    metric_states = {name: states[name] for name in metric_alert_names(catalog)}
    assert metric_states and set(metric_states.values()) == {"inactive"}, metric_states


def north_star_expressions(catalog: Catalog) -> list[tuple[str, str]]:
    """Expressions of the overview and of each north star's own panels on its dashboard."""
    found = []
    for path in sorted((ROOT / "grafana" / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        for star in catalog.north_stars():
            title = star.title or star.name
            if board["uid"] == "nsm-overview" or title in board["title"]:
                for where, expr in dashboard_expressions(board):
                    panel = where.split(" / ")[1]
                    if board["uid"] == "nsm-overview" or panel.startswith(title):
                        found.append((where, expr))
    return found


def test_north_star_panels_return_data(dropped_prometheus: str, catalog: Catalog):
    expressions = north_star_expressions(catalog)
    assert len(expressions) >= 4 * len(catalog.north_stars())
    empty = [
        where
        for where, expr in expressions
        if not query(dropped_prometheus, expr)["data"]["result"]
        # An event time and the readiness series, which only a worker exports.
        and "Newest event age" not in where
        and " / Ready / " not in where
    ]
    assert not empty
