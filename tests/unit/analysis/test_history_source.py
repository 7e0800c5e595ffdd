"""`HistorySource`: values of a replayed namespace's history as of any time in its span."""

from __future__ import annotations

from decimal import Decimal

import pytest

from processor.analysis.source import HistorySource
from processor.engine import MetricValue

H = 3_600_000
POINTS = [
    (10 * H, {"m": {"value": 3, "segments": {"plan": {"pro": 2, "free": 1}}},
              "r": {"value": 0.25, "segments": {}}}),
    (11 * H, {"m": {"value": 5, "segments": {"plan": {"pro": 5}}},
              "r": {"value": None, "segments": {}}}),
]  # fmt: skip


def test_a_value_holds_from_its_point_until_the_next():
    source = HistorySource(POINTS, end_ms=11 * H + 30 * 60_000)
    values = source.values_at([10 * H, 11 * H - 1, 11 * H, 11 * H + 30 * 60_000])
    assert values[10 * H]["m"] == MetricValue(3, {"plan": {"pro": 2, "free": 1}})
    assert values[11 * H - 1] == values[10 * H]
    assert values[11 * H]["m"] == MetricValue(5, {"plan": {"pro": 5}})
    assert values[11 * H + 30 * 60_000] == values[11 * H]


def test_numbers_come_back_as_the_engine_holds_them():
    values = HistorySource(POINTS, end_ms=11 * H).values_at([10 * H, 11 * H])
    assert isinstance(values[10 * H]["m"].value, int)
    assert values[10 * H]["r"].value == Decimal("0.25")
    assert values[11 * H]["r"].value is None


@pytest.mark.parametrize("t", [10 * H - 1, 11 * H + 1])
def test_times_outside_the_history_are_refused_with_what_to_do(t: int):
    with pytest.raises(ValueError, match="replay further back"):
        HistorySource(POINTS, end_ms=11 * H).values_at([t])
