"""Bootstrap intervals: they cover a known effect, include 0 without one, and are reproducible."""

from __future__ import annotations

from collections.abc import Sequence
from random import Random

from processor.analysis.evaluate.stats import Tally, bootstrap_interval, mean_effect, rate_effect


def _accounts(p_reached: float, p_other: float, n: int, seed: int) -> list[Tally]:
    rng = Random(seed)
    units: list[Tally] = []
    for k in range(n):
        if k % 2:
            units.append((1, int(rng.random() < p_reached), 0, 0))
        else:
            units.append((0, 0, 1, int(rng.random() < p_other)))
    return units


def test_interval_covers_a_known_effect_and_excludes_zero() -> None:
    effect = rate_effect(_accounts(0.8, 0.4, 400, seed=3), resamples=500, seed=1)
    assert effect.estimate is not None and effect.low is not None and effect.high is not None
    assert effect.low < 0.4 < effect.high
    assert effect.significant
    assert 0.05 < effect.high - effect.low < 0.3  # neither degenerate nor useless


def test_interval_includes_zero_when_there_is_no_effect() -> None:
    effect = rate_effect(_accounts(0.6, 0.6, 400, seed=5), resamples=500, seed=1)
    assert effect.low is not None and effect.high is not None
    assert effect.low < 0 < effect.high
    assert not effect.significant


def test_known_effect_is_covered_in_most_repetitions() -> None:
    covered = 0
    for seed in range(20):
        effect = rate_effect(_accounts(0.7, 0.5, 300, seed=seed), resamples=300, seed=seed)
        assert effect.low is not None and effect.high is not None
        covered += effect.low <= 0.2 <= effect.high
    assert covered >= 16  # a 95% interval; 16 of 20 leaves room for chance


def test_same_seed_same_interval_and_strata_keep_their_sizes() -> None:
    units = list(range(30))
    strata = ["a"] * 10 + ["b"] * 20

    def share_of_a(sample: Sequence[int]) -> float | None:
        return sum(1 for u in sample if u < 10) / len(sample)

    interval = bootstrap_interval(units, share_of_a, strata=strata, resamples=200, seed=9)
    assert interval == bootstrap_interval(units, share_of_a, strata=strata, resamples=200, seed=9)
    assert interval == (1 / 3, 1 / 3)  # stratified: every resample keeps 10 of a in 30


def test_too_small_a_group_is_not_measurable() -> None:
    effect = rate_effect([(1, 1, 0, 0)] * 50 + [(0, 0, 1, 0)] * 3)
    assert effect.estimate is None and effect.other_n == 3
    assert mean_effect([(True, 1.0)] * 10).estimate is None
