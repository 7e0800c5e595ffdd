"""On a history where accounts sending few reports churn, the report metric leads retention and
ranks above a vanity count of logins; the per-account view follows the engine exactly."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import orjson
import pytest
from analysis_support import CANDIDATES_YAML, END_MS, write_definitions, write_events
from click.testing import CliRunner

from processor.analysis.evaluate.criteria import flags
from processor.analysis.evaluate.panel import Panel, build_panel, week_ends
from processor.analysis.evaluate.scorecard import Scorecard, Settings, evaluate_candidates
from processor.analysis.source import read_event_log
from processor.cli import main
from processor.definitions import catalog_from_dicts, load_definitions
from processor.events import format_time, parse_time

CANDIDATES = ["accounts_3plus_reports", "weekly_logins", "accounts_with_a_login"]
# The generator churns low-usage accounts 2 to 7 weeks after their first month: three months
# after it is when the difference shows, and what 15 weeks of history can measure.
SETTINGS = Settings(months=3, retention_weeks=8, resamples=400, seed=0)


@pytest.fixture(scope="module")
def evaluated(history: tuple[Path, Path]) -> tuple[Panel, Scorecard]:
    events, definitions = history
    catalog = load_definitions(definitions)
    log = read_event_log(events.read_bytes().splitlines(), catalog, now_ms=END_MS)
    panel = build_panel(log, catalog, CANDIDATES)
    return panel, evaluate_candidates(panel, catalog, CANDIDATES, SETTINGS)


def test_the_metric_that_leads_retention_ranks_above_the_vanity_metric(
    evaluated: tuple[Panel, Scorecard],
) -> None:
    _, card = evaluated
    ranked = [r.name for r in card.candidates]
    assert ranked[0] == "accounts_3plus_reports"
    assert ranked.index("accounts_3plus_reports") < ranked.index("weekly_logins")
    assert card.north_star == "accounts_3plus_reports"
    assert card.backup == "accounts_with_a_login"  # other events; the logins count is vanity
    by_name = {r.name: r for r in card.candidates}
    reports, logins = by_name["accounts_3plus_reports"], by_name["weekly_logins"]
    assert reports.leading.retention.significant
    lead = reports.leading.retention
    assert lead.estimate is not None and lead.estimate > 0.2
    assert lead.low is not None and lead.low > 0
    assert reports.core_value.significant
    # On merit, not only by the flag: reaching the logins metric tells less about retention.
    assert (logins.core_value.estimate or 0) < (reports.core_value.estimate or 0)
    assert logins.flags.vanity and not reports.flags.vanity
    assert not reports.flags.concentrated


def test_frequency_and_movability_come_from_the_weekly_series(
    evaluated: tuple[Panel, Scorecard],
) -> None:
    panel, card = evaluated
    reports = next(r for r in card.candidates if r.name == "accounts_3plus_reports")
    series = panel.totals["accounts_3plus_reports"]
    moved = sum(1 for a, b in pairwise(series) if a != b)
    assert reports.frequency.weeks_moved == moved
    assert reports.frequency.weeks_compared == len(series) - 1
    move = reports.movability
    first, last = series[move.from_index], series[move.to_index]
    assert first and last is not None and move.move == pytest.approx(abs(last - first) / first)
    assert 0 < move.to_index - move.from_index <= 13
    # Accounts reaching a 3+ reports week are a subset of those counted in the weekly total.
    for index, at_ms in enumerate(panel.checkpoints):
        assert len(panel.values["accounts_3plus_reports"][index]) == series[index]
        assert at_ms % 1000 == 999


def test_entities_of_another_key_map_to_the_account_on_their_events() -> None:
    # Two workspaces of account a1 qualify (3 builds each), one of a2 does not (2 builds).
    catalog = catalog_from_dicts(
        [
            {
                "name": "busy_workspaces",
                "tier": "north_star",
                "window": "7d",
                "entities": {
                    "key": "workspace_id",
                    "all": [{"event": "build", "count_at_least": 3}],
                },
            }
        ]
    )
    monday = parse_time("2026-11-02T00:00:00Z")
    events = []
    for week in range(4):
        for workspace, account, builds in (("w1", "a1", 3), ("w2", "a1", 4), ("w3", "a2", 2)):
            for k in range(builds):
                ts = monday + week * 7 * 86_400_000 + 3_600_000 * (k + 1)
                events.append(
                    {
                        "type": "build",
                        "timestamp": format_time(ts),
                        "workspace_id": workspace,
                        "account_id": account,
                    }
                )
    log = read_event_log(events, catalog, now_ms=monday + 60 * 86_400_000)
    panel = build_panel(log, catalog, ["busy_workspaces"])
    assert panel.checkpoints == week_ends(log.first_ms or 0, log.last_ms or 0)
    # Events start on a Monday at 01:00: the whole weeks are the second and the third.
    assert [format_time(t) for t in panel.checkpoints] == [
        "2026-11-15T23:59:59.999Z",
        "2026-11-22T23:59:59.999Z",
    ]
    assert panel.totals["busy_workspaces"] == [2.0, 2.0]
    assert panel.values["busy_workspaces"] == [{"a1": 2.0}, {"a1": 2.0}]
    assert set(panel.accounts) == {"a1", "a2"}


def test_cli_scorecard_json_and_table(history: tuple[Path, Path], tmp_path: Path) -> None:
    events, definitions = history
    args = [
        "evaluate",
        "--events",
        str(events),
        "--definitions",
        str(definitions),
        "--candidate",
        "weekly_logins",
        "--candidate",
        "accounts_with_a_login",
        "--months",
        "3",
        "--bootstrap",
        "200",
    ]
    result = CliRunner().invoke(main, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    document = orjson.loads(result.stdout)
    assert document["recommendation"]["north_star"] == "accounts_3plus_reports"
    first = document["candidates"][0]
    assert first["metric"] == "accounts_3plus_reports"
    assert first["leading_indicator"]["retention"]["significant"] is True
    assert {"core_value", "frequency", "leading_indicator", "movability", "flags"} <= set(first)
    table = CliRunner().invoke(main, args)
    assert table.exit_code == 0 and "North star: accounts_3plus_reports" in table.stdout


@pytest.fixture(scope="module")
def history(
    tmp_path_factory: pytest.TempPathFactory, churn_history: list[dict]
) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("history")
    events = write_events(folder / "events.jsonl", churn_history)
    return events, write_definitions(folder / "definitions", CANDIDATES_YAML)


def _panel(series: list[float | None], active_counts: list[int]) -> Panel:
    weeks = len(series)
    return Panel(
        start_ms=0,
        end_ms=weeks * 7 * 86_400_000,
        checkpoints=[(k + 1) * 7 * 86_400_000 - 1 for k in range(weeks)],
        accounts={},
        totals={"total_signups": series},
        values={"total_signups": [{} for _ in range(weeks)]},
        active=[{f"a{i}" for i in range(n)} for n in active_counts],
    )


def test_a_metric_that_does_not_fall_when_activity_does_is_vanity() -> None:
    catalog = catalog_from_dicts(
        [
            {
                "name": "total_signups",
                "tier": "north_star",
                "window": "90d",
                "bucket": "1d",
                "entities": {
                    "key": "account_id",
                    "all": [{"event": "report.sent", "count_at_least": 1}],
                },
            }
        ]
    )
    metric = catalog["total_signups"]
    rising: list[float | None] = [10.0, 11, 11, 12, 14, 15, 17]
    assert flags(_panel(rising, [20, 22, 18, 23, 25, 21, 26]), metric).vanity
    # Growth alone is no flag: activity never fell, so the series could not show it would.
    assert not flags(_panel(rising, [20, 22, 23, 24, 25, 26, 27]), metric).vanity
    # A series that falls with activity is not vanity.
    falling: list[float | None] = [10.0, 11, 9, 12, 14, 15, 17]
    assert not flags(_panel(falling, [20, 22, 18, 23, 25, 21, 26]), metric).vanity
