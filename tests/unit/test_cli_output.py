"""`nsm` for people and pipes: with standard output not a terminal, tables keep every name whole
(no `…`), a progress display appears only where a person watches (standard error a terminal),
and empty inputs say what is needed. The commands run as processes, as a pipe runs them."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from processor.cli.output import TableData
from processor.generate import iter_events, plan_history
from processor.times import parse_time

ROOT = Path(__file__).resolve().parents[2]
NSM = [sys.executable, "-m", "processor.cli"]
LONG_NAMES = [
    "weekly_accounts_5plus_reports_viewed_by_non_admins",
    "weekly_accounts_7_seats_key_workflows",
    "weekly_active_accounts_3plus_reports",
    "weekly_accounts_3plus_report_users",
]


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = plan_history(seed=6, accounts=20, days=10, end_ms=parse_time("2026-11-20"))
    path = tmp_path_factory.mktemp("events") / "events.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in iter_events(config)) + b"\n")
    return path


def nsm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`nsm ARGS` with standard output and error pipes (not terminals), in an 80-column world."""
    environment = {**os.environ, "COLUMNS": "80", "LINES": "24", **(env or {})}
    environment.pop("FORCE_COLOR", None)
    return subprocess.run(
        [*NSM, *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300
    )


def test_compute_table_keeps_every_metric_name_whole_in_a_pipe(events: Path):
    result = nsm("compute", "--events", str(events), "--format", "table")
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout
    rows = [line.split() for line in result.stdout.splitlines()]
    names = {row[0] for row in rows if row}
    assert set(LONG_NAMES) <= names
    # Plain columns: a pipe can cut them with awk; no box-drawing characters.
    assert not set("│┃━─┏") & set(result.stdout)
    assert any(row[:2] == ["weekly_active_accounts_3plus_reports", "north_star"] for row in rows)
    assert "\x1b[" not in result.stdout + result.stderr  # no colour or cursor codes


def test_plain_tables_align_columns_to_their_longest_value():
    table = TableData("T", ["name", "value"], ["left", "right"])
    table.add_row("a_very_long_metric_name_that_would_not_fit_a_narrow_column", "1")
    table.add_row("short", "1,234")
    lines = table.plain().splitlines()
    assert lines[0] == "T"
    assert lines[2].startswith("a_very_long_metric_name_that_would_not_fit_a_narrow_column  ")
    assert lines[2].endswith("    1") and lines[3].endswith("1,234")
    assert len({len(line) for line in lines[1:]}) == 1


def test_explain_text_in_a_pipe_names_metrics_in_full(events: Path):
    result = nsm(
        "explain", "weekly_active_accounts_3plus_reports", "--events", str(events),
        "--from", "2026-11-13", "--to", "2026-11-20",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for name in LONG_NAMES[:2]:
        assert name in result.stdout
    assert "…" not in result.stdout and "\x1b[" not in result.stdout + result.stderr


def test_empty_inputs_say_what_is_needed(tmp_path: Path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    compute = nsm("compute", "--events", str(empty))
    assert compute.returncode == 0
    assert "no valid event" in compute.stderr and "nsm generate" in compute.stderr
    explain = nsm("explain", "weekly_active_accounts_3plus_reports", "--events", str(empty))
    assert explain.returncode == 1 and "holds no valid event" in explain.stderr
    evaluate = nsm("evaluate", "--events", str(empty))
    assert evaluate.returncode == 1 and "holds no valid event" in evaluate.stderr


def _with_terminal_stderr(args: list[str]) -> tuple[int, str, str]:
    """Run with standard error on a pseudo-terminal (a person watching) and stdout a pipe."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [*NSM, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=follower,
        env={**os.environ, "COLUMNS": "100", "TERM": "xterm"},
    )
    os.close(follower)
    seen = b""
    while True:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        elif process.poll() is not None:
            break
    stdout, _ = process.communicate(timeout=60)
    os.close(leader)
    return process.returncode, stdout.decode(), seen.decode(errors="replace")


def test_a_progress_display_where_a_person_watches_and_none_in_a_pipe(events: Path):
    code, stdout, terminal = _with_terminal_stderr(["compute", "--events", str(events)])
    assert code == 0
    assert "nsm: computing every metric from" in terminal  # the spinner's text
    assert orjson.loads(stdout)["metrics"]  # the result itself is unchanged on stdout
    piped = nsm("compute", "--events", str(events))
    assert "computing every metric" not in piped.stderr
