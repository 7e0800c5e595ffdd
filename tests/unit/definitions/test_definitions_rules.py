"""Rules over the whole catalogue: each reports its message at the line to edit."""

from __future__ import annotations

from pathlib import Path

from processor.definitions import check_definitions
from tests.unit.definitions.support import Writer, errors_in, line_of, metrics


def test_names_are_unique_across_files(write: Writer) -> None:
    first = metrics()
    second = metrics(
        """
        - name: weekly_reports_sent
          tier: diagnostic
          parent: weekly_active_accounts
          window: 7d
          aggregate: {event: report.sent, count: true}
    """,
        base=False,
    )
    first_path = write("a.yaml", first)
    second_path = write("b.yaml", second)
    catalog, problems = check_definitions(first_path.parent)
    assert catalog is None
    assert [str(p) for p in problems] == [
        f"{second_path}:2: metric weekly_reports_sent: the name is already used by the metric "
        f"at {first_path}:{line_of(first, 'name: weekly_reports_sent')}: names are unique "
        "across all files; rename one of them"
    ]


def test_parent_must_exist(write: Writer) -> None:
    text = metrics("""
        - name: reports
          tier: diagnostic
          parent: weekly_active_acounts
          window: 7d
          aggregate: {event: report.sent, count: true}
    """)
    assert errors_in(write, text) == [
        (
            line_of(text, "parent: weekly_active_acounts"),
            "metric reports: parent 'weekly_active_acounts' is not a defined metric (did you "
            "mean 'weekly_active_accounts'?): name a metric defined in the definitions",
        )
    ]


def test_north_star_has_no_parent(write: Writer) -> None:
    text = metrics("""
        - name: weekly_teams
          tier: north_star
          backup_for: weekly_active_accounts
          parent: weekly_active_accounts
          window: 7d
          aggregate: {event: report.sent, distinct: team_id}
    """)
    assert errors_in(write, text) == [
        (
            line_of(text, "parent: weekly_active_accounts"),
            "metric weekly_teams: a north star has no parent: remove parent, or make this "
            "metric a diagnostic",
        )
    ]


def test_diagnostic_parent_is_a_north_star(write: Writer) -> None:
    text = metrics("""
        - name: reports
          tier: diagnostic
          parent: weekly_active_accounts
          window: 7d
          aggregate: {event: report.sent, count: true}
        - name: pro_reports
          tier: diagnostic
          parent: reports
          window: 7d
          aggregate: {event: report.sent, where: {plan: pro}, count: true}
    """)
    assert errors_in(write, text) == [
        (
            line_of(text, "parent: reports"),
            "metric pro_reports: a diagnostic metric's parent must be a north star, but "
            "'reports' is a diagnostic: set parent to a north star, or change the tiers",
        )
    ]


def test_granular_parent_is_a_diagnostic_or_north_star(write: Writer) -> None:
    text = metrics("""
        - name: reports
          tier: granular
          parent: weekly_active_accounts
          window: 7d
          aggregate: {event: report.sent, count: true}
        - name: pro_reports
          tier: granular
          parent: reports
          window: 7d
          aggregate: {event: report.sent, where: {plan: pro}, count: true}
    """)
    assert errors_in(write, text) == [
        (
            line_of(text, "parent: reports"),
            "metric pro_reports: granular metric's parent must be a diagnostic or north star, "
            "but 'reports' is granular: set parent to a diagnostic or north star, or change the "
            "tiers",
        )
    ]


def test_parent_is_not_the_metric_itself(write: Writer) -> None:
    text = metrics("""
        - name: reports
          tier: diagnostic
          parent: reports
          window: 7d
          aggregate: {event: report.sent, count: true}
    """)
    assert errors_in(write, text) == [
        (
            line_of(text, "parent: reports"),
            "metric reports: parent is the metric itself: set parent to the north star it explains",
        )
    ]


def test_parent_links_without_cycles(write: Writer) -> None:
    text = metrics("""
        - name: reports_a
          tier: granular
          parent: reports_b
          window: 7d
          aggregate: {event: report.sent, count: true}
        - name: reports_b
          tier: granular
          parent: reports_a
          window: 7d
          aggregate: {event: report.sent, count: true}
    """)
    cycle = [e for e in errors_in(write, text) if "cycle" in e[1]]
    assert cycle == [
        (
            line_of(text, "parent: reports_b"),
            "metric reports_a: parent links form a cycle: reports_a -> reports_b -> reports_a: "
            "break it by changing one of them",
        )
    ]


