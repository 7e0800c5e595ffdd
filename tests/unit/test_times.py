"""One time syntax for every option: RFC 3339, a date, epoch ms, a duration ago, `now`."""

from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

from processor.cli import COMMANDS, main
from processor.cli.options import TimeParam
from processor.times import parse_time

NOW = 1_795_255_200_000  # 2026-11-21T10:00:00Z


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-21T10:00:00Z", NOW),
        ("2026-11-21T12:00:00+02:00", NOW),
        ("2026-11-21T10:00:00.250Z", NOW + 250),
        ("2026-11-21", NOW - 10 * 3_600_000),
        ("1795255200000", NOW),
        ("-5", -5),
        ("now", NOW),
        (" NOW ", NOW),
        ("7d", NOW - 7 * 86_400_000),
        ("12h", NOW - 12 * 3_600_000),
        ("30m", NOW - 1_800_000),
        ("2w", NOW - 14 * 86_400_000),
    ],
)
def test_every_form_reads_to_epoch_ms(text: str, expected: int):
    assert parse_time(text, now=NOW) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("2026-11-21T10:00:00", "no zone"),
        ("2026-13-01", "YYYY-MM-DD"),
        ("yesterday", "a duration ago (7d)"),
        ("7 days", "RFC 3339"),
    ],
)
def test_invalid_times_say_what_is_accepted(text: str, says: str):
    with pytest.raises(ValueError, match=re.escape(says)):
        parse_time(text, now=NOW)


def _commands() -> list[tuple[str, click.Command]]:
    found = []
    for name in COMMANDS:
        command = main.get_command(click.Context(main), name)
        assert command is not None
        if isinstance(command, click.Group):
            found += [(f"{name} {sub}", c) for sub, c in command.commands.items()]
        else:
            found.append((name, command))
    return found


TIME_OPTION_NAMES = {"from_ms", "to_ms", "at_ms", "start", "end", "drop_from", "history_from_ms"}


def test_every_time_option_of_every_command_uses_the_one_parser():
    checked = []
    for where, command in _commands():
        for param in command.params:
            if param.name in TIME_OPTION_NAMES:
                assert isinstance(param.type, TimeParam), f"nsm {where} {param.opts}"
                checked.append(f"{where} {param.opts[0]}")
    # explain, compute, generate, replay, history export and namespace diff all take times.
    assert {w.split(" --")[0] for w in checked} >= {
        "explain",
        "compute",
        "generate",
        "replay",
        "history export",
        "namespace diff",
    }, checked


def test_explain_accepts_a_duration_and_a_date(tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text(
        '{"type": "report.sent", "timestamp": "2026-11-20T10:00:00Z", "account_id": "a"}\n'
    )
    result = CliRunner().invoke(
        main,
        [
            "explain",
            "weekly_reports_sent",
            "--events",
            str(events),
            "--from",
            "2026-11-19",
            "--to",
            "2026-11-21",
        ],
    )
    assert result.exit_code == 0, result.output
    relative = CliRunner().invoke(
        main,
        ["explain", "weekly_reports_sent", "--events", str(events), "--from", "7d", "--to", "now"],
    )
    # --to defaults to now; the output names both times.
    assert relative.exit_code == 0, relative.output
