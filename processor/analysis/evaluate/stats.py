"""Effect sizes with bootstrap confidence intervals, on the standard library only.

The unit of resampling is the account (all of an account's weeks go together, since they are not
independent), optionally within strata (signup cohorts), so that every resample keeps the
cohorts' sizes. The interval is the percentile interval of the resampled effects. The generator is
seeded: the same history gives the same interval.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from random import Random
from typing import TypeVar

Unit = TypeVar("Unit")

DEFAULT_RESAMPLES = 1000
DEFAULT_LEVEL = 0.95


@dataclass(frozen=True, slots=True)
class Effect:
    """A difference between the accounts that reach a metric and those that do not."""

    estimate: float | None  # None: not measurable (a group is empty or too small)
    low: float | None
    high: float | None
    reached_rate: float | None
    other_rate: float | None
    reached_n: int
    other_n: int

    @property
    def significant(self) -> bool:
        """The interval excludes 0 on the side of the estimate."""
        if self.estimate is None or self.low is None or self.high is None:
            return False
        return self.low > 0 or self.high < 0


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between the closest ranks (the usual sample quantile)."""
    position = (len(sorted_values) - 1) * q
    below = int(position)
    above = min(below + 1, len(sorted_values) - 1)
    fraction = position - below
    return sorted_values[below] * (1 - fraction) + sorted_values[above] * fraction


def bootstrap_interval(
    units: Sequence[Unit],
    statistic: Callable[[Sequence[Unit]], float | None],
    *,
    strata: Sequence[Hashable] | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> tuple[float, float] | None:
    """The percentile interval of `statistic` over resamples of `units` with replacement.

    With `strata` (one key per unit), each stratum is resampled to its own size. Resamples where
    the statistic has no value are skipped; None when most of them have none.
    """
    rng = Random(seed)
    groups: dict[Hashable, list[Unit]] = {}
    for index, unit in enumerate(units):
        key = strata[index] if strata is not None else None
        groups.setdefault(key, []).append(unit)
    found: list[float] = []
    for _ in range(resamples):
        sample: list[Unit] = []
        for members in groups.values():
            sample.extend(rng.choices(members, k=len(members)))
        value = statistic(sample)
        if value is not None:
            found.append(value)
    if len(found) < resamples / 2:
        return None
    found.sort()
    tail = (1 - level) / 2
    return quantile(found, tail), quantile(found, 1 - tail)


# Each unit: (reached trials, reached successes, other trials, other successes).
Tally = tuple[int, int, int, int]


def rate_difference(tallies: Sequence[Tally]) -> float | None:
    """Success rate of the reached group minus that of the others, pooled over the units."""
    reached_n = sum(t[0] for t in tallies)
    other_n = sum(t[2] for t in tallies)
    if not reached_n or not other_n:
        return None
    return sum(t[1] for t in tallies) / reached_n - sum(t[3] for t in tallies) / other_n


def rate_effect(
    tallies: Sequence[Tally],
    *,
    strata: Sequence[Hashable] | None = None,
    min_group: int = 5,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Effect:
    """The difference of rates with its interval; not measurable when either group has fewer
    than `min_group` trials (a metric that everyone, or no one, reaches tells no one apart)."""
    reached_n = sum(t[0] for t in tallies)
    other_n = sum(t[2] for t in tallies)
    reached_rate = sum(t[1] for t in tallies) / reached_n if reached_n else None
    other_rate = sum(t[3] for t in tallies) / other_n if other_n else None
    if reached_n < min_group or other_n < min_group:
        return Effect(None, None, None, reached_rate, other_rate, reached_n, other_n)
    estimate = rate_difference(tallies)
    interval = bootstrap_interval(
        tallies, rate_difference, strata=strata, resamples=resamples, seed=seed
    )
    low, high = interval if interval is not None else (None, None)
    return Effect(estimate, low, high, reached_rate, other_rate, reached_n, other_n)


# Each unit: (reached, a number such as a revenue ratio).
Measure = tuple[bool, float]


def mean_difference(measures: Sequence[Measure]) -> float | None:
    reached = [value for hit, value in measures if hit]
    other = [value for hit, value in measures if not hit]
    if not reached or not other:
        return None
    return sum(reached) / len(reached) - sum(other) / len(other)


def mean_effect(
    measures: Sequence[Measure],
    *,
    strata: Sequence[Hashable] | None = None,
    min_group: int = 5,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Effect:
    reached = [value for hit, value in measures if hit]
    other = [value for hit, value in measures if not hit]
    reached_mean = sum(reached) / len(reached) if reached else None
    other_mean = sum(other) / len(other) if other else None
    if len(reached) < min_group or len(other) < min_group:
        return Effect(None, None, None, reached_mean, other_mean, len(reached), len(other))
    interval = bootstrap_interval(
        measures, mean_difference, strata=strata, resamples=resamples, seed=seed
    )
    low, high = interval if interval is not None else (None, None)
    return Effect(
        mean_difference(measures), low, high, reached_mean, other_mean, len(reached), len(other)
    )
