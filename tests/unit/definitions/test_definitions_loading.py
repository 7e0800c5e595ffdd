"""Reading definition files: YAML, the top-level layout, collecting every problem, the API."""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.definitions import (
    DefinitionsInvalid,
    DefinitionsNotFound,
    catalog_from_dicts,
    check_definitions,
    load_definitions,
)
from tests.unit.definitions.support import Writer, line_of, metrics, only_error, problems_of


def test_valid_definitions_load_with_their_source_lines(write: Writer) -> None:
    text = metrics()
    path = write("product.yaml", text)
    catalog, problems = check_definitions(path.parent)
    assert problems == []
    assert catalog is not None
    assert list(catalog.metrics) == ["weekly_active_accounts", "weekly_reports_sent"]
    assert catalog["weekly_reports_sent"].source == (
        str(path),
        line_of(text, "weekly_reports_sent"),
    )
    assert catalog["weekly_active_accounts"].source == (str(path), 2)


def test_files_are_read_in_name_order_and_other_files_are_ignored(write: Writer) -> None:
    write(
        "b.yml",
        metrics(
            "- {name: b_metric, tier: granular, parent: a_metric, window: 7d, "
            "aggregate: {event: x, count: true}}",
            base=False,
        ),
    )
    write(
        "a.yaml",
        metrics(
            "- {name: a_metric, tier: diagnostic, parent: weekly_active_accounts, "
            "window: 7d, aggregate: {event: x, count: true}}"
        ),
    )
    write("notes.txt", "metrics: [not, yaml, definitions]")
    write(".#a.yaml", "metrics: [")  # an editor's lock file
    catalog = load_definitions(write("c.yaml", "metrics: []\n").parent)
    assert list(catalog.metrics) == [
        "weekly_active_accounts",
        "weekly_reports_sent",
        "a_metric",
        "b_metric",
    ]


def test_a_single_file_can_be_checked(write: Writer) -> None:
    path = write("product.yaml", metrics())
    write("broken.yaml", "metrics: [")
    assert len(load_definitions(path)) == 2


def test_yaml_syntax_error_is_reported_at_its_line(write: Writer) -> None:
    text = metrics("""
        - name: broken
          tier: diagnostic
          window: [7d
          aggregate: {event: x, count: true}
    """)
    error = only_error(write("product.yaml", text))
    assert error.line == line_of(text, "aggregate: {event: x")
    assert error.message.startswith("YAML syntax error: while parsing a flow sequence")
    assert error.message.endswith("fix the YAML at this line")


def test_file_without_metrics_list(write: Writer) -> None:
    error = only_error(write("product.yaml", "- name: x\n"))
    assert (error.line, error.message) == (
        1,
        "the file has no top-level metrics: list: start it with metrics: and a list of metrics",
    )


def test_metrics_that_is_not_a_list(write: Writer) -> None:
    error = only_error(write("product.yaml", "# comment\nmetrics: weekly_active_accounts\n"))
    assert (error.line, error.message) == (
        2,
        "metrics: is not a list: write each metric as '- name: ...'",
    )


def test_unknown_top_level_key(write: Writer) -> None:
    text = metrics() + "version: 2\n"
    error = only_error(write("product.yaml", text))
    assert error.line == line_of(text, "version")
    assert error.message.startswith("unknown top-level key 'version': a definitions file holds")


def test_entry_that_is_not_a_mapping(write: Writer) -> None:
    text = metrics("- just_a_name")
    error = only_error(write("product.yaml", text))
    assert error.line == line_of(text, "just_a_name")
    assert "a metric is a mapping (name: ..., tier: ..., window: ...)" in error.message


def test_repeated_key(write: Writer) -> None:
    text = metrics("""
        - name: wau_copy
          tier: north_star
          backup_for: weekly_active_accounts
          window: 7d
          window: 30d
          aggregate: {event: x, count: true}
    """)
    error = only_error(write("product.yaml", text))
    assert error.line == line_of(text, "window: 30d")
    assert error.message == (
        f"key 'window' is repeated (first at line {line_of(text, 'window: 7d', 3)}); "
        "YAML would keep only this one: remove one"
    )


