"""`nsm compute` through click's runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner

from processor.cli.compute import command

DEFINITIONS = """\
metrics:
  - name: weekly_active_accounts
    title: Weekly active accounts
    tier: north_star
    window: 7d
    segments: [plan]
    entities:
      key: account_id
      all:
        - event: report.sent
          count_at_least: 2
  - name: reports_sent
    tier: diagnostic
    parent: weekly_active_accounts
    window: 7d
    aggregate:
      event: report.sent
      count: true
"""

EVENTS = [
    {
        "type": "report.sent",
        "timestamp": "2026-11-20T10:00:00Z",
        "account_id": "a",
        "plan": "pro",
        "event_id": "1",
    },
    {
        "type": "report.sent",
        "timestamp": "2026-11-21T10:00:00Z",
        "account_id": "a",
        "plan": "pro",
        "event_id": "2",
    },
    {
        "type": "report.sent",
        "timestamp": "2026-11-21T11:00:00Z",
        "account_id": "b",
        "plan": "free",
        "event_id": "2",
    },
    {"type": "report.sent", "timestamp": 1795600800000, "account_id": "b", "plan": "free"},
]


def setup(tmp_path: Path, lines: list[Any] | None = None) -> tuple[Path, Path]:
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    (definitions / "metrics.yaml").write_text(DEFINITIONS)
    events = tmp_path / "events.jsonl"
    rows = [orjson.dumps(e) if isinstance(e, dict) else e for e in (lines or EVENTS)]
    events.write_bytes(b"\n".join(rows) + b"\n")
    return definitions, events


def run(args: list[str], stdin: bytes | None = None) -> Any:
    return CliRunner().invoke(command, args, input=stdin, env={"NSM_MAX_FUTURE_SKEW": "1000w"})


def test_json_to_stdout_and_a_summary_to_stderr(tmp_path: Path) -> None:
    definitions, events = setup(tmp_path, [*EVENTS, b"", b"   ", b"{broken"])
    result = run(["--events", str(events), "--definitions", str(definitions)])
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout) == {
        "as_of": "2026-11-25T10:00:00Z",
        "metrics": {
            "weekly_active_accounts": {"value": 1, "segments": {"plan": {"pro": 1, "free": 0}}},
            "reports_sent": {"value": 3, "segments": {}},
        },
    }
    assert "3 events applied" in result.stderr
    assert "1 invalid (not_json: 1)" in result.stderr
    assert "1 duplicates" in result.stderr


def test_at_in_rfc3339_and_epoch_ms(tmp_path: Path) -> None:
    definitions, events = setup(tmp_path)
    for at in ("2026-11-21T12:00:00+02:00", "1795255200000"):
        result = run(["--events", str(events), "--definitions", str(definitions), "--at", at])
        assert result.exit_code == 0, result.output
        document = orjson.loads(result.stdout)
        assert document["as_of"] == "2026-11-21T10:00:00Z"
        assert document["metrics"]["reports_sent"]["value"] == 2


def test_events_from_stdin_and_definitions_from_the_environment(tmp_path: Path) -> None:
    definitions, events = setup(tmp_path)
    result = CliRunner().invoke(
        command,
        ["--events", "-"],
        input=events.read_bytes(),
        env={"NSM_DEFINITIONS": str(definitions), "NSM_MAX_FUTURE_SKEW": "1000w"},
    )
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout)["metrics"]["reports_sent"]["value"] == 3


def test_future_events_are_invalid_against_the_wall_clock(tmp_path: Path) -> None:
    definitions, events = setup(tmp_path, [{"type": "x", "timestamp": 10**15}])
    result = CliRunner().invoke(
        command, ["--events", str(events), "--definitions", str(definitions)]
    )
    assert result.exit_code == 0, result.output
    assert "future_timestamp: 1" in result.stderr


def test_table_format(tmp_path: Path) -> None:
    definitions, events = setup(tmp_path)
    result = run(["--events", str(events), "--definitions", str(definitions), "--format", "table"])
    assert result.exit_code == 0, result.output
    assert "weekly_active_accounts" in result.stdout
    assert "north_star" in result.stdout
    assert "Breakdowns" in result.stdout
    assert "free" in result.stdout
    assert result.stdout.index("weekly_active_accounts") < result.stdout.index("reports_sent")


def test_invalid_definitions_exit_1_with_the_problems(tmp_path: Path) -> None:
    definitions, events = setup(tmp_path)
    (definitions / "metrics.yaml").write_text(DEFINITIONS.replace("window: 7d", "window: 7x", 1))
    result = run(["--events", str(events), "--definitions", str(definitions)])
    assert result.exit_code == 1
    assert "metrics.yaml:" in result.stderr
    assert result.stdout == ""


def test_missing_definitions_exit_2(tmp_path: Path) -> None:
    _, events = setup(tmp_path)
    result = run(["--events", str(events), "--definitions", str(tmp_path / "nope")])
    assert result.exit_code == 2


def test_a_bad_at_is_a_usage_error(tmp_path: Path) -> None:
    definitions, events = setup(tmp_path)
    result = run(["--events", str(events), "--definitions", str(definitions), "--at", "yesterday"])
    assert result.exit_code == 2
    assert "RFC 3339" in result.stderr
