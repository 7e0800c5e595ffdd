"""Formula rules: parse, operands exist, same window, shared segments, no cycles."""

from __future__ import annotations

from tests.unit.definitions.support import Writer, errors_in, line_of, metrics


def test_formula_parses(write: Writer) -> None:
    text = metrics("""
        - name: ratio
          tier: diagnostic
          parent: weekly_active_accounts
          window: 7d
          formula: weekly_reports_sent // weekly_active_accounts
    """)
    [(line, message)] = errors_in(write, text)
    assert line == line_of(text, "formula:")
    assert message.startswith("metric ratio: formula 'weekly_reports_sent // weekly_active_")
    assert message.endswith("only metric names, numbers, + - * / and parentheses")


def test_formula_operands_exist(write: Writer) -> None:
    text = metrics("""
        - name: ratio
          tier: diagnostic
          parent: weekly_active_accounts
          window: 7d
          formula: weekly_reports_sent / weekly_active_acounts
    """)
    assert errors_in(write, text) == [
        (
            line_of(text, "formula:"),
            "metric ratio: formula 'weekly_active_acounts' is not a defined metric (did you mean "
            "'weekly_active_accounts'?): name a metric defined in the definitions",
        )
    ]


def test_formula_does_not_use_itself(write: Writer) -> None:
    text = metrics("""
        - name: ratio
          tier: diagnostic
          parent: weekly_active_accounts
          window: 7d
          formula: ratio * 2
    """)
    assert errors_in(write, text) == [
        (
            line_of(text, "formula:"),
            "metric ratio: the formula uses the metric itself: build it from other metrics",
        )
    ]


def test_formula_uses_some_metric(write: Writer) -> None:
    text = metrics("""
        - name: constant
          tier: diagnostic
          parent: weekly_active_accounts
          window: 7d
          formula: (1 + 2) * 3
    """)
    assert errors_in(write, text) == [
        (
            line_of(text, "formula:"),
            "metric constant: formula '(1 + 2) * 3' uses no metric: combine other metrics, for "
            "example deals_won / opportunities_created",
        )
    ]


def test_formula_operands_have_its_window(write: Writer) -> None:
    text = metrics("""
        - name: monthly_reports
          tier: diagnostic
          parent: weekly_active_accounts
          window: 30d
          aggregate: {event: report.sent, count: true}
        - name: ratio
          tier: diagnostic
          parent: weekly_active_accounts
          window: 7d
          formula: monthly_reports / weekly_active_accounts
    """)
    assert errors_in(write, text) == [
        (
            line_of(text, "formula: monthly_reports"),
            "metric ratio: formula operand 'monthly_reports' has window 30d but this metric's "
            "window is 7d: a formula combines metrics of the same window; use operands with "
            "window 7d",
        )
    ]


def test_formula_segments_are_segments_of_every_operand(write: Writer) -> None:
    text = metrics("""
        - name: reports_per_account
          tier: diagnostic
          parent: weekly_active_accounts
          window: 7d
          formula: weekly_reports_sent / weekly_active_accounts
        - name: ratio_by_plan
          tier: diagnostic
          parent: weekly_active_accounts
          window: 7d
          segments: [plan]
          formula: reports_per_account * 100
        - name: ratio_by_region
          tier: diagnostic
          parent: weekly_active_accounts
          window: 7d
          segments: [plan, region]
          formula: weekly_reports_sent / weekly_active_accounts
    """)
    # reports_per_account breaks down by what both operands share (plan), so ratio_by_plan is fine.
    assert errors_in(write, text) == [
        (
            line_of(text, "segments: [plan, region]", 2),
            "metric ratio_by_region: segment 'region' is not a segment of weekly_active_accounts: "
            "a formula breaks down only by fields every operand has; add 'region' to their "
            "segments or remove it here",
        )
    ]


def test_formulas_without_cycles(write: Writer) -> None:
    text = metrics("""
        - name: ratio_a
          tier: diagnostic
          parent: weekly_active_accounts
          window: 7d
          formula: ratio_b + 1
        - name: ratio_b
          tier: diagnostic
          parent: weekly_active_accounts
          window: 7d
          formula: ratio_c * 2
        - name: ratio_c
          tier: diagnostic
          parent: weekly_active_accounts
          window: 7d
          formula: ratio_a / weekly_reports_sent
    """)
    assert errors_in(write, text) == [
        (
            line_of(text, "formula: ratio_b"),
            "metric ratio_a: formulas form a cycle: ratio_a -> ratio_b -> ratio_c -> ratio_a: "
            "break it by changing one of them",
        )
    ]
