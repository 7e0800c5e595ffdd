"""OpenMetrics export of a history, and the `--from` of a replay."""

from __future__ import annotations

import pytest

from processor.replay.export import History, openmetrics
from processor.replay.source import SourceError, parse_from

HOUR = 3_600_000
T0 = 1_795_168_800_000


def history() -> History:
    points = [
        (T0, {"m": {"value": 1, "segments": {"plan": {"pro": 1}}},
              "r": {"value": None, "segments": {}}}),
        (T0 + HOUR, {"m": {"value": 2, "segments": {"plan": {"pro": 1, 'a"b': 1}}},
                     "r": {"value": 0.5, "segments": {}}}),
    ]  # fmt: skip
    return History({"m": "north_star", "r": "diagnostic"}, HOUR, T0 + HOUR + 30 * 60_000, points)


def test_series_are_grouped_time_ordered_and_hold_their_value_until_the_next_point():
    lines = list(openmetrics(history(), 30 * 60_000, extra_labels={"job": "nsm"}))
    assert lines[1] == "# TYPE nsm_metric_value gauge\n" and lines[-1] == "# EOF\n"
    samples = [line.split("} ") for line in lines[2:-1]]
    # Prometheus keeps no empty label: the total is written without segment labels.
    total = 'nsm_metric_value{metric="m",tier="north_star",job="nsm"'
    assert [s[1] for s in samples if s[0] == total] == [
        f"1 {T0 // 1000}\n", f"1 {T0 // 1000 + 1800}\n", f"2 {T0 // 1000 + 3600}\n",
        f"2 {T0 // 1000 + 5400}\n",
    ]  # fmt: skip
    # A label that appears later has samples only from then; quotes are escaped.
    escaped = [s for s in samples if 'segment_value="a\\"b"' in s[0]]
    assert [s[1] for s in escaped] == [f"1 {T0 // 1000 + 3600}\n", f"1 {T0 // 1000 + 5400}\n"]
    # No value (a division by zero): no sample.
    ratio = [s[1] for s in samples if 'metric="r"' in s[0]]
    assert ratio == ["0.5 " + str(T0 // 1000 + 3600) + "\n", "0.5 " + str(T0 // 1000 + 5400) + "\n"]
    keys = [s[0] for s in samples]
    runs = [k for i, k in enumerate(keys) if i == 0 or keys[i - 1] != k]
    assert len(runs) == len(set(keys))  # each series' samples together


def test_a_sample_where_the_value_changes_then_one_per_lookback_while_it_holds():
    # 40 minutes of lookback against hourly points: the total changes at the second point and
    # gets a sample there; `pro` keeps its value and its samples keep their 40-minute rhythm.
    lines = list(openmetrics(history(), 40 * 60_000))
    t0 = T0 // 1000

    def times(needle: str) -> list[str]:
        return [line.rsplit(" ", 2)[1:] for line in lines if needle in line]  # type: ignore[misc]

    assert times('metric="m",tier="north_star"}') == [
        ["1", f"{t0}\n"], ["1", f"{t0 + 2400}\n"], ["2", f"{t0 + 3600}\n"],
    ]  # fmt: skip
    assert times('segment_value="pro"') == [
        ["1", f"{t0}\n"], ["1", f"{t0 + 2400}\n"], ["1", f"{t0 + 4800}\n"],
    ]  # fmt: skip


def test_from_is_earliest_a_time_or_a_duration_ago():
    assert parse_from("earliest", T0) is None
    assert parse_from("2d", T0) == T0 - 2 * 86_400_000
    assert parse_from("2026-11-20T10:00:00Z", 0) == T0
    with pytest.raises(SourceError):
        parse_from("yesterday", T0)
