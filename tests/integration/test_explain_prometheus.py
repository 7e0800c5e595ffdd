"""`nsm explain --prometheus` reads the series Prometheus holds and explains exactly what
`nsm explain --events` explains from the events: here a Prometheus of the test's own over an
imported history in which 90% of the usage of region emea disappears."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from processor.cli import main
from processor.definitions import load_definitions
from processor.generate import Drop, iter_events, plan_history
from processor.times import parse_time
from tests.integration.imported_history import ImportedPrometheus, history_of, serve_history

ROOT = Path(__file__).resolve().parents[2]
METRIC = "weekly_active_accounts_3plus_reports"
END = "2026-11-20T00:00:00Z"
BEFORE, AFTER = "2026-11-12T23:59:59Z", "2026-11-19T23:59:59Z"


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two explain documents differ (floats to 1e-9)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(a.keys() ^ b.keys())}"]
        return [d for k in a for d in differences(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} against {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in differences(x, y, f"{path}[{i}]")]  # fmt: skip
    if isinstance(a, float) or isinstance(b, float):
        both = a is not None and b is not None
        if both and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9):
            return []
    elif a == b:
        return []
    return [f"{path}: {a!r} against {b!r}"]


@pytest.fixture(scope="module")
def events_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    drop = Drop(pct=90, from_ms=parse_time("2026-11-13T00:00:00Z"), field="region", value="emea")
    config = plan_history(seed=4, accounts=60, days=21, end_ms=parse_time(END), drop=drop)
    path = tmp_path_factory.mktemp("drop") / "events.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in iter_events(config)) + b"\n")
    return path


@pytest.fixture(scope="module")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, events_file: Path
) -> Iterator[ImportedPrometheus]:
    catalog = load_definitions(ROOT / "definitions")
    events = [orjson.loads(line) for line in events_file.read_bytes().splitlines()]
    history = history_of(events, catalog, now_ms=parse_time(END))
    # Only the two weeks compared: a smaller file to import.
    span = {"from_ms": parse_time(BEFORE) - 3_600_000, "to_ms": parse_time(AFTER) + 3_600_000}
    yield from serve_history(tmp_path_factory.mktemp("prometheus"), history, **span)


def explain(*args: str) -> str:
    result = CliRunner().invoke(
        main, ["explain", METRIC, "--definitions", str(ROOT / "definitions"), *args]
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_explain_from_prometheus_equals_explain_from_events(
    prometheus: ImportedPrometheus, events_file: Path
):
    window = ["--from", BEFORE, "--to", AFTER, "--format", "json"]
    expected = orjson.loads(explain("--events", str(events_file), *window))
    got = orjson.loads(explain("--prometheus", prometheus.url, *window))
    assert expected["change"] != 0 and expected["segments"], "there is a change to explain"
    assert differences(got, expected) == []


def test_the_planted_drop_leads_and_the_default_is_the_week_before_to(
    prometheus: ImportedPrometheus,
):
    # Without --from: the week the drop alert compares (one week before --to).
    text = explain("--prometheus", prometheus.url, "--to", AFTER, "--top", "1")
    lines = text.splitlines()
    assert lines[0].startswith("Segment that moved it most: region=emea"), text
    assert f"from {BEFORE} to {AFTER}" in text
    region = next(line for line in lines if line.strip().startswith("by region:"))
    assert region.strip().startswith("by region: emea −"), region
    # The largest riser is shown beside the largest decliner, even with --top 1.
    assert region.count(" · ") == 1 and " +" in region.split(" · ")[1], region


def test_a_time_prometheus_holds_nothing_for_says_what_is_needed(prometheus: ImportedPrometheus):
    result = CliRunner().invoke(
        main,
        ["explain", METRIC, "--definitions", str(ROOT / "definitions"),
         "--prometheus", prometheus.url, "--from", "2026-01-01", "--to", "2026-01-08"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "holds no nsm_metric_value at 2026-01-01T00:00:00Z" in result.output
    assert "worker scraped" in result.output


def test_an_unreachable_prometheus_is_named():
    result = CliRunner().invoke(
        main,
        ["explain", METRIC, "--definitions", str(ROOT / "definitions"),
         "--prometheus", "http://127.0.0.1:9"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "cannot read Prometheus at http://127.0.0.1:9" in result.output
