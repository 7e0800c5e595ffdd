"""`unit` (CONTRACT §2) and `alert.anomaly`: what is accepted, and what a mistake says."""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.definitions import load_definitions
from tests.unit.definitions.support import Writer, errors_of, line_of, metrics, only_error

ROOT = Path(__file__).resolve().parents[3]


def _metric(unit: str) -> str:
    return f"""
        - name: pipeline
          tier: diagnostic
          parent: weekly_active_accounts
          window: 30d
          unit: {unit}
          aggregate: {{event: opportunity.created, sum: amount}}
    """


@pytest.mark.parametrize(
    "unit", ["count", "percent", "ratio", "seconds", "currency:USD", "currency:EUR"]
)
def test_every_contract_unit_is_accepted(write: Writer, unit: str) -> None:
    assert errors_of(write("gtm.yaml", metrics(_metric(unit)))) == []


@pytest.mark.parametrize("unit", ["dollars", "currency:usd", "currency:US", "percentunit", "5"])
def test_other_units_are_rejected_with_the_list_of_units(write: Writer, unit: str) -> None:
    text = metrics(_metric(unit))
    error = only_error(write("gtm.yaml", text))
    assert error.line == line_of(text, f"unit: {unit}")
    assert "count, percent, ratio, seconds or currency:<ISO 4217 code>" in error.message


def test_the_default_unit_is_count(write: Writer) -> None:
    path = write("gtm.yaml", metrics())
    assert {m.unit for m in load_definitions(path.parent)} == {"count"}


def test_example_definitions_set_money_and_percent_units() -> None:
    catalog = load_definitions(ROOT / "definitions")
    for name in ("pipeline_30d", "ad_spend_30d", "new_business_arr_30d", "churned_mrr_30d"):
        assert catalog[name].unit == "currency:USD", name
    assert catalog["win_rate_30d"].unit == "percent"
    assert catalog["weekly_active_accounts_3plus_reports"].unit == "count"


def test_an_anomaly_alone_is_an_alert_with_robust_defaults(write: Writer) -> None:
    text = metrics("""
        - name: reports
          tier: diagnostic
          parent: weekly_active_accounts
          window: 7d
          aggregate: {event: report.sent, count: true}
          alert:
            anomaly: {}
    """)
    catalog = load_definitions(write("product.yaml", text).parent)
    anomaly = catalog["reports"].alert.anomaly  # type: ignore[union-attr]
    assert anomaly is not None
    assert (anomaly.deviations, anomaly.min_drop_pct, anomaly.for_) == (3, 10, "8d")


def test_an_anomaly_with_a_misspelt_key_says_which(write: Writer) -> None:
    text = metrics("""
        - name: reports
          tier: diagnostic
          parent: weekly_active_accounts
          window: 7d
          aggregate: {event: report.sent, count: true}
          alert:
            anomaly: {deviatons: 2, for: 2w}
    """)
    error = only_error(write("product.yaml", text))
    assert "unknown key 'deviatons' in alert.anomaly (did you mean 'deviations'?)" in error.message