def test_every_problem_of_every_file_is_reported_in_order(write: Writer) -> None:
    first = metrics("""
        - name: a_reports
          tier: diagnostic
          parent: weekly_active_accounts
          window: 7q
          aggregate: {event: report.sent, count: yes_please}
    """)
    second = metrics(
        """
        - name: b_reports
          tier: granular
          window: 7d
          segments: [a, b, c, d]
          aggregate: {event: report.sent, count: true}
        - name: c_reports
          tier: diagnostic
          colour: blue
    """,
        base=False,
    )
    write("a.yaml", first)
    path = write("b.yaml", second)
    problems = problems_of(path.parent)
    located = [(Path(p.file).name, p.line) for p in problems if p.severity == "error"]
    assert located == [
        ("a.yaml", line_of(first, "window: 7q")),
        ("a.yaml", line_of(first, "yes_please")),
        ("b.yaml", line_of(second, "segments")),
        ("b.yaml", line_of(second, "c_reports")),
        ("b.yaml", line_of(second, "c_reports")),
        ("b.yaml", line_of(second, "colour")),
    ]
    assert [p.message for p in problems if p.line == line_of(second, "c_reports")] == [
        "metric c_reports: missing key 'window': add window: 7d (the rolling window length; "
        "30d, 90d ... also work)",
        "metric c_reports: a metric has exactly one of entities, aggregate, formula; found none",
    ]


def test_a_reference_to_a_rejected_metric_is_not_also_called_unknown(write: Writer) -> None:
    text = metrics("""
        - name: reports
          tier: diagnostic
          parent: weekly_active_accounts
          window: 7x
          aggregate: {event: report.sent, count: true}
        - name: pro_reports
          tier: granular
          parent: reports
          window: 7d
          aggregate: {event: report.sent, count: true}
    """)
    error = only_error(write("product.yaml", text))
    assert error.line == line_of(text, "window: 7x")


def test_missing_or_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(DefinitionsNotFound, match="does not exist"):
        check_definitions(tmp_path / "nowhere")
    (tmp_path / "README.md").write_text("no definitions here")
    with pytest.raises(DefinitionsNotFound, match="holds no definition files"):
        load_definitions(tmp_path)


def test_load_definitions_raises_with_every_problem(write: Writer) -> None:
    text = metrics("""
        - name: reports
          tier: diagnostic
          window: 7x
          aggregate: {event: report.sent, count: true}
        - name: more_reports
          tier: diagnostic
          parent: nothing_here
          window: 7d
          aggregate: {event: report.sent, count: true}
    """)
    path = write("product.yaml", text)
    with pytest.raises(DefinitionsInvalid) as caught:
        load_definitions(path.parent)
    assert [p.line for p in caught.value.problems] == [
        line_of(text, "window: 7x"),
        line_of(text, "nothing_here"),
    ]
    assert str(caught.value).splitlines() == [
        "invalid metric definitions (2 errors):",
        *(f"  {p}" for p in caught.value.problems),
    ]


def test_catalog_from_dicts_runs_the_same_checks() -> None:
    good = {
        "name": "weekly_reports",
        "tier": "north_star",
        "window": "7d",
        "aggregate": {"event": "report.sent", "count": True},
    }
    catalog = catalog_from_dicts([good])
    assert catalog["weekly_reports"].source == ("<memory>", 1)
    with pytest.raises(DefinitionsInvalid) as caught:
        catalog_from_dicts([good, {**good, "window": "7x"}, {**good, "bucket": "5d"}])
    errors = [str(p) for p in caught.value.problems if p.severity == "error"]
    assert errors == [
        "<memory>:2: metric weekly_reports: window '7x' is not a duration: write a positive "
        "integer followed by s, m, h, d or w (7d, 30d)",
        "<memory>:3: metric weekly_reports: the name is already used by the metric at "
        "<memory>:1: names are unique across all files; rename one of them",
        "<memory>:3: metric weekly_reports: bucket 5d does not divide window 7d: use a bucket "
        "that divides it, for example 1d",
    ]
