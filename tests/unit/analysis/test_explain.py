"""A drop injected into one segment is attributed to that segment and to the right diagnostic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from analysis_support import (
    DROP_FROM,
    DROP_TREE_YAML,
    END_MS,
    history_with_drop,
    write_definitions,
    write_events,
)
from click.testing import CliRunner

from processor.analysis.explain.tree import MetricChange, explain_change
from processor.analysis.source import EventsSource, read_event_log
from processor.cli import main
from processor.definitions import load_definitions
from processor.events import parse_time

AFTER = "2026-11-19T23:59:59Z"  # the week of the drop, against the week before it
BEFORE = "2026-11-12T23:59:59Z"


@pytest.fixture(scope="module")
def drop_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("drop")
    events = write_events(folder / "events.jsonl", history_with_drop())
    return events, write_definitions(folder / "definitions", DROP_TREE_YAML)


@pytest.fixture(scope="module")
def explained(drop_files: tuple[Path, Path]) -> MetricChange:
    events, definitions = drop_files
    catalog = load_definitions(definitions)
    log = read_event_log(
        (line for line in events.read_bytes().splitlines()), catalog, now_ms=END_MS
    )
    before, after = parse_time(BEFORE), parse_time(AFTER)
    values = EventsSource(log, catalog).values_at([before, after])
    return explain_change(catalog, "accounts_3plus_reports", values[before], values[after])


def _child(node: MetricChange, name: str) -> MetricChange:
    return next(c for c in node.children if c.name == name)


def test_the_north_star_fell_and_the_segment_that_moved_it_is_emea(explained: MetricChange) -> None:
    assert explained.change is not None and explained.change < 0
    found = explained.top_segment()
    assert found is not None
    assert found[0] == "region" and found[1].label == "emea"
    region = next(f for f in explained.fields if f.field == "region")
    emea = region.contributions[0]
    assert emea.label == "emea" and emea.relative is not None and emea.relative < -0.4


def test_the_right_diagnostic_ranks_above_the_untouched_one(explained: MetricChange) -> None:
    names = [c.name for c in explained.children]
    assert names.index("reports_sent") < names.index("integration_syncs")
    reports = _child(explained, "reports_sent")
    assert reports.relative is not None and reports.relative < -0.15
    top = reports.top_segment()
    assert top is not None and (top[0], top[1].label) == ("region", "emea")
    assert top[1].relative is not None and top[1].relative < -0.8  # 90% of usage gone
    syncs = _child(explained, "integration_syncs")
    syncs_top = syncs.top_segment()
    assert syncs_top is None or syncs_top[1].label != "emea" or (syncs.change or 0) >= 0


def test_the_ratio_diagnostic_puts_the_fall_on_emea_rate(explained: MetricChange) -> None:
    ratio = _child(explained, "reports_per_reporting_account")
    region = next(f for f in ratio.fields if f.field == "region")
    assert region.kind == "ratio" and region.ratio is not None
    r = region.ratio
    total = r.rate_effect + r.mix_effect + r.interaction + r.unmatched
    assert total == pytest.approx(r.after - r.before)
    assert r.after == pytest.approx(ratio.after)
    emea = next(s for s in r.segments if s.label == "emea")
    assert emea.rate_effect == min(s.rate_effect for s in r.segments) < 0


def _run(args: list[str]) -> Any:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_prints_a_tree_and_json(drop_files: tuple[Path, Path]) -> None:
    events, definitions = drop_files
    common = [
        "explain",
        "accounts_3plus_reports",
        "--events",
        str(events),
        "--definitions",
        str(definitions),
        "--from",
        BEFORE,
        "--to",
        AFTER,
    ]
    text = _run(common)
    assert text.splitlines()[0].startswith("Segment that moved it most: region=emea")
    assert "├── " in text and "rate effect" in text
    document = orjson.loads(_run([*common, "--format", "json"]))
    assert document["top_segment"] == {"segment": "region", "value": "emea"}
    assert document["from"] == BEFORE and document["to"] == AFTER
    names = [c["metric"] for c in document["children"]]
    assert names.index("reports_sent") < names.index("integration_syncs")
    ratio = next(c for c in document["children"] if c["metric"] == "reports_per_reporting_account")
    assert ratio["segments"][0]["decomposition"] == "ratio"
    assert {"rate_effect", "mix_effect", "interaction"} <= set(ratio["segments"][0])


def test_cli_rejects_an_unknown_metric(drop_files: tuple[Path, Path]) -> None:
    events, definitions = drop_files
    result = CliRunner().invoke(
        main,
        [
            "explain",
            "nope",
            "--events",
            str(events),
            "--definitions",
            str(definitions),
            "--from",
            BEFORE,
            "--to",
            AFTER,
        ],
    )
    assert result.exit_code != 0 and "no metric 'nope'" in result.output
    assert DROP_FROM  # the drop starts between the two weeks compared
