from __future__ import annotations

from processor.definitions.model import Metric
from processor.engine.windows import WindowBounds, bucket_of, is_late, window_bounds

HOUR = 3_600_000
WEEK = Metric.model_validate(
    {"name": "w", "tier": "diagnostic", "window": "7d", "aggregate": {"event": "a", "count": True}}
)


def test_buckets_floor_and_align_to_the_epoch() -> None:
    assert bucket_of(0, HOUR) == 0
    assert bucket_of(HOUR - 1, HOUR) == 0
    assert bucket_of(HOUR, HOUR) == 1
    assert bucket_of(-1, HOUR) == -1


def test_the_window_is_the_n_buckets_ending_with_the_one_holding_t() -> None:
    bounds = window_bounds(10 * HOUR + 5, WEEK)
    assert bounds == WindowBounds(10 - 168 + 1, 10)
    assert bounds.last - bounds.first + 1 == WEEK.buckets_in_window == 168
    assert 10 in bounds and (10 - 167) in bounds
    assert 11 not in bounds and (10 - 168) not in bounds


def test_late_means_before_the_window_as_of_the_clock() -> None:
    clock = 200 * HOUR
    first = window_bounds(clock, WEEK).first
    assert is_late(first - 1, clock, WEEK)
    assert not is_late(first, clock, WEEK)
    assert not is_late(201, clock, WEEK)
