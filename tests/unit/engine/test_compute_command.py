"""`nsm compute` through click's runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner

from processor.cli.compute import command
from processor.definitions import load_definitions
from tests.faults import DETAIL, injected_fault

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


DEEP_PLAN = b"[" * 1020 + b'"pro"' + b"]" * 1020


def test_each_invalid_line_is_named_with_its_number(tmp_path: Path) -> None:
    """Blank lines count in the numbering but are not events; the JSON output is unchanged."""
    lines: list[Any] = [EVENTS[0], b"", b"{broken", b"  ", EVENTS[1], b"[1]",
                        {"type": "report.sent", "timestamp": "2026-11-20T10:00:00"}]  # fmt: skip
    definitions, events = setup(tmp_path, lines)
    result = run(["--events", str(events), "--definitions", str(definitions)])
    assert result.exit_code == 0, result.output
    named = [line for line in result.stderr.splitlines() if line.startswith(str(events))]
    assert [line.split(": ", 2)[0:2] for line in named] == [
        [f"{events}:3", "not_json"], [f"{events}:6", "not_object"],
        [f"{events}:7", "bad_timestamp"],
    ]  # fmt: skip
    assert "3 invalid" in result.stderr.splitlines()[-1]
    assert set(orjson.loads(result.stdout)) == {"as_of", "metrics"}


def test_a_value_nested_past_the_recursion_limit_is_applied(tmp_path: Path) -> None:
    """The reproduction of the worker's crash loop: a plan nested 1,020 levels deep, in a
    metric segmented by plan, is a segment value like any other."""
    deep = orjson.dumps(EVENTS[0])[:-1] + b', "plan": ' + DEEP_PLAN + b"}"
    definitions, events = setup(tmp_path, [deep, EVENTS[1]])
    result = run(["--events", str(events), "--definitions", str(definitions)])
    assert result.exit_code == 0, result.output
    plans = orjson.loads(result.stdout)["metrics"]["weekly_active_accounts"]["segments"]["plan"]
    assert plans == {"pro": 1}  # the newest event's plan; the deep one is older
    assert "0 invalid" in result.stderr


def test_an_event_the_engine_fails_on_is_named_and_the_rest_computed(tmp_path: Path) -> None:
    """From a file and from standard input (kept for the second pass when it is a pipe)."""
    definitions, events = setup(tmp_path, [EVENTS[0], b"", EVENTS[1], EVENTS[2], EVENTS[3]])
    with injected_fault(b'"account_id":"b"'):
        from_file = run(["--events", str(events), "--definitions", str(definitions)])
        from_stdin = run(["--events", "-", "--definitions", str(definitions)],
                         stdin=events.read_bytes())  # fmt: skip
    for result, name in ((from_file, str(events)), (from_stdin, "<stdin>")):
        assert result.exit_code == 0, result.output
        metrics = orjson.loads(result.stdout)["metrics"]
        # Account b's first event repeats an id (a duplicate, never applied), its second fails.
        assert metrics["reports_sent"]["value"] == 2
        assert metrics["weekly_active_accounts"]["segments"]["plan"] == {"pro": 1}
        named = [line for line in result.stderr.splitlines() if line.startswith(name)]
        assert named == [f"{name}:5: unprocessable: {DETAIL}"]
        assert "1 invalid (unprocessable: 1), 1 duplicates" in result.stderr


def test_a_pipe_is_kept_to_be_read_again_after_a_failure(tmp_path: Path) -> None:
    import os

    from processor.engine import compute_stream
    from processor.engine.compute import Rejected

    definitions, events = setup(tmp_path)
    read_end, write_end = os.pipe()
    os.write(write_end, events.read_bytes())
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe, injected_fault(b'"account_id":"b"'):
        assert not pipe.seekable()
        result = compute_stream(pipe, load_definitions(definitions), now_ms=1795600800000)
    assert result.applied == 2 and result.duplicates == 1
    assert result.rejected == [Rejected(3, 4, "unprocessable", DETAIL)]


def test_a_file_read_in_chunks_is_the_same_stream(tmp_path: Path) -> None:
    """A file is read in chunks of about 8 MB, the next one while the engine works on the
    last: lines across chunk boundaries, a line longer than a chunk, blank and broken lines and
    a last line without its newline give what the same bytes give as a stream."""
    import io

    from processor.engine import compute_file, compute_stream

    rows: list[bytes] = []
    for i in range(90_000):
        event = {
            "type": "report.sent",
            "timestamp": 1795000000000 + i * 1000,
            "account_id": f"acc_{i % 977}",
            "plan": ["free", "pro", "team"][i % 3],
            "event_id": str(i % 80_000),
            "properties": {"note": "x" * (i % 300)},
        }
        rows.append(orjson.dumps(event))
        if i == 40_000:
            rows.append(b"")
            long = dict(event, event_id="long", properties={"note": "y" * (9 << 20)})
            rows.append(orjson.dumps(long))
        if i % 10_007 == 0:
            rows.append(b"{broken")
    data = b"\n".join(rows)  # no newline after the last line
    assert len(data) > 3 * (8 << 20)
    definitions, events = setup(tmp_path)
    events.write_bytes(data)
    catalog = load_definitions(definitions)
    now = 1795600800000
    from_file = compute_file(events, catalog, now_ms=now)
    from_stream = compute_stream(io.BytesIO(data), catalog, now_ms=now)
    assert from_file.applied == 80_001 and from_file.duplicates == 10_000
    broken = [n + 1 for n, row in enumerate(rows) if row == b"{broken"]
    assert [r.line for r in from_file.rejected] == broken
    assert from_file == from_stream
