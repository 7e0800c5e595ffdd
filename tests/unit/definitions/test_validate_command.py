"""`nsm validate`: output, summary, tree and exit status."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from processor.cli import main
from tests.unit.definitions.support import Writer, line_of, metrics

HIERARCHY = metrics("""
    - name: reports_per_account
      title: Reports per active account
      tier: diagnostic
      parent: weekly_active_accounts
      window: 7d
      formula: weekly_reports_sent / weekly_active_accounts
    - name: pro_reports
      tier: granular
      parent: reports_per_account
      window: 7d
      aggregate: {event: report.sent, where: {plan: pro}, count: true}
""")


def validate(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["validate", *args], env=env)
    return result.exit_code, result.output


def test_valid_definitions_exit_0_with_a_summary(write: Writer) -> None:
    write("product.yaml", HIERARCHY)
    path = write("more.yml", metrics())
    code, output = validate(str(path.parent / "product.yaml"))
    assert (code, output) == (
        0,
        "4 metrics in 1 file: 2 north stars, 1 diagnostic, 1 granular; 0 errors, 0 warnings\n",
    )


def test_errors_exit_1_and_each_is_printed(write: Writer) -> None:
    text = metrics("""
        - name: reports
          tier: diagnostic
          parent: weekly_active_acounts
          window: 7x
          aggregate: {event: report.sent, count: true}
        - name: builds
          tier: granular
          parent: weekly_active_accounts
          window: 1d
          bucket: 5h
          aggregate: {event: build.completed, count: true}
    """)
    path = write("product.yaml", text)
    code, output = validate(str(path.parent))
    assert code == 1
    assert output.splitlines() == [
        f"{path}:{line_of(text, 'window: 7x')}: metric reports: window '7x' is not a duration: "
        "write a positive integer followed by s, m, h, d or w (7d, 30d)",
        f"{path}:{line_of(text, 'bucket: 5h')}: metric builds: bucket 5h does not divide window "
        "1d: use a bucket that divides it, for example 1h",
        "4 metrics in 1 file: 2 north stars, 0 diagnostics, 1 granular, 1 not understood; "
        "2 errors, 0 warnings",
    ]


def test_warnings_are_printed_but_exit_0(write: Writer) -> None:
    text = metrics("""
        - name: signups
          tier: north_star
          window: 7d
          aggregate: {event: user.signed_up, count: true}
    """)
    path = write("product.yaml", text)
    code, output = validate(str(path.parent))
    assert code == 0
    lines = output.splitlines()
    assert lines[0] == (
        f"{path}:{line_of(text, 'name: signups')}: warning: metric signups: north star without "
        "a backup: add a north star with backup_for: signups, to steer by when this one cannot "
        "be trusted"
    )
    assert lines[1].startswith(f"{path}:{line_of(text, 'user.signed_up')}: warning: metric signups")
    assert lines[2] == (
        "3 metrics in 1 file: 3 north stars, 0 diagnostics, 0 granular; 0 errors, 2 warnings"
    )


def test_missing_directory_exits_2(tmp_path: Path) -> None:
    code, output = validate(str(tmp_path / "nowhere"))
    assert code == 2
    assert output == (
        f"nsm validate: {tmp_path / 'nowhere'} does not exist: pass the directory holding the "
        "metric definitions (*.yaml), or set NSM_DEFINITIONS\n"
    )


def test_directory_without_definition_files_exits_2(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("metrics: []")
    code, output = validate(str(tmp_path))
    assert code == 2
    assert "holds no definition files: add *.yaml files with a top-level metrics: list" in output


def test_directory_from_the_environment(write: Writer) -> None:
    path = write("product.yaml", HIERARCHY)
    code, output = validate(env={"NSM_DEFINITIONS": str(path.parent)})
    assert code == 0
    assert output.startswith("4 metrics in 1 file")


def test_default_directory_is_definitions(write: Writer, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write("product.yaml", HIERARCHY)
    monkeypatch.delenv("NSM_DEFINITIONS", raising=False)
    monkeypatch.chdir(path.parent.parent)
    assert validate()[0] == 0
    monkeypatch.chdir(path.parent)  # no definitions/ here
    code, output = validate()
    assert code == 2
    assert output.startswith("nsm validate: definitions does not exist")


def test_tree_shows_the_hierarchy_with_backups_beside_their_north_star(write: Writer) -> None:
    path = write("product.yaml", HIERARCHY)
    code, output = validate("--tree", str(path.parent))
    assert code == 0
    lines = output.splitlines()
    names = [next(w for w in line.split() if w.isidentifier()) for line in lines[1:5]]
    assert lines[0] == "KPI hierarchy"
    assert names == [
        "weekly_active_accounts",
        "reports_per_account",
        "pro_reports",
        "weekly_reports_sent",
    ]
    indents = [len(line) - len(line.lstrip("│├└─ ")) for line in lines[1:5]]
    assert indents == [4, 8, 12, 4]
    assert "(north star, 7d, backup for weekly_active_accounts)" in lines[4]
    assert "Reports per active account" in lines[2]
    assert lines[-1].startswith("4 metrics in 1 file")


def test_tree_is_not_printed_when_there_are_errors(write: Writer) -> None:
    path = write("product.yaml", metrics("- {name: broken}"))
    code, output = validate("--tree", str(path.parent))
    assert code == 1
    assert "KPI hierarchy" not in output


def test_help_describes_the_command() -> None:
    code, output = validate("--help")
    text = " ".join(output.split())
    assert code == 0
    assert "DIRECTORY defaults to $NSM_DEFINITIONS, else definitions/" in text
    assert "--tree Also print the KPI hierarchy as a tree (when there is no error)." in text
    assert "0 when there is no error, 1 when there is at least one error, 2 when" in text
