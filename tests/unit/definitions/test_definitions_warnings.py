"""Warnings: the KPI hierarchy is off, but the definitions stay usable."""

from __future__ import annotations

import pytest

from processor.definitions import Problem, check_definitions
from processor.definitions.rules import is_vanity_event
from tests.unit.definitions.support import Writer, line_of, metrics, warnings_of


def north_star(name: str, backup_for: str | None = None, event: str = "report.sent") -> str:
    backup = f"\n  backup_for: {backup_for}" if backup_for else ""
    return f"""
- name: {name}
  tier: north_star{backup}
  window: 7d
  aggregate: {{event: {event}, distinct: account_id}}
"""


def test_warnings_do_not_block_the_catalog(write: Writer) -> None:
    text = metrics(north_star("weekly_builders"))
    catalog, problems = check_definitions(write("product.yaml", text))
    assert catalog is not None and "weekly_builders" in catalog.metrics
    assert [p.severity for p in problems] == ["warning"]


def test_north_star_without_a_backup(write: Writer) -> None:
    text = metrics(north_star("weekly_builders"))
    path = write("product.yaml", text)
    assert [str(p) for p in warnings_of(path)] == [
        f"{path}:{line_of(text, 'name: weekly_builders')}: warning: metric weekly_builders: north "
        "star without a backup: add a north star with backup_for: weekly_builders, to steer by "
        "when this one cannot be trusted"
    ]


def test_a_backup_needs_no_backup_of_its_own(write: Writer) -> None:
    text = metrics(north_star("weekly_builders"), north_star("daily_builders", "weekly_builders"))
    assert warnings_of(write("product.yaml", text)) == []


def test_more_than_five_north_stars(write: Writer) -> None:
    names = [f"north_star_{n}" for n in range(1, 6)]
    entries = [north_star(name) + north_star(f"{name}_backup", name) for name in names]
    path = write("product.yaml", metrics(*entries, base=False))
    assert warnings_of(path) == []  # five north stars; backups do not count

    text = metrics(*entries, north_star("north_star_6"), north_star("north_star_7"), base=False)
    path = write("product.yaml", text)
    many = [p for p in warnings_of(path) if "north stars (" in p.message]
    assert [(p.line, p.message) for p in many] == [
        (
            line_of(text, "name: north_star_6") + 1,  # its tier: line
            "metric north_star_6: 7 north stars (north_star_1, north_star_2, north_star_3, "
            "north_star_4, north_star_5, north_star_6, north_star_7; backups not counted): a "
            "team steers by at most 5; make the others diagnostics of one of them",
        )
    ]


@pytest.mark.parametrize(
    "event",
    [
        "signup",
        "user.signed_up",
        "signups",
        "login",
        "user.logged_in",
        "page.viewed",
        "page_view",
        "pageview",
        "session.started",
        "[signup, login]",
    ],
)
def test_vanity_north_star(write: Writer, event: str) -> None:
    text = metrics(f"""
        - name: vanity
          tier: north_star
          backup_for: weekly_active_accounts
          window: 7d
          aggregate:
            event: {event}
            count: true
    """)
    warnings = warnings_of(write("product.yaml", text))
    types = event.strip("[]")
    assert [(p.line, p.message) for p in warnings] == [
        (
            line_of(text, "aggregate:", 2),
            f"metric vanity: north star is a vanity count of {types} events, which grows with "
            "traffic rather than with value delivered: count the accounts that reach value "
            "instead (entities with conditions)",
        )
    ]


@pytest.mark.parametrize(
    ("tier", "aggregate"),
    [
        ("north_star", "{event: report.sent, count: true}"),
        ("north_star", "{event: [login, report.sent], count: true}"),
        ("north_star", "{event: login, distinct: account_id}"),
        ("diagnostic", "{event: signup, count: true}"),
    ],
)
def test_not_a_vanity_north_star(write: Writer, tier: str, aggregate: str) -> None:
    parent = "weekly_active_accounts" if tier == "diagnostic" else "null"
    backup = "null" if tier == "diagnostic" else "weekly_active_accounts"
    text = metrics(f"""
        - name: fine
          tier: {tier}
          parent: {parent}
          backup_for: {backup}
          window: 7d
          aggregate: {aggregate}
    """)
    assert warnings_of(write("product.yaml", text)) == []


def test_vanity_event_names() -> None:
    assert all(map(is_vanity_event, ["SignUp", "account.registered", "PageViewed", "logins"]))
    assert not any(map(is_vanity_event, ["report.sent", "login.failed", "*", "page.shared"]))


def test_metric_outside_the_hierarchy(write: Writer) -> None:
    text = metrics("""
        - name: builds
          tier: granular
          window: 7d
          aggregate: {event: build.completed, count: true}
    """)
    warnings = warnings_of(write("product.yaml", text))
    assert [(p.line, p.message) for p in warnings] == [
        (
            line_of(text, "tier: granular"),
            "metric builds: granular metric without a parent stays outside the KPI hierarchy: "
            "set parent to the diagnostic or north star it explains",
        )
    ]


def test_problem_text() -> None:
    assert str(Problem("a.yaml", 3, "bad", "error")) == "a.yaml:3: bad"
    assert str(Problem("a.yaml", 3, "odd", "warning")) == "a.yaml:3: warning: odd"
