"""The model layer: each problem with one metric says what is wrong, where, and what to write."""

from __future__ import annotations

import pytest

from tests.unit.definitions.support import Writer, errors_of, line_of, metrics, only_error


def test_window_that_is_not_a_duration(write: Writer) -> None:
    text = metrics("""
        - name: monthly_reports
          tier: diagnostic
          parent: weekly_active_accounts
          window: 7x
          aggregate: {event: report.sent, count: true}
    """)
    path = write("product.yaml", text)
    error = only_error(path)
    assert str(error) == (
        f"{path}:{line_of(text, 'window: 7x')}: metric monthly_reports: window '7x' is not a "
        "duration: write a positive integer followed by s, m, h, d or w (7d, 30d)"
    )


@pytest.mark.parametrize(("key", "needle"), [("bucket", "bucket: 0h"), ("alert.for", "for: soon")])
def test_other_durations(write: Writer, key: str, needle: str) -> None:
    text = metrics("""
        - name: reports
          tier: diagnostic
          parent: weekly_active_accounts
          window: 7d
          bucket: 0h
          aggregate: {event: report.sent, count: true}
          alert:
            drop_pct: 20
            for: soon
    """)
    errors = errors_of(write("product.yaml", text))
    error = next(e for e in errors if f" {key} " in e.message)
    assert error.line == line_of(text, needle)
    value = needle.split(": ")[1]
    assert error.message == (
        f"metric reports: {key} '{value}' is not a duration: write a positive integer "
        "followed by s, m, h, d or w (7d, 30d)"
    )


def test_unknown_key_suggests_the_closest_and_lists_the_allowed(write: Writer) -> None:
    text = metrics("""
        - name: reports
          tier: diagnostic
          parent: weekly_active_accounts
          windw: 7d
          window: 7d
          aggregate: {event: report.sent, count: true}
    """)
    error = only_error(write("product.yaml", text))
    assert error.line == line_of(text, "windw")
    assert error.message == (
        "metric reports: unknown key 'windw' (did you mean 'window'?): the allowed keys are "
        "name, title, description, tier, parent, backup_for, window, bucket, unit, segments, "
        "max_segment_values, alert, entities, aggregate, formula"
    )


def test_unknown_key_without_a_close_match(write: Writer) -> None:
    text = metrics("""
        - name: reports
          tier: diagnostic
          parent: weekly_active_accounts
          window: 7d
          aggregate: {event: report.sent, count: true}
          owner: growth-team
    """)
    error = only_error(write("product.yaml", text))
    assert error.line == line_of(text, "owner")
    assert error.message.startswith(
        "metric reports: unknown key 'owner': the allowed keys are name"
    )


def test_unknown_key_inside_a_condition(write: Writer) -> None:
    text = metrics("""
        - name: engaged_accounts
          tier: diagnostic
          parent: weekly_active_accounts
          window: 7d
          entities:
            key: account_id
            all:
              - event: report.sent
                count_at_least: 1
              - event: build.completed
                count_atleast: 2
    """)
    error = only_error(write("product.yaml", text))
    assert error.line == line_of(text, "count_atleast")
    assert error.message == (
        "metric engaged_accounts: unknown key 'count_atleast' in entities.all[1] (did you mean "
        "'count_at_least'?): the allowed keys are event, where, count_at_least, distinct, sum, "
        "at_least, each_count_at_least"
    )


def test_unknown_filter_operator(write: Writer) -> None:
    text = metrics("""
        - name: pro_reports
          tier: diagnostic
          parent: weekly_active_accounts
          window: 7d
          aggregate:
            event: report.sent
            where:
              plan:
                inn: [pro, team]
            count: true
    """)
    error = only_error(write("product.yaml", text))
    assert error.line == line_of(text, "inn:")
    assert error.message == (
        "metric pro_reports: unknown filter operator 'inn' in aggregate.where.plan (did you mean "
        "'in'?): the operators are in, not_in, not, gt, gte, lt, lte, exists"
    )


def test_filter_that_is_neither_a_value_nor_operators(write: Writer) -> None:
    text = metrics("""
        - name: pro_reports
          tier: diagnostic
          parent: weekly_active_accounts
          window: 7d
          aggregate:
            event: report.sent
            where: {plan: [pro, team]}
            count: true
    """)
    error = only_error(write("product.yaml", text))
    assert error.line == line_of(text, "where:")
    assert error.message == (
        "metric pro_reports: aggregate.where.plan is a list, which is not a filter: write plan: "
        "VALUE to match a value, or a mapping of operators (in, not_in, not, gt, gte, lt, lte, "
        "exists)"
    )


def test_unknown_tier(write: Writer) -> None:
    text = metrics("""
        - name: reports
          tier: northstar
          window: 7d
          aggregate: {event: report.sent, count: true}
    """)
    error = only_error(write("product.yaml", text))
    assert error.line == line_of(text, "tier: northstar")
    assert error.message == (
        "metric reports: tier 'northstar' is not a tier: use one of north_star, diagnostic, "
        "granular (did you mean 'north_star'?)"
    )


def test_missing_key_is_reported_at_the_metric(write: Writer) -> None:
    text = metrics("""
        - name: reports
          tier: diagnostic
          parent: weekly_active_accounts
          aggregate: {event: report.sent, count: true}
    """)
    error = only_error(write("product.yaml", text))
    assert error.line == line_of(text, "name: reports")
    assert error.message == (
        "metric reports: missing key 'window': add window: 7d (the rolling window length; "
        "30d, 90d ... also work)"
    )


def test_more_than_three_segments(write: Writer) -> None:
    text = metrics("""
        - name: reports
          tier: diagnostic
          parent: weekly_active_accounts
          window: 7d
          segments: [plan, region, industry, seats]
          aggregate: {event: report.sent, count: true}
    """)
    error = only_error(write("product.yaml", text))
    assert error.line == line_of(text, "segments: [plan, region, industry")
    assert error.message == (
        "metric reports: segments lists 4 fields (plan, region, industry, seats): at most 3 are "
        "allowed; keep the 3 that explain the metric best"
    )


def test_name_that_is_not_snake_case(write: Writer) -> None:
    text = metrics("""
        - name: Weekly-Reports
          tier: diagnostic
          parent: weekly_active_accounts
          window: 7d
          aggregate: {event: report.sent, count: true}
    """)
    error = only_error(write("product.yaml", text))
    assert error.line == line_of(text, "Weekly-Reports")
    assert error.message == (
        "metric Weekly-Reports: name 'Weekly-Reports' must be snake_case: lowercase letters, "
        "digits and _, starting with a letter"
    )


def test_exactly_one_measure(write: Writer) -> None:
    text = metrics("""
        - name: reports
          tier: diagnostic
          parent: weekly_active_accounts
          window: 7d
          aggregate: {event: report.sent, count: true}
          formula: weekly_reports_sent * 2
    """)
    error = only_error(write("product.yaml", text))
    assert error.line == line_of(text, "name: reports")
    assert error.message == (
        "metric reports: a metric has exactly one of entities, aggregate, formula; "
        "found aggregate, formula"
    )
