"""The HTML report renders in a real browser, and its charts hold the computed series."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from analysis_support import CANDIDATES_YAML, END_MS, read_png, take_screenshot

from processor.analysis.charts import PALETTE
from processor.analysis.evaluate.panel import build_panel
from processor.analysis.evaluate.scorecard import Settings, evaluate_candidates
from processor.analysis.report import render_report
from processor.analysis.source import read_event_log
from processor.definitions import catalog_from_dicts

CANDIDATES = ["accounts_3plus_reports", "weekly_logins", "accounts_with_a_login"]
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def report(churn_history: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Any:
    catalog = catalog_from_dicts(yaml.safe_load(CANDIDATES_YAML)["metrics"])
    log = read_event_log(churn_history, catalog, now_ms=END_MS)
    panel = build_panel(log, catalog, CANDIDATES)
    settings = Settings(months=3, resamples=200)
    card = evaluate_candidates(panel, catalog, CANDIDATES, settings)
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(render_report(card, panel, settings), encoding="utf-8")
    return path, panel, card


def _charts(path: Path) -> dict[str, ET.Element]:
    html = path.read_text(encoding="utf-8")
    found = {}
    for chunk in html.split('<svg class="chart"')[1:]:
        element = ET.fromstring('<svg class="chart"' + chunk.split("</svg>")[0] + "</svg>")
        found[element.attrib["data-chart"]] = element
    return found


def test_charts_hold_the_expected_series(report: Any) -> None:
    path, panel, card = report
    charts = _charts(path)
    for name in CANDIDATES:
        line = charts[f"series-{name}"].find(f"{SVG}polyline")
        assert line is not None and line.attrib["data-series"] == name
        drawn = [float(v) if v else None for v in line.attrib["data-values"].split(",")]
        assert drawn == panel.totals[name]
        assert len(line.attrib["points"].split()) == sum(1 for v in drawn if v is not None)
    reports = next(r for r in card.candidates if r.name == "accounts_3plus_reports")
    curves = {
        p.attrib["data-series"]: p
        for p in charts["curve-accounts_3plus_reports"].iter(f"{SVG}polyline")
    }
    attained = [float(v) for v in curves["attained month 1"].attrib["data-values"].split(",")]
    assert attained == reports.leading.curve_attained and len(attained) == 4
    rows = {g.attrib["data-row"]: g for g in charts["leading-effects"].iter(f"{SVG}g")}
    assert set(rows) == set(CANDIDATES)
    lead = reports.leading.retention
    assert float(rows["accounts_3plus_reports"].attrib["data-estimate"]) == lead.estimate
    assert float(rows["accounts_3plus_reports"].attrib["data-low"]) == lead.low
    assert "core-value-effects" in charts
    html = path.read_text(encoding="utf-8")
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org", "")


def test_report_renders_in_a_browser_with_its_charts(report: Any, tmp_path: Path) -> None:
    screenshot = take_screenshot(report[0], tmp_path, 1200, 2400)
    width, height, rows = read_png(screenshot)
    assert (width, height) == (1200, 2400)
    channels = len(rows[0]) // width
    pixels: Counter[bytes] = Counter()
    for row in rows[::4]:
        for x in range(0, len(row), channels * 2):
            pixels[row[x : x + 3]] += 1
    _, most = pixels.most_common(1)[0]
    assert most / sum(pixels.values()) < 0.9, "the page is (nearly) blank"
    assert len(pixels) > 100, "too few colours for charts"
    # The first candidate's colour, drawn solid in its score bars and lines.
    blue = bytes(int(PALETTE[0][i : i + 2], 16) for i in (1, 3, 5))
    assert pixels[blue] > 50, "the charts' colour does not appear on the page"
