"""Building definition files in tests, and reading back what validation says about them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from textwrap import dedent, indent

from processor.definitions import Problem, check_definitions

# write(file name, text) -> the path of the written file (the `write` fixture).
Writer = Callable[[str, str], Path]

# Two north stars, one the backup of the other: valid, and without any warning.
BASE = """\
- name: weekly_active_accounts
  title: Weekly active accounts
  tier: north_star
  window: 7d
  segments: [plan]
  entities:
    key: account_id
    all:
      - event: report.sent
        count_at_least: 3
- name: weekly_reports_sent
  tier: north_star
  backup_for: weekly_active_accounts
  window: 7d
  segments: [plan, region]
  aggregate: {event: report.sent, count: true}
"""


def metrics(*entries: str, base: bool = True) -> str:
    """A definitions file: `metrics:` and the entries (each a YAML list item, any indentation)."""
    items = ([BASE] if base else []) + [dedent(entry).strip("\n") + "\n" for entry in entries]
    return "metrics:\n" + "".join(indent(item, "  ") for item in items)


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """The 1-based line of the `occurrence`-th line containing `needle`."""
    found = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(found) >= occurrence, f"{needle!r} not in the text"
    return found[occurrence - 1]


def problems_of(path: Path) -> list[Problem]:
    _, problems = check_definitions(path)
    return problems


def errors_of(path: Path) -> list[Problem]:
    return [p for p in problems_of(path) if p.severity == "error"]


def warnings_of(path: Path) -> list[Problem]:
    return [p for p in problems_of(path) if p.severity == "warning"]


def only_error(path: Path) -> Problem:
    errors = errors_of(path)
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


def errors_in(write: Writer, text: str) -> list[tuple[int, str]]:
    """(line, message) of each error in `text` written as the file product.yaml."""
    return [(p.line, p.message) for p in errors_of(write("product.yaml", text))]
