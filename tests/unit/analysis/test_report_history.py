"""The HTML report on a short history (too short for the leading indicator) and a long one,
rendered in headless Chromium: empty parts say what they need, counts have whole-number ticks,
dates are readable and the declared backup stands beside the recommended one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from analysis_support import CANDIDATES_YAML, END_MS, LIFECYCLE, read_png, take_screenshot

from processor.analysis.charts import nice_step
from processor.analysis.evaluate.panel import build_panel
from processor.analysis.evaluate.scorecard import Settings, evaluate_candidates
from processor.analysis.report import render_report
from processor.analysis.source import read_event_log
from processor.definitions import catalog_from_dicts
from processor.generate import iter_events, plan_history

CANDIDATES = ["accounts_3plus_reports", "weekly_logins", "accounts_with_a_login"]
# The definitions declare a backup: accounts with a login (a north star backing up the first).
DECLARED = yaml.safe_load(CANDIDATES_YAML)["metrics"]
DECLARED[2] = {**DECLARED[2], "tier": "north_star", "backup_for": "accounts_3plus_reports"}
del DECLARED[2]["parent"]


def long_history() -> list[dict[str, Any]]:
    """Eight months, long enough to follow accounts for six months after their first."""
    config = plan_history(seed=2, accounts=60, days=240, end_ms=END_MS, churn_low_usage=True)
    keep = {"report.sent", "login", *LIFECYCLE}
    return [e for e in iter_events(config) if e["type"] in keep]


def render(events: list[dict[str, Any]], folder: Path) -> tuple[Path, str]:
    catalog = catalog_from_dicts(DECLARED)
    log = read_event_log(events, catalog, now_ms=END_MS)
    panel = build_panel(log, catalog, CANDIDATES)
    settings = Settings(months=6, resamples=200)
    card = evaluate_candidates(panel, catalog, CANDIDATES, settings)
    path = folder / "report.html"
    html = render_report(card, panel, settings)
    path.write_text(html, encoding="utf-8")
    return path, html


@pytest.fixture(scope="module")
def short(churn_history: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory):
    return render(churn_history, tmp_path_factory.mktemp("short"))  # 15 weeks


@pytest.fixture(scope="module")
def long(tmp_path_factory: pytest.TempPathFactory):
    return render(long_history(), tmp_path_factory.mktemp("long"))


def test_a_short_history_says_what_the_leading_indicator_needs(short: tuple[Path, str]):
    _, html = short
    assert "needs 7 months of history (a first month and 6 more, --months 6); this has 3.5" in html
    assert "not measurable: history too short (below)" in html
    # No chart of empty rows, no seven empty curves, no empty cohort table: one note each.
    assert 'data-chart="leading-effects"' not in html
    assert 'data-chart="curve-' not in html and "(0 vs 0 accounts)" not in html
    assert "No cohort can be followed yet" in html
    assert 'data-chart="core-value-effects"' in html  # measurable: 8 weeks fit


def test_a_long_history_shows_every_part(long: tuple[Path, str]):
    _, html = long
    assert "needs 7 months" not in html and "history too short" not in html
    assert 'data-chart="leading-effects"' in html and 'data-chart="curve-' in html
    assert "<td>at start</td>" in html  # a cohort row


@pytest.mark.parametrize("which", ["short", "long"])
def test_the_declared_backup_stands_beside_the_recommended_one(which: str, request):
    _, html = request.getfixturevalue(which)
    assert 'class="declared"' in html
    backup = re.search(
        r"Recommended backup</div><div class=\"name\">([^<]+)</div>(.*?)</div>", html
    )
    assert backup is not None
    if backup.group(1) == "accounts_with_a_login":
        assert "as the definitions declare" in backup.group(2)
    else:
        assert "the definitions declare: <b>accounts_with_a_login</b>" in backup.group(2)


@pytest.mark.parametrize("which", ["short", "long"])
def test_count_axes_have_whole_ticks_and_dates_read_in_full(which: str, request):
    _, html = request.getfixturevalue(which)
    series = html.split("<h2>Weekly values</h2>", 1)[1]
    ticks = re.findall(r'text-anchor="end" fill="#6b7280">([0-9,.]+)</text>', series)
    assert ticks and all("." not in tick for tick in ticks), ticks
    dates = re.findall(r">(\d{1,2} [A-Z][a-z]{2} \d{4})</text>", series)
    assert dates and "19 Nov 2026" not in dates[:1]
    assert re.search(r'text-anchor="end" fill="#6b7280">\d{1,2} [A-Z][a-z]{2} \d{4}<', series)


def test_nice_steps_are_whole_for_counts():
    assert nice_step(187.5, integer=True) == 50
    assert nice_step(3, integer=True) == 1
    assert nice_step(3) == 1  # 0.75 rounds up to a whole step anyway
    assert nice_step(0.3) == 0.1
    assert nice_step(9, integer=True) == 5 and nice_step(9) == 2.5


@pytest.mark.parametrize("which", ["short", "long"])
def test_both_render_in_headless_chromium(which: str, request, tmp_path: Path):
    page, _ = request.getfixturevalue(which)
    screenshot = take_screenshot(page, tmp_path, 1280, 2600)
    width, height, rows = read_png(screenshot)
    assert (width, height) == (1280, 2600)
    channels = len(rows[0]) // width
    # The amber of the notes on the short history; none on the long one.
    amber = bytes([0xFF, 0xFB, 0xEB])
    found = sum(
        row[x : x + 3] == amber for row in rows[::8] for x in range(0, len(row), channels * 4)
    )
    assert (found > 100) == (which == "short"), found