def test_backup_for_only_on_a_north_star(write: Writer) -> None:
    text = metrics("""
        - name: reports
          tier: diagnostic
          parent: weekly_active_accounts
          backup_for: weekly_active_accounts
          window: 7d
          aggregate: {event: report.sent, count: true}
    """)
    assert errors_in(write, text) == [
        (
            line_of(text, "backup_for: weekly_active_accounts", 2),
            "metric reports: backup_for is only for north stars: make this metric a north star "
            "(tier: north_star) or remove backup_for",
        )
    ]


def test_backup_for_names_an_existing_north_star(write: Writer) -> None:
    text = metrics("""
        - name: reports
          tier: diagnostic
          parent: weekly_active_accounts
          window: 7d
          aggregate: {event: report.sent, count: true}
        - name: backup_of_nothing
          tier: north_star
          backup_for: weekly_active_acount
          window: 7d
          aggregate: {event: report.sent, distinct: account_id}
        - name: backup_of_a_diagnostic
          tier: north_star
          backup_for: reports
          window: 7d
          aggregate: {event: report.sent, distinct: account_id}
        - name: backup_of_itself
          tier: north_star
          backup_for: backup_of_itself
          window: 7d
          aggregate: {event: report.sent, distinct: account_id}
    """)
    assert errors_in(write, text) == [
        (
            line_of(text, "backup_for: weekly_active_acount"),
            "metric backup_of_nothing: backup_for 'weekly_active_acount' is not a defined metric "
            "(did you mean 'weekly_active_accounts'?): name a metric defined in the definitions",
        ),
        (
            line_of(text, "backup_for: reports"),
            "metric backup_of_a_diagnostic: backup_for must name a north star, but 'reports' is "
            "a diagnostic: name the north star this one stands in for",
        ),
        (
            line_of(text, "backup_for: backup_of_itself"),
            "metric backup_of_itself: backup_for names the metric itself: name the north star "
            "this one stands in for",
        ),
    ]


def test_bucket_divides_window(write: Writer) -> None:
    text = metrics("""
        - name: reports
          tier: diagnostic
          parent: weekly_active_accounts
          window: 1d
          bucket: 5h
          aggregate: {event: report.sent, count: true}
    """)
    assert errors_in(write, text) == [
        (
            line_of(text, "bucket: 5h"),
            "metric reports: bucket 5h does not divide window 1d: use a bucket that divides it, "
            "for example 1h",
        )
    ]


def test_bucket_no_longer_than_window(write: Writer) -> None:
    text = metrics("""
        - name: reports
          tier: diagnostic
          parent: weekly_active_accounts
          window: 45m
          bucket: 1h
          aggregate: {event: report.sent, count: true}
    """)
    assert errors_in(write, text) == [
        (
            line_of(text, "bucket: 1h"),
            "metric reports: bucket 1h is longer than window 45m: use a bucket that divides the "
            "window, for example 15m",
        )
    ]


def test_window_not_divided_by_the_default_bucket(write: Writer) -> None:
    text = metrics("""
        - name: reports
          tier: diagnostic
          parent: weekly_active_accounts
          window: 90m
          aggregate: {event: report.sent, count: true}
    """)
    assert errors_in(write, text) == [
        (
            line_of(text, "window: 90m"),
            "metric reports: window 90m is not a whole number of the default 1h buckets: set "
            "bucket: 30m, or change the window",
        )
    ]


def test_a_full_valid_hierarchy_has_no_problem(write: Writer) -> None:
    text = metrics("""
        - name: reports_per_account
          tier: diagnostic
          parent: weekly_active_accounts
          window: 7d
          bucket: 6h
          segments: [plan]
          formula: (weekly_reports_sent + 0.0) / weekly_active_accounts
        - name: pro_reports
          tier: granular
          parent: reports_per_account
          window: 7d
          aggregate: {event: report.sent, where: {plan: pro}, sum: pages}
        - name: builds
          tier: granular
          parent: weekly_active_accounts
          window: 7d
          bucket: 7d
          aggregate: {event: build.completed, count: true}
    """)
    catalog, problems = check_definitions(write("product.yaml", text))
    assert problems == []
    assert catalog is not None
    assert [m.name for m in catalog.children("weekly_active_accounts")] == [
        "reports_per_account",
        "builds",
    ]


def test_problems_are_sorted_by_file_then_line(write: Writer) -> None:
    text = metrics("""
        - name: b_metric
          tier: diagnostic
          parent: a_metric
          window: 7d
          formula: a_metric * 2
        - name: a_metric
          tier: diagnostic
          parent: nowhere
          window: 7d
          bucket: 5h
          aggregate: {event: x, count: true}
    """)
    path = write("product.yaml", text)
    _, problems = check_definitions(path)
    lines = [p.line for p in problems]
    assert lines == sorted(lines)
    assert len(problems) == 3
    assert all(Path(p.file) == path for p in problems)
