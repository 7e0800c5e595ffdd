"""The weekly rhythm of business software, and the random counts drawn from it.

Usage follows the customer's local working week: busy mornings and afternoons with a lunch dip,
quiet nights, and weekends at a fraction of a weekday.
"""

from __future__ import annotations

import math
from random import Random

from processor.generate.config import HOUR_MS
from processor.generate.vocabulary import REGION_UTC_OFFSET

HOURS_PER_WEEK = 168
# 1970-01-01, hour 0 of the epoch, was a Thursday: 3 days after a Monday.
_EPOCH_HOUR_OF_WEEK = 3 * 24

# Relative activity by local hour of a working day (index 0 = midnight to 1 am).
_DAY_SHAPE = (
    0.15, 0.10, 0.08, 0.08, 0.10, 0.20, 0.40, 0.80, 1.40, 1.90, 2.00, 1.90,
    1.50, 1.80, 1.90, 1.80, 1.50, 1.10, 0.70, 0.50, 0.40, 0.35, 0.30, 0.20,
)  # fmt: skip
# Saturday and Sunday relative to a weekday.
WEEKEND_FACTOR = (0.3, 0.22)


def _weekly_table(utc_offset_hours: int) -> tuple[float, ...]:
    """Factor for each hour of the UTC week (0 = Monday 00:00 UTC); weekday hours average 1."""
    mean = sum(_DAY_SHAPE) / 24
    table = []
    for utc_hour in range(HOURS_PER_WEEK):
        local = (utc_hour + utc_offset_hours) % HOURS_PER_WEEK
        day, hour = divmod(local, 24)
        factor = _DAY_SHAPE[hour] / mean
        if day >= 5:
            factor *= WEEKEND_FACTOR[day - 5]
        table.append(factor)
    return tuple(table)


WEEKLY_FACTOR_BY_REGION = {region: _weekly_table(o) for region, o in REGION_UTC_OFFSET.items()}
# The average factor over a whole week, to turn weekday rates into expected weekly volumes.
MEAN_WEEK_FACTOR = (5 + sum(WEEKEND_FACTOR)) / 7


def hour_of_week(hour_start_ms: int) -> int:
    return (hour_start_ms // HOUR_MS + _EPOCH_HOUR_OF_WEEK) % HOURS_PER_WEEK


def poisson(rng: Random, mean: float) -> int:
    """A Poisson count: exact (Knuth) for small means, the normal approximation above 30."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit = math.exp(-mean)
    count = 0
    product = rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count
