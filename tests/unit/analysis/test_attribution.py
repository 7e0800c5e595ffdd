"""Contribution shares and the mix/rate decomposition, against hand-computed numbers."""

from __future__ import annotations

import pytest

from processor.analysis.explain.attribution import (
    additive_contributions,
    extremes,
    ratio_decomposition,
)


def test_mix_and_rate_effects_match_a_hand_computed_example() -> None:
    # Before: A converts 10/100 (0.10), B 40/100 (0.40): 50/200 = 0.25, weights 0.5 / 0.5.
    # After:  A converts 30/200 (0.15), B 20/50 (0.40): 50/250 = 0.20, weights 0.8 / 0.2.
    result = ratio_decomposition(
        {"A": 10, "B": 40}, {"A": 100, "B": 100}, {"A": 30, "B": 20}, {"A": 200, "B": 50}
    )
    assert result is not None
    assert result.before == pytest.approx(0.25)
    assert result.after == pytest.approx(0.20)
    # rate = 0.5 * (0.15 - 0.10) + 0.5 * 0 = 0.025
    assert result.rate_effect == pytest.approx(0.025)
    # mix = (0.8 - 0.5) * 0.10 + (0.2 - 0.5) * 0.40 = -0.09
    assert result.mix_effect == pytest.approx(-0.09)
    # interaction = 0.3 * 0.05 + (-0.3) * 0 = 0.015
    assert result.interaction == pytest.approx(0.015)
    assert result.unmatched == pytest.approx(0.0)
    parts = result.rate_effect + result.mix_effect + result.interaction + result.unmatched
    assert parts == pytest.approx(result.after - result.before)
    by_label = {s.label: s for s in result.segments}
    assert by_label["A"].rate_effect == pytest.approx(0.025)
    assert by_label["B"].mix_effect == pytest.approx(-0.12)


def test_entering_leaving_and_denominator_free_segments_still_add_up() -> None:
    # C enters, B leaves, and D has numerator without any denominator (organic revenue in ROAS).
    result = ratio_decomposition(
        {"A": 10, "B": 5, "D": 4},
        {"A": 20, "B": 5},
        {"A": 12, "C": 9, "D": 8},
        {"A": 20, "C": 3},
    )
    assert result is not None
    assert result.before == pytest.approx(19 / 25)
    assert result.after == pytest.approx(29 / 23)
    total = result.rate_effect + result.mix_effect + result.interaction + result.unmatched
    assert total == pytest.approx(result.after - result.before)
    by_label = {s.label: s for s in result.segments}
    assert by_label["C"].mix_effect == pytest.approx(3 / 23 * 3)  # entering: w2 * r2
    assert by_label["B"].mix_effect == pytest.approx(-(5 / 25) * 1)  # leaving: -w1 * r1
    assert by_label["D"].unmatched == pytest.approx(8 / 23 - 4 / 25)
    assert by_label["D"].rate_before is None


def test_a_ratio_without_denominator_has_no_decomposition() -> None:
    assert ratio_decomposition({"A": 1}, {"A": 0}, {"A": 1}, {"A": 2}) is None


def test_additive_shares_rank_by_absolute_contribution() -> None:
    # Total 100 -> 80. emea (30% of the base) lost 24, na lost 2, and apac grew by 6.
    before = {"emea": 30.0, "na": 50.0, "apac": 20.0}
    after = {"emea": 6.0, "na": 48.0, "apac": 26.0}
    rows = additive_contributions(before, after)
    assert [r.label for r in rows] == ["emea", "apac", "na"]
    emea = rows[0]
    assert emea.change == -24
    assert emea.share_of_change == pytest.approx(24 / 20)
    assert emea.share_of_base == pytest.approx(0.3)
    assert emea.unexpected == pytest.approx(-24 - 0.3 * -20)
    assert sum(r.change for r in rows) == -20
    assert sum(r.share_of_change or 0 for r in rows) == pytest.approx(1.0)


def test_a_value_present_at_one_time_only_counts_zero_at_the_other() -> None:
    rows = additive_contributions({"a": 5.0}, {"a": 5.0, "b": 3.0})
    assert rows[0].label == "b" and rows[0].change == 3 and rows[0].relative is None


def test_a_decliner_against_a_growing_whole_ranks_first_and_is_always_shown() -> None:
    # The whole grows by 5 while emea loses 90% of its 10: emea moved it most, the other way.
    before = {"emea": 10.0, "na": 30.0, "latam": 20.0, "apac": 20.0, "anz": 5.0}
    after = {"emea": 1.0, "na": 33.0, "latam": 23.0, "apac": 21.0, "anz": 12.0}
    rows = additive_contributions(before, after)
    assert rows[0].label == "emea" and rows[0].change == -9
    decliner, riser = extremes(rows)
    assert decliner is not None and decliner.label == "emea"
    assert riser is not None and riser.label == "anz"
    from processor.analysis.explain.render import shown_rows

    # --top 1 still shows the largest riser beside the largest decliner.
    assert [r.label for r in shown_rows(rows, 1)] == ["emea", "anz"]
    assert [r.label for r in shown_rows(rows, 3)] == ["emea", "anz", "latam"]


def test_extremes_of_values_that_only_fell_have_no_riser() -> None:
    decliner, riser = extremes(additive_contributions({"a": 5.0, "b": 3.0}, {"a": 1.0, "b": 3.0}))
    assert decliner is not None and decliner.label == "a" and riser is None
